//! Connections that have not authenticated yet, and who makes room for whom — sshd's
//! `MaxStartups`/`PerSourcePenalties` idea, with eviction instead of refusing the newest.
//!
//! Every accepted TCP connection holds a [`HandshakeTicket`] until its TLS handshake ends. Two
//! limits apply:
//!
//! - **Per source** (an IPv4 address, or an IPv6 /64): at most `per_source` tickets. A new
//!   connection from a source at its cap evicts that source's oldest connection that has not even
//!   sent its ClientHello; if it has none, the new connection is refused. A scanner therefore only
//!   ever competes with itself.
//! - **In all**: at most `max` tickets. A new connection evicts a connection of the source that
//!   holds the most tickets: its oldest silent one (no ClientHello yet), else its oldest handshake
//!   in progress. The newest connection always gets its chance, and a flood pays for itself: an
//!   honest sender, one connection from its address, is not evicted while any flooding address
//!   holds more (without that, flooders reconnecting as fast as they are closed evicted it
//!   whenever its ClientHello took longer to be read than `max` new connections took to arrive).
//!   Only when every source holds as many (a flood from as many addresses as `max`) is it the
//!   oldest silent connection, else the oldest handshake.
//!
//! An evicted connection's task sees [`HandshakeTicket::evicted`] fire and closes it.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// How many unauthenticated connections are allowed, in all and per source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeLimits {
    pub max: usize,
    pub per_source: usize,
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        HandshakeLimits {
            max: 256,
            per_source: 16,
        }
    }
}

/// Where a connection comes from, as far as limits go: an IPv4 address or an IPv6 /64 (one
/// machine usually holds a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    V4([u8; 4]),
    V6Prefix([u8; 8]),
}

impl Source {
    pub fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4.octets()),
                None => {
                    let [a, b, c, d, e, f, g, h, ..] = v6.octets();
                    Source::V6Prefix([a, b, c, d, e, f, g, h])
                }
            },
        }
    }
}

/// The table of connections in their handshake. Cheap to clone.
#[derive(Clone)]
pub struct HandshakeTable {
    inner: Arc<Mutex<Table>>,
    limits: HandshakeLimits,
}

#[derive(Default)]
struct Table {
    next: u64,
    /// By age: the smallest key is the oldest connection.
    entries: BTreeMap<u64, Entry>,
    per_source: HashMap<Source, usize>,
}

struct Entry {
    source: Source,
    hello_seen: bool,
    evict: CancellationToken,
}

/// What [`HandshakeTable::admit`] decided.
pub enum Admission {
    /// Go ahead; `evicted` says whether an older connection was closed to make room.
    Admitted {
        ticket: HandshakeTicket,
        evicted: Option<Evicted>,
    },
    /// The source is at its cap with handshakes already under way: close the new connection.
    SourceFull,
}

/// Which connection made room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evicted {
    /// One of the same source's (it was at its cap).
    SameSource,
    /// The oldest of the source holding the most tickets (the table was full).
    Oldest { hello_seen: bool },
}

/// One connection's place in the table, given back on drop.
pub struct HandshakeTicket {
    id: u64,
    evict: CancellationToken,
    table: Arc<Mutex<Table>>,
}

impl HandshakeTable {
    pub fn new(limits: HandshakeLimits) -> HandshakeTable {
        HandshakeTable {
            inner: Arc::default(),
            limits: HandshakeLimits {
                max: limits.max.max(1),
                per_source: limits.per_source.max(1),
            },
        }
    }

    /// Admits a new connection from `source`, making room as the module documentation says.
    pub fn admit(&self, source: Source) -> Admission {
        let Ok(mut table) = self.inner.lock() else {
            return Admission::SourceFull;
        };
        let mut evicted = None;
        if table.per_source.get(&source).copied().unwrap_or(0) >= self.limits.per_source {
            let victim = table
                .entries
                .iter()
                .find(|(_, e)| e.source == source && !e.hello_seen)
                .map(|(id, _)| *id);
            match victim {
                Some(id) => {
                    table.evict(id);
                    evicted = Some(Evicted::SameSource);
                }
                None => return Admission::SourceFull,
            }
        }
        if table.entries.len() >= self.limits.max {
            let heaviest = table.per_source.values().copied().max().unwrap_or(0);
            let of_heaviest = |e: &&Entry| table.per_source.get(&e.source) == Some(&heaviest);
            let victim = table
                .entries
                .iter()
                .find(|(_, e)| of_heaviest(e) && !e.hello_seen)
                .or_else(|| table.entries.iter().find(|(_, e)| of_heaviest(e)))
                .map(|(id, e)| (*id, e.hello_seen));
            if let Some((id, hello_seen)) = victim {
                table.evict(id);
                evicted = Some(Evicted::Oldest { hello_seen });
            }
        }
        let id = table.next;
        table.next = table.next.wrapping_add(1);
        let evict = CancellationToken::new();
        table.entries.insert(
            id,
            Entry {
                source,
                hello_seen: false,
                evict: evict.clone(),
            },
        );
        *table.per_source.entry(source).or_insert(0) += 1;
        Admission::Admitted {
            ticket: HandshakeTicket {
                id,
                evict,
                table: self.inner.clone(),
            },
            evicted,
        }
    }

    /// Connections in their handshake now.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|t| t.entries.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Table {
    /// Removes an entry (by eviction or because its handshake ended) and tells its task.
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let entry = self.entries.remove(&id)?;
        if let Some(count) = self.per_source.get_mut(&entry.source) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_source.remove(&entry.source);
            }
        }
        Some(entry)
    }

    fn evict(&mut self, id: u64) {
        if let Some(entry) = self.remove(id) {
            entry.evict.cancel();
        }
    }
}

impl HandshakeTicket {
    /// The peer sent a whole ClientHello: it is now only evicted after every silent connection.
    pub fn hello_received(&self) {
        if let Ok(mut table) = self.table.lock() {
            if let Some(entry) = table.entries.get_mut(&self.id) {
                entry.hello_seen = true;
            }
        }
    }

    /// Fires when this connection is evicted to make room for a newer one.
    pub fn evicted(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.evict.cancelled()
    }
}

impl Drop for HandshakeTicket {
    fn drop(&mut self) {
        if let Ok(mut table) = self.table.lock() {
            table.remove(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(last: u8) -> Source {
        Source::of(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)))
    }

    fn admitted(a: Admission) -> (HandshakeTicket, Option<Evicted>) {
        match a {
            Admission::Admitted { ticket, evicted } => (ticket, evicted),
            Admission::SourceFull => panic!("refused"),
        }
    }

    #[test]
    fn a_source_at_its_cap_evicts_its_own_silent_connections_not_others() {
        let table = HandshakeTable::new(HandshakeLimits {
            max: 100,
            per_source: 2,
        });
        let (other, _) = admitted(table.admit(v4(9)));
        let (first, _) = admitted(table.admit(v4(1)));
        let (_second, _) = admitted(table.admit(v4(1)));
        let (_third, evicted) = admitted(table.admit(v4(1)));
        assert_eq!(evicted, Some(Evicted::SameSource));
        assert!(first.evict.is_cancelled(), "the source's oldest went");
        assert!(!other.evict.is_cancelled(), "another source is untouched");
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn a_source_whose_handshakes_are_all_under_way_gets_its_new_connection_refused() {
        let table = HandshakeTable::new(HandshakeLimits {
            max: 100,
            per_source: 2,
        });
        let (a, _) = admitted(table.admit(v4(1)));
        let (b, _) = admitted(table.admit(v4(1)));
        a.hello_received();
        b.hello_received();
        assert!(matches!(table.admit(v4(1)), Admission::SourceFull));
        assert!(!a.evict.is_cancelled() && !b.evict.is_cancelled());
        drop(a);
        assert!(matches!(table.admit(v4(1)), Admission::Admitted { .. }));
    }

    #[test]
    fn a_full_table_evicts_the_oldest_silent_connection_before_any_handshake() {
        let table = HandshakeTable::new(HandshakeLimits {
            max: 3,
            per_source: 10,
        });
        let (talking, _) = admitted(table.admit(v4(1)));
        talking.hello_received();
        let (silent, _) = admitted(table.admit(v4(2)));
        let (_newer, _) = admitted(table.admit(v4(3)));
        let (_newest, evicted) = admitted(table.admit(v4(4)));
        assert_eq!(evicted, Some(Evicted::Oldest { hello_seen: false }));
        assert!(silent.evict.is_cancelled());
        assert!(
            !talking.evict.is_cancelled(),
            "older, but it sent its ClientHello"
        );
        assert_eq!(table.len(), 3, "never more than max");
    }

    #[test]
    fn a_full_table_evicts_from_the_source_holding_the_most_even_its_handshakes() {
        let table = HandshakeTable::new(HandshakeLimits {
            max: 4,
            per_source: 10,
        });
        // A flooder's three handshakes under way, then an honest sender that has not yet been
        // read (silent, and the table's only silent connection).
        let flood: Vec<_> = (0..3).map(|_| admitted(table.admit(v4(66))).0).collect();
        for f in &flood {
            f.hello_received();
        }
        let (honest, _) = admitted(table.admit(v4(1)));
        let (more, evicted) = admitted(table.admit(v4(66)));
        assert_eq!(evicted, Some(Evicted::Oldest { hello_seen: true }));
        assert!(flood[0].evict.is_cancelled(), "the flooder's oldest went");
        assert!(
            !honest.evict.is_cancelled(),
            "one connection of its address stays"
        );
        // Within the heaviest source, a silent connection goes before its handshakes.
        let (_other, evicted) = admitted(table.admit(v4(2)));
        assert_eq!(evicted, Some(Evicted::Oldest { hello_seen: false }));
        assert!(more.evict.is_cancelled() && !flood[1].evict.is_cancelled());
        assert!(!honest.evict.is_cancelled());
    }

    #[test]
    fn tickets_give_their_place_back_on_drop() {
        let table = HandshakeTable::new(HandshakeLimits {
            max: 2,
            per_source: 1,
        });
        let (t, _) = admitted(table.admit(v4(1)));
        t.hello_received();
        drop(t);
        assert!(table.is_empty());
        let (_t, evicted) = admitted(table.admit(v4(1)));
        assert_eq!(evicted, None, "the source's count came back too");
    }

    #[test]
    fn ipv6_sources_are_grouped_by_64_and_mapped_ipv4_is_ipv4() {
        let a = Source::of(IpAddr::V6(
            "2001:db8:1:2::1".parse::<Ipv6Addr>().expect("v6"),
        ));
        let b = Source::of(IpAddr::V6(
            "2001:db8:1:2:ffff::9".parse::<Ipv6Addr>().expect("v6"),
        ));
        let c = Source::of(IpAddr::V6(
            "2001:db8:1:3::1".parse::<Ipv6Addr>().expect("v6"),
        ));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mapped = Source::of(IpAddr::V6(
            "::ffff:192.0.2.1".parse::<Ipv6Addr>().expect("v6"),
        ));
        assert_eq!(mapped, v4(1));
    }
}

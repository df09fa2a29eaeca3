//! A fault-injecting TCP proxy between `crashdrop-send` and `crashdropd`: it forwards bytes both
//! ways and, at chosen upstream offsets, cuts, stalls or corrupts the stream on purpose.
//!
//! Offsets count bytes forwarded from client to server over every connection the proxy carried,
//! so a list of faults spreads over one logical transfer that reconnects after each fault. Which
//! fault fires where is decided by [`FaultPlan`], which has no sockets and is tested on its own.
//!
//! The proxy runs a `current_thread` tokio runtime on its own thread, so plain `#[test]`
//! functions can use it; dropping the [`FaultProxy`] stops that thread and closes every
//! connection.

use std::io;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

mod forward;

/// Bytes buffered per direction per connection.
const CHUNK: usize = 16 << 10;

/// How long a cut connection keeps reading (and discarding) the server's bytes after sending it a
/// FIN, so the server reads every forwarded byte and then EOF instead of a reset.
const LINGER: Duration = Duration::from_secs(5);

/// How long [`FaultProxy::cut_all`] waits for the cut connections to let go of their clients.
const CUT_WAIT: Duration = Duration::from_secs(10);

/// Where and how the proxy misbehaves. Offsets count bytes forwarded from client to server
/// (upstream), cumulatively over ALL connections the proxy has carried, so a list of faults
/// spreads over one logical transfer that reconnects after each fault. Each fault fires once, in
/// order; offsets must not decrease along the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Close both sides of the current connection when the upstream total reaches this offset
    /// (bytes before it are forwarded, the byte at it is not). The server is sent a FIN after the
    /// last forwarded byte, so it reads exactly the bytes before the offset and then EOF.
    CutAt(u64),
    /// From this upstream offset on, forward nothing in either direction on the current
    /// connection and never close it (a black hole: the peer sees no FIN, no RST) until the proxy
    /// is dropped or [`FaultProxy::cut_all`] is called. Later connections are served normally.
    /// The client's writes keep succeeding until the kernel's socket buffers fill.
    StallAt(u64),
    /// XOR `mask` into the upstream byte at this offset (the byte is still forwarded).
    FlipAt(u64, u8),
}

impl Fault {
    /// The upstream offset at which this fault fires.
    pub fn offset(&self) -> u64 {
        match *self {
            Fault::CutAt(at) | Fault::StallAt(at) | Fault::FlipAt(at, _) => at,
        }
    }
}

/// What the proxy has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Client connections accepted (including those whose target refused them).
    pub connections: u64,
    /// Bytes forwarded from clients to servers, over all connections.
    pub upstream_bytes: u64,
    /// Bytes forwarded from servers to clients, over all connections.
    pub downstream_bytes: u64,
    /// Faults fired (not counting [`FaultProxy::cut_all`]).
    pub faults_fired: u64,
}

/// What a connection does after forwarding the bytes a [`Step`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    Continue,
    Cut,
    Stall,
}

/// The verdict on one upstream chunk: forward its first `forward` bytes, then do `then`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Step {
    forward: usize,
    then: Then,
}

/// The fault list and the upstream total: decides, chunk by chunk, what is forwarded.
#[derive(Debug)]
struct FaultPlan {
    faults: Vec<Fault>,
    next: usize,
    total: u64,
    fired: u64,
}

impl FaultPlan {
    /// # Panics
    ///
    /// If the offsets decrease along the list.
    fn new(faults: Vec<Fault>) -> FaultPlan {
        let sorted = faults.windows(2).all(|w| match w {
            [a, b] => a.offset() <= b.offset(),
            _ => true,
        });
        assert!(sorted, "fault offsets must not decrease: {faults:?}");
        FaultPlan {
            faults,
            next: 0,
            total: 0,
            fired: 0,
        }
    }

    /// Applies the faults that fall inside `chunk` (the next upstream bytes of one connection):
    /// flips its bytes in place and says how much of it to forward and what then. A cut or stall
    /// at the offset where the chunk ends fires now, so an empty chunk fires one at the current
    /// total (a connection calls this with no bytes when it starts).
    fn step(&mut self, chunk: &mut [u8]) -> Step {
        let start = self.total;
        let end = start.saturating_add(chunk.len() as u64);
        let mut step = Step {
            forward: chunk.len(),
            then: Then::Continue,
        };
        while let Some(&fault) = self.faults.get(self.next) {
            let within = |at: u64| usize::try_from(at.saturating_sub(start)).unwrap_or(usize::MAX);
            match fault {
                Fault::FlipAt(at, mask) if at < end => {
                    if let Some(byte) = chunk.get_mut(within(at)) {
                        *byte ^= mask;
                    }
                }
                Fault::CutAt(at) if at <= end => {
                    step = Step {
                        forward: within(at).min(chunk.len()),
                        then: Then::Cut,
                    };
                }
                Fault::StallAt(at) if at <= end => {
                    step = Step {
                        forward: within(at).min(chunk.len()),
                        then: Then::Stall,
                    };
                }
                _ => break,
            }
            self.next += 1;
            self.fired += 1;
            if step.then != Then::Continue {
                break;
            }
        }
        self.total = start.saturating_add(step.forward as u64);
        step
    }

    /// Takes back `bytes` that a step allowed but that were never written (the connection was
    /// cut while the server was not reading).
    fn unsent(&mut self, bytes: usize) {
        self.total = self.total.saturating_sub(bytes as u64);
    }
}

/// The connections accepted since the last [`FaultProxy::cut_all`]: one token cuts them all, and
/// `drained` reports when every member has let go of its `live` sender.
struct Generation {
    cut: CancellationToken,
    live: mpsc::Sender<()>,
    drained: mpsc::Receiver<()>,
}

impl Generation {
    fn new() -> Generation {
        let (live, drained) = mpsc::channel();
        Generation {
            cut: CancellationToken::new(),
            live,
            drained,
        }
    }
}

/// One connection's membership of a [`Generation`].
struct Member {
    halt: CancellationToken,
    _live: mpsc::Sender<()>,
}

struct State {
    target: SocketAddr,
    plan: FaultPlan,
    connections: u64,
    downstream_bytes: u64,
    generation: Generation,
}

impl State {
    fn stats(&self) -> ProxyStats {
        ProxyStats {
            connections: self.connections,
            upstream_bytes: self.plan.total,
            downstream_bytes: self.downstream_bytes,
            faults_fired: self.plan.fired,
        }
    }
}

/// The state shared by the handle and the proxy's tasks; `changed` wakes [`FaultProxy::wait_for`].
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the state and wakes the waiters.
    fn update<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.lock());
        self.changed.notify_all();
        out
    }
}

/// A TCP proxy on 127.0.0.1 that forwards to a target and injects [`Fault`]s; see the module
/// docs. Stops, closing every connection, when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1:0 and forwards every accepted connection to `target`, applying
    /// `faults`. Runs on its own thread with its own tokio runtime; stops when dropped.
    ///
    /// # Panics
    ///
    /// If the fault offsets decrease along the list, or the listener or runtime cannot be set up.
    pub fn start(target: SocketAddr, faults: Vec<Fault>) -> FaultProxy {
        let plan = FaultPlan::new(faults);
        Self::try_start(target, plan).unwrap_or_else(|e| panic!("fault proxy: {e}"))
    }

    fn try_start(target: SocketAddr, plan: FaultPlan) -> io::Result<FaultProxy> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = {
            let _context = runtime.enter();
            TcpListener::from_std(listener)?
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                target,
                plan,
                connections: 0,
                downstream_bytes: 0,
                generation: Generation::new(),
            }),
            changed: Condvar::new(),
        });
        let shutdown = CancellationToken::new();
        let thread = std::thread::Builder::new()
            .name(format!("fault-proxy {addr}"))
            .spawn({
                let shared = Arc::clone(&shared);
                let shutdown = shutdown.clone();
                move || {
                    runtime.block_on(forward::accept_loop(listener, shared, shutdown));
                    // Dropping the runtime drops every connection task and closes its sockets.
                    drop(runtime);
                }
            })?;
        Ok(FaultProxy {
            addr,
            shared,
            shutdown,
            thread: Some(thread),
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `tls://ADDR`, the form `crashdrop-send --receiver` takes.
    pub fn url(&self) -> String {
        format!("tls://{}", self.addr)
    }

    /// What the proxy has done so far.
    pub fn stats(&self) -> ProxyStats {
        self.shared.lock().stats()
    }

    /// Waits up to `timeout` until `done` holds for the stats, and returns them; `None` if it
    /// still does not hold by then. Woken by every change, so no polling.
    pub fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&ProxyStats) -> bool,
    ) -> Option<ProxyStats> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            let stats = state.stats();
            if done(&stats) {
                return Some(stats);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Changes where new connections go (e.g. a receiver restarted on another port).
    pub fn set_target(&self, target: SocketAddr) {
        self.shared.lock().target = target;
    }

    /// Cuts every connection the proxy has accepted and not yet closed (stalled ones included),
    /// as [`Fault::CutAt`] does, without counting as a fault. Returns once their clients are
    /// closed. A client whose connect completed but which the proxy has not accepted yet is not
    /// cut.
    pub fn cut_all(&self) {
        let old = std::mem::replace(&mut self.shared.lock().generation, Generation::new());
        old.cut.cancel();
        drop(old.live);
        // Every member drops its sender once its client socket is closed.
        let _ = old.drained.recv_timeout(CUT_WAIT);
    }
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests;

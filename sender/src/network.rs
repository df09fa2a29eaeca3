//! `--wait-network`: in a capture kernel the sender may start before the initramfs has brought
//! the network up (the link still negotiating, DHCP not answered). Before the first attempt it
//! checks, once a second and for at most `--wait-network`, that the receivers' names resolve
//! and that the kernel has a route to one of them, printing one line per check, instead of
//! failing its first attempt at once. The check sends nothing: a UDP socket's `connect` only
//! looks the route up. A receiver that is routable but not (yet) listening is `--retry-for`'s
//! business, not this one's.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::error::SendError;
use crate::retry::format_duration;

/// Time between two checks.
const INTERVAL: Duration = Duration::from_secs(1);

/// Why `address` (HOST:PORT) cannot be reached now, or `None` when there is a route to it.
async fn no_route(address: &str) -> Option<String> {
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host(address).await {
        Ok(addrs) => addrs.collect(),
        Err(e) => return Some(format!("cannot resolve {address}: {e}")),
    };
    let mut why = format!("{address} resolves to no address");
    for addr in addrs {
        let local = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        match UdpSocket::bind(local).and_then(|s| s.connect(addr)) {
            Ok(()) => return None,
            Err(e) => why = format!("no route to {addr}: {e}"),
        }
    }
    Some(why)
}

/// Returns once one of `addresses` has a route, or fails (retryable, exit 5) after `wait`.
/// `wait` zero skips the check.
pub async fn wait_for_route(addresses: &[&str], wait: Duration) -> Result<(), SendError> {
    if wait.is_zero() || addresses.is_empty() {
        return Ok(());
    }
    let start = Instant::now();
    let deadline = start + wait;
    let mut check = 0u32;
    loop {
        check += 1;
        let mut reasons = Vec::new();
        for address in addresses {
            match no_route(address).await {
                None => {
                    if check > 1 {
                        eprintln!(
                            "network: {address} is routable after {:.1}s (check {check})",
                            start.elapsed().as_secs_f64()
                        );
                    }
                    return Ok(());
                }
                Some(why) => reasons.push(why),
            }
        }
        let why = reasons.join("; ");
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(SendError::Retryable(format!(
                "the network never came up: {why} (gave up after {check} checks, --wait-network {}); \
                 the initramfs must configure the interface and route to the receiver \
                 (see the README's kdump sections)",
                format_duration(wait)
            )));
        }
        eprintln!(
            "waiting for the network (check {check}): {why}; checking again in 1s, {} left of --wait-network {}",
            format_duration(left.max(Duration::from_secs(1))),
            format_duration(wait)
        );
        tokio::time::sleep(INTERVAL.min(left)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn loopback_is_routable_at_once() {
        assert_eq!(run(no_route("127.0.0.1:7420")), None);
        run(wait_for_route(&["127.0.0.1:7420"], Duration::from_secs(5))).expect("routable");
    }

    #[test]
    fn an_unresolvable_name_is_waited_for_then_a_retryable_failure() {
        let started = Instant::now();
        let e = run(wait_for_route(
            &["no-such-host.invalid:7420"],
            Duration::from_secs(1),
        ))
        .expect_err("never resolves");
        assert!(e.is_retryable(), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("no-such-host.invalid") && text.contains("--wait-network 1s"),
            "{text}"
        );
        assert!(started.elapsed() >= Duration::from_millis(900));
    }

    #[test]
    fn zero_skips_the_check() {
        run(wait_for_route(
            &["no-such-host.invalid:7420"],
            Duration::ZERO,
        ))
        .expect("skipped");
    }
}

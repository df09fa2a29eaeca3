//! The forwarding itself: accepting clients, connecting each to the target, and moving bytes both
//! ways while the fault plan decides where to cut, stall or flip.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::{Member, Shared, Then, CHUNK, LINGER};

/// Accepts clients until shutdown; each connection is served on its own task.
pub(super) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((client, _)) => {
                let (target, member) = shared.update(|state| {
                    state.connections += 1;
                    let generation = &state.generation;
                    let member = Member {
                        halt: generation.cut.child_token(),
                        _live: generation.live.clone(),
                    };
                    (state.target, member)
                });
                tokio::spawn(serve(client, target, Arc::clone(&shared), member));
            }
            // Out of file descriptors or similar: back off rather than spin.
            Err(_) => tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            },
        }
    }
}

/// Carries one client connection to `target` until both sides have closed, or until a fault, an
/// error or [`FaultProxy::cut_all`] cuts it.
async fn serve(mut client: TcpStream, target: SocketAddr, shared: Arc<Shared>, member: Member) {
    let halt = member.halt.clone();
    let connected = tokio::select! {
        biased;
        _ = halt.cancelled() => return,
        connected = TcpStream::connect(target) => connected,
    };
    // A refused target: dropping the client closes it now.
    let Ok(mut server) = connected else { return };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let stall = halt.child_token();
    {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        tokio::join!(
            upstream(client_read, server_write, &shared, &halt, &stall),
            downstream(server_read, client_write, &shared, &halt, &stall),
        );
    }
    if !halt.is_cancelled() {
        return; // both sides closed in turn
    }
    drop(client);
    drop(member);
    // Cut: a FIN after the last forwarded byte, then drain until the server closes, so that
    // unread bytes in our socket do not turn the close into a reset that could discard them.
    let _ = server.shutdown().await;
    let mut sink = vec![0u8; CHUNK];
    let _ = tokio::time::timeout(LINGER, async {
        while matches!(server.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Client to server: applies the fault plan to each chunk. Forwards the client's FIN; cancels
/// `halt` on a cut or an error and `stall` on a stall.
async fn upstream(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    shared: &Shared,
    halt: &CancellationToken,
    stall: &CancellationToken,
) {
    let mut buf = vec![0u8; CHUNK];
    // The first round has no bytes: it fires a cut or stall due where this connection starts.
    let mut len = 0;
    loop {
        let chunk = buf.get_mut(..len).unwrap_or_default();
        let step = shared.update(|state| state.plan.step(chunk));
        if step.then == Then::Stall {
            stall.cancel();
        }
        let allowed = buf.get(..step.forward).unwrap_or_default();
        let written = write_until(&mut to, allowed, halt).await;
        if written.sent < allowed.len() {
            shared.update(|state| state.plan.unsent(allowed.len() - written.sent));
        }
        if written.failed {
            halt.cancel();
        }
        match step.then {
            Then::Continue => {}
            Then::Cut => halt.cancel(),
            Then::Stall => halt.cancelled().await,
        }
        let read = tokio::select! {
            biased;
            _ = halt.cancelled() => return,
            read = from.read(&mut buf) => read,
        };
        len = match read {
            Ok(0) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
            Err(_) => {
                halt.cancel();
                return;
            }
        };
    }
}

/// Server to client, until the server's FIN (forwarded) or `stop` (a stall or a cut: `stop` is
/// the connection's `stall`, a child of its `halt`). Cancels `halt` on an error.
async fn downstream(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    shared: &Shared,
    halt: &CancellationToken,
    stop: &CancellationToken,
) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let read = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            read = from.read(&mut buf) => read,
        };
        let chunk = match read {
            Ok(0) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => buf.get(..n).unwrap_or_default(),
            Err(_) => break,
        };
        // Counted before the write, so a client that has read the bytes sees them in the stats.
        shared.update(|state| state.downstream_bytes += chunk.len() as u64);
        let written = write_until(&mut to, chunk, stop).await;
        if written.sent < chunk.len() {
            let unsent = (chunk.len() - written.sent) as u64;
            shared.update(|state| state.downstream_bytes -= unsent);
        }
        if written.failed {
            break;
        }
    }
    // An error on either socket ends the connection, as a cut does.
    halt.cancel();
}

/// How far [`write_until`] got.
struct Written {
    sent: usize,
    failed: bool,
}

/// Writes all of `bytes` unless `stop` fires first or the socket fails.
async fn write_until(to: &mut WriteHalf<'_>, bytes: &[u8], stop: &CancellationToken) -> Written {
    let mut sent = 0;
    while let Some(rest) = bytes.get(sent..).filter(|r| !r.is_empty()) {
        let wrote = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            wrote = to.write(rest) => wrote,
        };
        match wrote {
            Ok(n) if n > 0 => sent += n,
            _ => return Written { sent, failed: true },
        }
    }
    Written {
        sent,
        failed: false,
    }
}

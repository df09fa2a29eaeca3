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

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

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
                    runtime.block_on(accept_loop(listener, shared, shutdown));
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

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
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

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener as StdListener, TcpStream as StdStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc::RecvTimeoutError;

    use super::*;

    /// Upper bound for anything that should happen; never waited out when the proxy works.
    const LONG: Duration = Duration::from_secs(10);
    /// How long "nothing happens" is watched for.
    const QUIET: Duration = Duration::from_millis(300);

    #[derive(Debug)]
    enum Event {
        Data(Vec<u8>),
        /// How the server's read ended: `Ok` for EOF, otherwise the error kind.
        Closed(Result<(), io::ErrorKind>),
    }

    /// An echo server on 127.0.0.1:0 that reports what each connection receives and how it ends.
    struct EchoServer {
        addr: SocketAddr,
        events: mpsc::Receiver<Event>,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    impl EchoServer {
        fn start() -> EchoServer {
            let listener = StdListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            let (tx, events) = mpsc::channel();
            let stop = Arc::new(AtomicBool::new(false));
            let thread = std::thread::spawn({
                let stop = Arc::clone(&stop);
                move || {
                    for conn in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let Ok(conn) = conn else { continue };
                        let tx = tx.clone();
                        std::thread::spawn(move || echo(conn, &tx));
                    }
                }
            });
            EchoServer {
                addr,
                events,
                stop,
                thread: Some(thread),
            }
        }

        /// Exactly `len` bytes, gathered from the next events.
        fn data(&self, len: usize) -> Vec<u8> {
            let mut data = Vec::new();
            while data.len() < len {
                match self.events.recv_timeout(LONG) {
                    Ok(Event::Data(d)) => data.extend(d),
                    other => panic!("{} of {len} bytes, then {other:?}", data.len()),
                }
            }
            assert_eq!(data.len(), len, "more than expected arrived");
            data
        }

        /// Every byte until the connection closes, and how it closed.
        fn until_closed(&self) -> (Vec<u8>, Result<(), io::ErrorKind>) {
            let mut data = Vec::new();
            loop {
                match self.events.recv_timeout(LONG) {
                    Ok(Event::Data(d)) => data.extend(d),
                    Ok(Event::Closed(how)) => return (data, how),
                    Err(e) => panic!("{} bytes, then {e:?}", data.len()),
                }
            }
        }

        /// Asserts nothing arrives and no connection closes for [`QUIET`].
        fn assert_quiet(&self) {
            match self.events.recv_timeout(QUIET) {
                Err(RecvTimeoutError::Timeout) => {}
                other => panic!("expected silence, got {other:?}"),
            }
        }
    }

    impl Drop for EchoServer {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            let _ = StdStream::connect(self.addr);
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    fn echo(mut conn: StdStream, events: &mpsc::Sender<Event>) {
        let mut buf = [0u8; 4096];
        let how = loop {
            match conn.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    let data = buf.get(..n).unwrap_or_default();
                    let _ = events.send(Event::Data(data.to_vec()));
                    let _ = conn.write_all(data);
                }
                Err(e) => break Err(e.kind()),
            }
        };
        let _ = events.send(Event::Closed(how));
    }

    fn connect(proxy: &FaultProxy) -> StdStream {
        let stream = StdStream::connect(proxy.addr()).expect("connect to the proxy");
        stream.set_read_timeout(Some(LONG)).expect("timeout");
        stream
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// Reads until EOF or an error; panics if the read times out (the connection stayed open).
    fn read_until_closed(stream: &mut StdStream) -> Vec<u8> {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return data,
                Ok(n) => data.extend_from_slice(buf.get(..n).unwrap_or_default()),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    panic!("still open after {LONG:?}")
                }
                Err(_) => return data,
            }
        }
    }

    fn assert_read_times_out(stream: &mut StdStream) {
        stream.set_read_timeout(Some(QUIET)).expect("timeout");
        let mut buf = [0u8; 64];
        match stream.read(&mut buf) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            other => panic!("expected a read timeout, got {other:?}"),
        }
        stream.set_read_timeout(Some(LONG)).expect("timeout");
    }

    /// Sends `bytes` from another thread (so the echo never blocks us), ends our side, and
    /// returns everything echoed back until the proxy closes.
    fn round_trip(stream: StdStream, bytes: &[u8]) -> Vec<u8> {
        let mut writer = stream.try_clone().expect("clone");
        let bytes = bytes.to_vec();
        let sending = std::thread::spawn(move || {
            writer.write_all(&bytes).expect("write");
            writer.shutdown(Shutdown::Write).expect("shutdown");
        });
        let mut stream = stream;
        let echoed = read_until_closed(&mut stream);
        sending.join().expect("writer");
        echoed
    }

    fn plan(faults: Vec<Fault>) -> FaultPlan {
        FaultPlan::new(faults)
    }

    #[test]
    fn plan_cuts_inside_a_chunk_and_at_its_end() {
        let mut p = plan(vec![Fault::CutAt(5), Fault::CutAt(12)]);
        let mut chunk = [0u8; 10];
        let step = p.step(&mut chunk);
        assert_eq!((step.forward, step.then), (5, Then::Cut));
        let step = p.step(&mut chunk[..7]);
        assert_eq!((step.forward, step.then), (7, Then::Cut));
        assert_eq!((p.total, p.fired), (12, 2));
        let step = p.step(&mut chunk);
        assert_eq!((step.forward, step.then), (10, Then::Continue));
    }

    #[test]
    fn plan_fires_a_fault_due_at_the_start_of_a_connection() {
        let mut p = plan(vec![Fault::CutAt(3), Fault::StallAt(3)]);
        assert_eq!(p.step(&mut []).then, Then::Continue);
        for _ in 0..2 {
            assert_eq!(p.step(&mut [0]).then, Then::Continue);
        }
        assert_eq!(p.step(&mut [0]).then, Then::Cut);
        let step = p.step(&mut []);
        assert_eq!((step.forward, step.then), (0, Then::Stall));
        assert_eq!((p.total, p.fired), (3, 2));
    }

    #[test]
    fn plan_flips_only_the_byte_at_the_offset() {
        let mut p = plan(vec![
            Fault::FlipAt(4, 0x01),
            Fault::FlipAt(6, 0xff),
            Fault::FlipAt(10, 0x80),
            Fault::StallAt(13),
        ]);
        let mut first = [0u8; 10];
        assert_eq!(p.step(&mut first).forward, 10);
        assert_eq!(first, [0, 0, 0, 0, 0x01, 0, 0xff, 0, 0, 0]);
        let mut second = [0u8; 10];
        let step = p.step(&mut second);
        assert_eq!((step.forward, step.then), (3, Then::Stall));
        assert_eq!(second[..3], [0x80, 0, 0]);
        assert_eq!(p.fired, 4);
    }

    #[test]
    #[should_panic(expected = "must not decrease")]
    fn plan_refuses_decreasing_offsets() {
        plan(vec![Fault::CutAt(10), Fault::FlipAt(5, 1)]);
    }

    #[test]
    fn forwards_both_ways_and_counts_bytes() {
        let server = EchoServer::start();
        let proxy = FaultProxy::start(server.addr, Vec::new());
        let sent = pattern(300_000);
        assert!(round_trip(connect(&proxy), &sent) == sent, "echo differs");
        let (received, how) = server.until_closed();
        assert!(received == sent, "server received different bytes");
        assert_eq!(how, Ok(()));
        let expected = ProxyStats {
            connections: 1,
            upstream_bytes: 300_000,
            downstream_bytes: 300_000,
            faults_fired: 0,
        };
        assert_eq!(proxy.stats(), expected);
    }

    #[test]
    fn cut_forwards_exactly_up_to_the_offset_and_the_count_continues() {
        let server = EchoServer::start();
        let proxy = FaultProxy::start(server.addr, vec![Fault::CutAt(1000), Fault::CutAt(2500)]);
        let sent = pattern(4000);

        let mut first = connect(&proxy);
        first.write_all(&sent[..1500]).expect("write");
        read_until_closed(&mut first);
        let (received, how) = server.until_closed();
        assert!(received == sent[..1000], "got {} bytes", received.len());
        assert_eq!(how, Ok(()), "the server sees EOF after the last byte");
        assert_eq!(proxy.stats().upstream_bytes, 1000);

        let mut second = connect(&proxy);
        second.write_all(&sent[1000..]).expect("write");
        read_until_closed(&mut second);
        let (received, _) = server.until_closed();
        assert!(received == sent[1000..2500], "got {} bytes", received.len());
        let stats = proxy.stats();
        assert_eq!((stats.connections, stats.upstream_bytes), (2, 2500));
        assert_eq!(stats.faults_fired, 2);

        // No faults left: a third connection is carried whole.
        assert_eq!(round_trip(connect(&proxy), b"after"), b"after");
        assert_eq!(proxy.stats().upstream_bytes, 2505);
    }

    #[test]
    fn stall_holds_the_connection_open_and_silent_until_drop() {
        let server = EchoServer::start();
        let proxy = FaultProxy::start(server.addr, vec![Fault::StallAt(1000)]);
        let sent = pattern(1500);
        let mut stalled = connect(&proxy);
        stalled.write_all(&sent).expect("write");
        assert!(server.data(1000) == sent[..1000]);
        server.assert_quiet();
        // The server echoed the 1000 bytes, but nothing comes back either.
        assert_read_times_out(&mut stalled);
        let stats = proxy.stats();
        assert_eq!((stats.upstream_bytes, stats.downstream_bytes), (1000, 0));
        assert_eq!(stats.faults_fired, 1);

        // Later connections are served normally and continue the count.
        let mut next = connect(&proxy);
        next.write_all(b"hello").expect("write");
        assert_eq!(server.data(5), b"hello");
        let mut echoed = [0u8; 5];
        next.read_exact(&mut echoed).expect("echo");
        assert_eq!(&echoed, b"hello");
        assert_eq!(proxy.stats().upstream_bytes, 1005);

        drop(proxy);
        read_until_closed(&mut stalled);
        read_until_closed(&mut next);
        for _ in 0..2 {
            assert!(matches!(server.until_closed(), (d, _) if d.is_empty()));
        }
    }

    #[test]
    fn flip_changes_exactly_the_byte_at_the_offset() {
        let server = EchoServer::start();
        let faults = vec![Fault::FlipAt(1000, 0x01), Fault::FlipAt(70_000, 0x80)];
        let proxy = FaultProxy::start(server.addr, faults);
        let sent = pattern(100_000);
        let mut expected = sent.clone();
        expected[1000] ^= 0x01;
        expected[70_000] ^= 0x80;
        assert!(round_trip(connect(&proxy), &sent) == expected, "echo");
        assert!(server.until_closed().0 == expected, "server");
        assert_eq!(proxy.stats().faults_fired, 2);
    }

    #[test]
    fn set_target_redirects_new_connections_only() {
        let (a, b) = (EchoServer::start(), EchoServer::start());
        let proxy = FaultProxy::start(a.addr, Vec::new());
        let mut old = connect(&proxy);
        old.write_all(b"a1").expect("write");
        assert_eq!(a.data(2), b"a1");

        proxy.set_target(b.addr);
        assert_eq!(round_trip(connect(&proxy), b"b1"), b"b1");
        assert_eq!(b.until_closed(), (b"b1".to_vec(), Ok(())));

        old.write_all(b"a2").expect("write");
        assert_eq!(a.data(2), b"a2");
        b.assert_quiet();
        assert_eq!(proxy.stats().connections, 2);
    }

    #[test]
    fn a_refused_target_closes_the_client() {
        let gone = StdListener::bind("127.0.0.1:0").expect("bind");
        let addr = gone.local_addr().expect("addr");
        drop(gone);
        let proxy = FaultProxy::start(addr, vec![Fault::CutAt(0)]);
        assert!(read_until_closed(&mut connect(&proxy)).is_empty());
        let stats = proxy.stats();
        assert_eq!((stats.connections, stats.faults_fired), (1, 0));
    }

    #[test]
    fn cut_all_closes_open_connections_without_a_fault() {
        let server = EchoServer::start();
        let proxy = FaultProxy::start(server.addr, vec![Fault::CutAt(100)]);
        let mut open = connect(&proxy);
        open.write_all(b"ping").expect("write");
        let mut echoed = [0u8; 4];
        open.read_exact(&mut echoed).expect("echo");
        proxy.cut_all();
        assert!(read_until_closed(&mut open).is_empty());
        assert_eq!(server.until_closed(), (b"ping".to_vec(), Ok(())));
        assert_eq!(proxy.stats().faults_fired, 0);

        let sent = pattern(200);
        let echoed = round_trip(connect(&proxy), &sent);
        assert!(
            server.until_closed().0 == sent[..96],
            "the cut at 100 still applies"
        );
        assert!(sent.starts_with(&echoed));
        assert_eq!(proxy.stats().faults_fired, 1);
    }

    #[test]
    fn wait_for_wakes_on_progress() {
        let server = EchoServer::start();
        let proxy = FaultProxy::start(server.addr, vec![Fault::StallAt(3)]);
        assert_eq!(proxy.wait_for(Duration::ZERO, |s| s.connections > 0), None);
        let mut stream = connect(&proxy);
        stream.write_all(b"abcdef").expect("write");
        let stats = proxy
            .wait_for(LONG, |s| s.faults_fired == 1)
            .expect("stall fired");
        assert_eq!(stats.upstream_bytes, 3);
    }

    #[test]
    fn drop_closes_connections_and_the_listener() {
        let server = EchoServer::start();
        let proxy = FaultProxy::start(server.addr, Vec::new());
        let addr = proxy.addr();
        let mut open = connect(&proxy);
        open.write_all(b"ping").expect("write");
        assert_eq!(server.data(4), b"ping");
        drop(proxy);
        // The echo may or may not have come back before the drop; the close must.
        assert!(b"ping".starts_with(&read_until_closed(&mut open)));
        assert!(server.until_closed().0.is_empty());
        assert!(StdStream::connect(addr).is_err(), "still listening");
    }
}

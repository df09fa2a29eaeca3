//! Tests of the proxy against a small echo server on 127.0.0.1:0, and of its fault plan alone.

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

//! A loopback TCP proxy between a client and one etcd member, switched at
//! run time between passing, delaying, blackholing and refusing traffic.
//!
//! Clients use [`Proxy::endpoint`] instead of the member's own endpoint. The
//! proxy runs on a small runtime of its own, so it keeps forwarding whatever
//! the test's runtime is doing, and it works from non-async code (the soak).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// How long the proxy tries to reach its member for a new connection.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Chunks read ahead per direction before the reader waits (back-pressure).
const QUEUED_CHUNKS: usize = 64;
const CHUNK_BYTES: usize = 16 * 1024;

/// What the proxy does with traffic, in both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bytes pass as they come.
    Pass,
    /// Every chunk is held this long before it is passed on (added latency).
    Delay(Duration),
    /// Nothing passes and nothing is lost: connections stay open and stall,
    /// as over a network that silently drops packets (TCP delivers the
    /// retransmissions once it heals). New connections are accepted and stall too.
    Blackhole,
    /// Every connection is cut, and new ones are closed as soon as they are
    /// accepted (the member looks unreachable).
    Down,
}

#[derive(Debug, Clone, Copy)]
struct Control {
    mode: Mode,
    stopped: bool,
}

impl Control {
    fn cuts(&self) -> bool {
        self.stopped || self.mode == Mode::Down
    }
}

#[derive(Debug, Default)]
struct Stats {
    /// Bytes passed on, both directions together.
    bytes: AtomicU64,
    /// Connections currently open through the proxy.
    open: AtomicUsize,
}

/// One proxy: a loopback listener forwarding to one member. Dropping it
/// closes the listener and every connection.
#[derive(Debug)]
pub struct Proxy {
    listen: SocketAddr,
    upstream: SocketAddr,
    control: watch::Sender<Control>,
    stats: Arc<Stats>,
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("harness-proxy")
            .enable_all()
            .build()
            .expect("build the proxy runtime")
    })
}

impl Proxy {
    /// Starts a proxy on a free loopback port, forwarding to `upstream`, in [`Mode::Pass`].
    pub fn start(upstream: SocketAddr) -> Proxy {
        assert!(
            upstream.ip().is_loopback(),
            "the proxy only forwards to loopback"
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a proxy port");
        listener
            .set_nonblocking(true)
            .expect("non-blocking proxy listener");
        let listen = listener.local_addr().expect("proxy address");
        let (control, control_rx) = watch::channel(Control {
            mode: Mode::Pass,
            stopped: false,
        });
        let stats = Arc::new(Stats::default());
        let rt = runtime();
        let listener = {
            let _entered = rt.enter();
            TcpListener::from_std(listener).expect("register the proxy listener")
        };
        rt.spawn(accept_loop(listener, upstream, control_rx, stats.clone()));
        Proxy {
            listen,
            upstream,
            control,
            stats,
        }
    }

    /// `http://127.0.0.1:PORT`: what a client uses as its etcd endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// The member this proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Switches the mode; takes effect at once on every connection.
    pub fn set(&self, mode: Mode) {
        self.control.send_modify(|c| c.mode = mode);
    }

    /// The mode in force.
    pub fn mode(&self) -> Mode {
        self.control.borrow().mode
    }

    /// Bytes passed on so far, both directions together.
    pub fn bytes(&self) -> u64 {
        self.stats.bytes.load(Ordering::Relaxed)
    }

    /// Connections currently open through the proxy.
    pub fn open_connections(&self) -> usize {
        self.stats.open.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.control.send_modify(|c| c.stopped = true);
    }
}

/// Sets every proxy of `proxies` to `mode`.
pub fn set_all<'a>(proxies: impl IntoIterator<Item = &'a Proxy>, mode: Mode) {
    for proxy in proxies {
        proxy.set(mode);
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    mut control: watch::Receiver<Control>,
    stats: Arc<Stats>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            changed = control.changed() => {
                if changed.is_err() || control.borrow().stopped {
                    return;
                }
                continue;
            }
        };
        let client = match accepted {
            Ok((client, _)) => client,
            Err(_) => {
                // Out of descriptors, say: do not spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let now = *control.borrow();
        if now.stopped {
            return;
        }
        if now.mode == Mode::Down {
            drop(client);
            continue;
        }
        tokio::spawn(connection(client, upstream, control.clone(), stats.clone()));
    }
}

/// Counts an open connection for as long as it lives.
struct OpenGuard(Arc<Stats>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    control: watch::Receiver<Control>,
    stats: Arc<Stats>,
) {
    // A member that is down refuses at once; the client sees the connection close.
    let server =
        match tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(upstream)).await {
            Ok(Ok(server)) => server,
            _ => return,
        };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    stats.open.fetch_add(1, Ordering::Relaxed);
    let _open = OpenGuard(stats.clone());
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // Both directions run until both have ended or the proxy cuts them;
    // dropping the halves closes both sockets.
    tokio::join!(
        pump(client_read, server_write, control.clone(), stats.clone()),
        pump(server_read, client_write, control, stats),
    );
}

/// Moves one direction: a reader stamps each chunk with its arrival, a
/// writer passes it on when the mode allows.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    control: watch::Receiver<Control>,
    stats: Arc<Stats>,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUED_CHUNKS);
    let reading = async move {
        let mut buf = vec![0u8; CHUNK_BYTES];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send((Instant::now(), buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
        // Dropping `tx` lets the writer drain what is queued, then finish.
    };
    let mut turn = control.clone();
    let writing = async move {
        while let Some((arrived, chunk)) = rx.recv().await {
            if !wait_turn(&mut turn, arrived).await {
                return;
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
            stats.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        let _ = to.shutdown().await;
    };
    let mut cut = control;
    tokio::select! {
        _ = async { tokio::join!(reading, writing) } => {}
        () = wait_cut(&mut cut) => {}
    }
}

/// Waits until a chunk that arrived at `arrived` may pass; false when the
/// connection is cut instead.
async fn wait_turn(control: &mut watch::Receiver<Control>, arrived: Instant) -> bool {
    loop {
        let now = *control.borrow_and_update();
        if now.cuts() {
            return false;
        }
        let due = match now.mode {
            Mode::Pass => return true,
            Mode::Delay(delay) => arrived + delay,
            // Blackholed: wait for the mode to change.
            Mode::Blackhole | Mode::Down => Instant::now() + Duration::from_secs(3600),
        };
        if Instant::now() >= due {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep_until(due) => {}
            changed = control.changed() => {
                if changed.is_err() {
                    return false;
                }
            }
        }
    }
}

/// Returns once the proxy cuts its connections (mode `Down`, or dropped).
async fn wait_cut(control: &mut watch::Receiver<Control>) {
    loop {
        if control.borrow_and_update().cuts() {
            return;
        }
        if control.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// An echo server on loopback for the proxy to forward to.
    fn echo_server() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming().take(8) {
                let Ok(mut conn) = conn else { continue };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = conn.read(&mut buf) {
                        if n == 0 || conn.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn round_trip(conn: &mut std::net::TcpStream) -> std::io::Result<Duration> {
        let start = std::time::Instant::now();
        conn.write_all(b"ping")?;
        let mut buf = [0u8; 4];
        conn.read_exact(&mut buf)?;
        assert_eq!(&buf, b"ping");
        Ok(start.elapsed())
    }

    #[test]
    fn passes_delays_blackholes_and_cuts() {
        let proxy = Proxy::start(echo_server());
        let mut conn = std::net::TcpStream::connect(proxy.listen).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        round_trip(&mut conn).unwrap();

        proxy.set(Mode::Delay(Duration::from_millis(100)));
        let took = round_trip(&mut conn).unwrap();
        assert!(took >= Duration::from_millis(200), "{took:?}");

        // Blackholed: nothing comes back, nothing is lost once healed.
        proxy.set(Mode::Blackhole);
        conn.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        conn.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        assert!(
            conn.read_exact(&mut buf).is_err(),
            "blackholed traffic passed"
        );
        proxy.set(Mode::Pass);
        conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        conn.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        assert_eq!(proxy.open_connections(), 1);

        // Down: the connection is cut, and new ones are closed at once.
        proxy.set(Mode::Down);
        let mut buf = [0u8; 1];
        assert!(matches!(conn.read(&mut buf), Ok(0) | Err(_)));
        let mut again = std::net::TcpStream::connect(proxy.listen).unwrap();
        again
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        assert!(matches!(again.read(&mut buf), Ok(0) | Err(_)));

        proxy.set(Mode::Pass);
        let mut fresh = std::net::TcpStream::connect(proxy.listen).unwrap();
        fresh
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        round_trip(&mut fresh).unwrap();
        assert!(proxy.bytes() >= 16);
    }
}

//! A tiny HTTP server for the `registry` command's tests: its `/healthz`
//! can be switched between passing and failing, it can be told to exit,
//! and it writes down when things happened, for the test to compare with
//! what etcd saw.
//!
//!     health-server --port PORT --record FILE [--listen-after MS] [--failing] [--term-exit CODE]
//!
//! - `GET /healthz`: 200 while passing, 503 while failing;
//! - `GET /control/fail`, `GET /control/pass`: switches it;
//! - `GET /control/exit/CODE`: exits with CODE, on its own;
//! - SIGTERM, SIGINT: exits with `--term-exit` (default 0); SIGHUP, SIGUSR1: noted.
//!
//! FILE gets `pid PID`, then one line per moment, `WHAT UNIX_NANOS`:
//! `listening`, `first_pass` (the first 200 on /healthz), `exit`,
//! `sigterm`, `sigint`, `sighup`, `sigusr1`. It listens on 127.0.0.1 only after `--listen-after`
//! milliseconds (a server slow to start), and exits by itself after 10
//! minutes whatever happens.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

const LIFETIME: Duration = Duration::from_secs(600);

struct Settings {
    port: u16,
    record: String,
    listen_after: Duration,
    failing: bool,
    term_exit: i32,
}

fn settings() -> Settings {
    let mut s = Settings {
        port: 0,
        record: String::new(),
        listen_after: Duration::ZERO,
        failing: false,
        term_exit: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| panic!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--port" => s.port = value().parse().expect("--port: a number"),
            "--record" => s.record = value(),
            "--listen-after" => {
                s.listen_after = Duration::from_millis(value().parse().expect("--listen-after: ms"))
            }
            "--failing" => s.failing = true,
            "--term-exit" => s.term_exit = value().parse().expect("--term-exit: a number"),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(!s.record.is_empty(), "--record FILE is required");
    s
}

/// Appends `WHAT UNIX_NANOS` to the record file.
#[derive(Clone)]
struct Record(Arc<Mutex<std::fs::File>>);

impl Record {
    fn note(&self, what: &str) {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        self.line(&format!("{what} {nanos}"));
    }

    fn line(&self, text: &str) {
        let mut file = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(file, "{text}");
        let _ = file.flush();
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let s = settings();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&s.record)
        .expect("open the record file");
    let record = Record(Arc::new(Mutex::new(file)));
    let passing = Arc::new(AtomicBool::new(!s.failing));
    let first_pass = Arc::new(AtomicBool::new(false));

    record.line(&format!("pid {}", std::process::id()));
    for (kind, what) in [
        (SignalKind::terminate(), "sigterm"),
        (SignalKind::interrupt(), "sigint"),
        (SignalKind::hangup(), "sighup"),
        (SignalKind::user_defined1(), "sigusr1"),
    ] {
        let mut caught = signal(kind).expect("catch a signal");
        let record = record.clone();
        let term_exit = s.term_exit;
        tokio::spawn(async move {
            while caught.recv().await.is_some() {
                record.note(what);
                if what == "sigterm" || what == "sigint" {
                    std::process::exit(term_exit);
                }
            }
        });
    }
    tokio::spawn(async {
        tokio::time::sleep(LIFETIME).await;
        std::process::exit(3);
    });

    tokio::time::sleep(s.listen_after).await;
    let listener = TcpListener::bind(("127.0.0.1", s.port))
        .await
        .expect("listen");
    record.note("listening");
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let (record, passing, first_pass) = (record.clone(), passing.clone(), first_pass.clone());
        tokio::spawn(async move {
            // The whole head: answering (and closing) before it all came
            // would reset the connection under a client still writing.
            let mut buf = [0u8; 2048];
            let mut n = 0;
            while n < buf.len() && !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf[n..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => n += read,
                }
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            let mut exit = None;
            let status = match path.as_str() {
                "/healthz" if passing.load(Ordering::SeqCst) => {
                    if !first_pass.swap(true, Ordering::SeqCst) {
                        record.note("first_pass");
                    }
                    "200 OK"
                }
                "/healthz" => "503 Service Unavailable",
                "/control/fail" => {
                    passing.store(false, Ordering::SeqCst);
                    "200 OK"
                }
                "/control/pass" => {
                    passing.store(true, Ordering::SeqCst);
                    "200 OK"
                }
                other => match other.strip_prefix("/control/exit/") {
                    Some(code) => {
                        exit = code.parse::<i32>().ok();
                        "200 OK"
                    }
                    None => "200 OK",
                },
            };
            let answer =
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = conn.write_all(answer.as_bytes()).await;
            let _ = conn.shutdown().await;
            if let Some(code) = exit {
                record.note("exit");
                std::process::exit(code);
            }
        });
    }
}

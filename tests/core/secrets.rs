//! Secrets never leak: every log line (all crates, TRACE), every error,
//! every `Debug` output and every event is captured and searched for the
//! passwords used. Alone in its file: it installs the global log subscriber.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::secure::{SERVICE_PASSWORD, SERVICE_USER};
use harness::Etcd;
use libregistry::{Client, Options, Service};

const WRONG_PASSWORD: &str = "Wrong-Known-pw-4-leak-search";

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn passwords_appear_in_no_log_error_debug_output_or_event() {
    let logs = Capture::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let etcd = Etcd::start_with_auth(1).await;
    let mut seen = String::new();
    let opts = || {
        Options::new()
            .endpoints(etcd.endpoints())
            .ttl_secs(2)
            .request_timeout(Duration::from_secs(2))
    };

    let good = opts().credentials(SERVICE_USER, SERVICE_PASSWORD);
    seen += &format!("{good:?}\n{:?}\n", good.resolve().unwrap());
    let client = Client::connect(good).await.unwrap();
    let mut events = client.events();
    seen += &format!("{client:?}\n");
    let reg = client
        .register(&Service::new("micro", "127.0.0.1:4000"))
        .await
        .unwrap();
    reg.update([("weight", "0")]).await.unwrap();
    let denied = client
        .register(&Service::new("payments", "h:1"))
        .await
        .unwrap_err();
    seen += &format!("{denied}\n{denied:?}\n");
    tokio::time::sleep(Duration::from_secs(3)).await; // tokens expire, get refreshed
    reg.deregister().await.unwrap();
    client.close().await.unwrap();
    while let Some(event) = events.try_next() {
        seen += &format!("{event:?}\n");
    }

    let bad = opts().credentials(SERVICE_USER, WRONG_PASSWORD);
    seen += &format!("{bad:?}\n");
    let refused = Client::connect(bad).await.unwrap_err();
    seen += &format!("{refused}\n{refused:?}\n");

    // Through the environment and a child process too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_provider"))
        .args(["payments", "127.0.0.1:4000"])
        .env("REGISTRY_ENDPOINTS", etcd.endpoints_csv())
        .env("REGISTRY_USER", SERVICE_USER)
        .env("REGISTRY_PASSWORD", WRONG_PASSWORD)
        .output()
        .unwrap();
    seen += &String::from_utf8_lossy(&out.stdout);
    seen += &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());

    let logged = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(logged.len() > 1000, "the capture saw the library's logs");
    assert!(seen.contains("permission denied"), "{seen}");
    for password in [SERVICE_PASSWORD, WRONG_PASSWORD] {
        assert!(!logged.contains(password), "password in the logs");
        assert!(
            !seen.contains(password),
            "password in errors, Debug or events:\n{seen}"
        );
    }
    println!(
        "searched {} bytes of logs and {} bytes of errors, Debug and events: no password",
        logged.len(),
        seen.len()
    );
}

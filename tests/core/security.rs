//! A secured etcd: TLS, mutual TLS, and users with expiring tokens and a
//! role limited to `/micro/`.

use std::time::{Duration, Instant};

use harness::secure::{TestCerts, SERVICE_PASSWORD, SERVICE_USER};
use harness::{dump, spawn_provider, wait_until, Etcd};
use libregistry::{Client, Error, Options, Service, TlsFiles};

fn tls(ca: &std::path::Path) -> TlsFiles {
    TlsFiles {
        ca_file: Some(ca.to_path_buf()),
        ..TlsFiles::default()
    }
}

fn opts(etcd: &Etcd) -> Options {
    Options::new()
        .endpoints(etcd.endpoints())
        .ttl_secs(2)
        .request_timeout(Duration::from_secs(2))
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_registration_works_and_a_wrong_ca_fails_clearly() {
    let certs = TestCerts::generate();
    let etcd = Etcd::start_tls(&certs, false).await;
    assert!(etcd.endpoints()[0].starts_with("https://"));

    let client = Client::connect(opts(&etcd).tls(tls(&certs.ca)))
        .await
        .unwrap();
    client
        .register(&Service::new("micro", "127.0.0.1:4000"))
        .await
        .unwrap();
    let mut raw = etcd.raw().await;
    assert_eq!(dump(&mut raw, "/micro/").await.len(), 1);
    assert_eq!(client.discover("micro").await.unwrap().len(), 1);
    client.close().await.unwrap();

    let start = Instant::now();
    match Client::connect(opts(&etcd).tls(tls(&certs.other_ca))).await {
        Err(Error::Tls(why)) => assert!(why.to_lowercase().contains("certificate"), "{why}"),
        other => panic!("expected a TLS error, got {other:?}"),
    }
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "no hang: {:?}",
        start.elapsed()
    );

    // https without a CA, or TLS files with http endpoints: refused up front.
    let no_ca = Client::connect(opts(&etcd)).await.unwrap_err();
    assert!(
        matches!(&no_ca, Error::InvalidArgument { field, .. } if field == "ca_file"),
        "{no_ca}"
    );
    let plain = Options::new()
        .endpoints(["http://127.0.0.1:1"])
        .tls(tls(&certs.ca));
    assert!(matches!(
        Client::connect(plain).await,
        Err(Error::InvalidArgument { .. })
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_needs_the_client_certificate() {
    let certs = TestCerts::generate();
    let etcd = Etcd::start_tls(&certs, true).await;

    let start = Instant::now();
    let refused = Client::connect(opts(&etcd).tls(tls(&certs.ca)))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::Tls(_) | Error::Unavailable(..)),
        "{refused}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "no hang: {:?}",
        start.elapsed()
    );

    let files = TlsFiles {
        ca_file: Some(certs.ca.clone()),
        cert_file: Some(certs.client_cert.clone()),
        key_file: Some(certs.client_key.clone()),
    };
    let client = Client::connect(opts(&etcd).tls(files)).await.unwrap();
    client
        .register(&Service::new("micro", "127.0.0.1:4000"))
        .await
        .unwrap();
    client.close().await.unwrap();

    // The same through the environment, from another process.
    let (mut provider, line) = spawn_provider(
        env!("CARGO_BIN_EXE_provider"),
        "micro",
        "127.0.0.1:4001",
        &[
            ("REGISTRY_ENDPOINTS", &etcd.endpoints_csv()),
            ("REGISTRY_CA_FILE", &certs.ca.display().to_string()),
            (
                "REGISTRY_CERT_FILE",
                &certs.client_cert.display().to_string(),
            ),
            ("REGISTRY_KEY_FILE", &certs.client_key.display().to_string()),
        ],
    );
    assert_eq!(line, "registered /micro/127.0.0.1:4001");
    provider.kill().unwrap();
    provider.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_keeps_registrations_alive_past_token_expiry() {
    let token_ttl = 1;
    let etcd = Etcd::start_with_auth(token_ttl).await;
    let client = Client::connect(opts(&etcd).credentials(SERVICE_USER, SERVICE_PASSWORD))
        .await
        .unwrap();
    client
        .register(&Service::new("micro", "127.0.0.1:4000"))
        .await
        .unwrap();
    let lease = client.lease_id();
    let watcher = client.watch("micro").await.unwrap();

    // Several token lifetimes: keepalive goes on, the lease stays.
    tokio::time::sleep(Duration::from_secs(u64::from(token_ttl) * 5)).await;
    let mut raw = etcd.raw().await;
    let held = dump(&mut raw, "/micro/").await;
    assert_eq!(held.len(), 1);
    assert_eq!(client.lease_id(), lease, "the lease was never lost");

    // After expiry: a new register, healing a deleted key, and the watcher all work.
    client
        .register(&Service::new("micro", "127.0.0.1:4001"))
        .await
        .unwrap();
    raw.delete("/micro/127.0.0.1:4000", None).await.unwrap();
    wait_until(
        Duration::from_secs(10),
        "deleted key put back after token expiry",
        || {
            let mut raw = raw.clone();
            async move { dump(&mut raw, "/micro/").await.len() == 2 }
        },
    )
    .await;
    wait_until(
        Duration::from_secs(10),
        "watcher follows after token expiry",
        || async { watcher.instances().len() == 2 },
    )
    .await;
    client.close().await.unwrap();
    assert!(dump(&mut raw, "/micro/").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_password_and_foreign_prefixes_are_refused_clearly() {
    let etcd = Etcd::start_with_auth(30).await;
    let start = Instant::now();
    match Client::connect(opts(&etcd).credentials(SERVICE_USER, "not-the-password")).await {
        Err(Error::PermissionDenied(why)) => {
            assert!(why.contains("authentication failed"), "{why}")
        }
        other => panic!("expected permission denied, got {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(3));

    let client = Client::connect(opts(&etcd).credentials(SERVICE_USER, SERVICE_PASSWORD))
        .await
        .unwrap();
    let mine = client
        .register(&Service::new("micro", "127.0.0.1:4000"))
        .await
        .unwrap();
    let lease = client.lease_id();
    match client
        .register(&Service::new("payments", "127.0.0.1:4000"))
        .await
    {
        Err(Error::PermissionDenied(why)) => {
            assert!(
                why.contains("/payments/127.0.0.1:4000"),
                "names the key: {why}"
            )
        }
        other => panic!("expected permission denied, got {other:?}"),
    }
    // The role's prefix cannot be escaped through names or the prefix option.
    assert!(matches!(
        client
            .register(&Service::new("micro/../payments", "h:1"))
            .await,
        Err(Error::InvalidArgument { .. })
    ));
    let escape = opts(&etcd)
        .prefix("/micro/..")
        .credentials(SERVICE_USER, SERVICE_PASSWORD);
    assert!(matches!(
        Client::connect(escape).await,
        Err(Error::InvalidArgument { .. })
    ));
    // Nothing else of the client was disturbed.
    mine.update([("weight", "5")]).await.unwrap();
    assert_eq!(client.lease_id(), lease);
    let mut raw = etcd.raw().await;
    let held = dump(&mut raw, "/").await;
    assert_eq!(held.keys().collect::<Vec<_>>(), ["/micro/127.0.0.1:4000"]);
    client.close().await.unwrap();
}

//! `make demo`: registers the seed's example service `micro` at
//! 127.0.0.1:4000, shows what etcd holds, shows healing across an etcd
//! restart, then deregisters.
//!
//! Starts its own etcd on loopback unless `REGISTRY_ENDPOINTS` points
//! elsewhere (then the restart step is skipped: it is not ours to restart).

use std::time::{Duration, Instant};

use harness::{dump, Etcd};
use libregistry::{Client, Event, Options, Service};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("demo failed: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut own_etcd = match std::env::var("REGISTRY_ENDPOINTS") {
        Ok(endpoints) if !endpoints.trim().is_empty() => {
            println!("== using etcd at {endpoints} (REGISTRY_ENDPOINTS)");
            None
        }
        _ => {
            let etcd = Etcd::start().await;
            let member = &etcd.members[0];
            println!(
                "== started etcd {} on {} (pid {})",
                harness::etcd_version(),
                member.endpoint(),
                member.pid().unwrap_or(0)
            );
            Some(etcd)
        }
    };
    let mut options = Options::new();
    if let Some(etcd) = &own_etcd {
        options = options.endpoints(etcd.endpoints()).ttl_secs(5);
    }
    let client = Client::connect(options).await?;
    // The lease comes with the first registration: a client that only
    // discovers never holds one.
    println!("== connected (no lease yet: it is granted with the first registration)");
    client.on_event(|event| match event {
        Event::LeaseLost { lease_id, reason } => println!("   event: lease {lease_id:x} lost ({reason})"),
        Event::Restored { lease_id, registrations, outage } => println!(
            "   event: {registrations} registration(s) restored under lease {lease_id:x} after {outage:.2?}"
        ),
        other => println!("   event: {other:?}"),
    })?;

    let service = Service::new("micro", "127.0.0.1:4000")
        .env("dev")
        .region("beijing")
        .zone("zone1")
        .deployment("red")
        .app_version("ahkfasgasdf")
        .build_time("2020-10-14T10:00:00Z");
    let registration = client.register(&service).await?;
    println!(
        "== registered {} under lease {:x}, granted TTL {} s",
        registration.key(),
        client.lease_id().unwrap_or(0),
        client.granted_ttl_secs()
    );
    let endpoints = client.options().endpoints.clone();
    let mut raw = etcd_client::Client::connect(endpoints, None).await?;
    show(&mut raw).await;

    if let Some(etcd) = own_etcd.as_mut() {
        println!(
            "== killing etcd and restarting it on a wiped data dir (all keys and leases gone)"
        );
        etcd.wipe_and_restart().await;
        let healthy = Instant::now();
        let mut raw = etcd.raw().await;
        loop {
            if dump(&mut raw, "/micro/").await.len() == 1 && client.lease_id().is_some() {
                break;
            }
            if healthy.elapsed() > Duration::from_secs(30) {
                return Err("registration did not come back within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        println!(
            "== healed: key back {:.2?} after etcd was up again",
            healthy.elapsed()
        );
        show(&mut raw).await;
    }

    registration.deregister().await?;
    println!("== deregistered");
    let mut raw = etcd_client::Client::connect(client.options().endpoints.clone(), None).await?;
    show(&mut raw).await;
    client.close().await?;
    println!("== closed the client (lease revoked)");
    if own_etcd.take().is_some() {
        println!("== stopped the etcd this demo started");
    }
    Ok(())
}

async fn show(raw: &mut etcd_client::Client) {
    let held = dump(raw, "/micro/").await;
    if held.is_empty() {
        println!("   etcd holds nothing under /micro/");
    }
    for (key, (value, lease)) in held {
        println!("   etcd holds: {key}  (lease {lease:x})\n               {value}");
    }
}

//! A provider process for the soak (`scripts/soak`): registers COUNT
//! services, then registers and deregisters on command until told to quit
//! or killed.
//!
//! Usage: soak-provider ID COUNT NAMES (endpoints and TTL from
//! REGISTRY_ENDPOINTS / REGISTRY_TTL; request timeout 1 s). Service `i` is
//! `soak{i % NAMES}` at `10.1.{ID}.1:{10000 + i}`.
//!
//! Prints `ready` once the first COUNT are registered, then answers each
//! line of standard input with one line:
//! - `reg I` / `dereg I`: `ok`, or `err MESSAGE`;
//! - `lease`: `lease ID` (hex; 0 while the client holds none);
//! - `quit`: closes the client, prints `bye` and exits.
//!
//! The soak drives it over the harness's child protocol
//! (tests/harness/child.rs) from tests/bin/soak/provider.rs.
//!
//! With `SOAK_LOG_DIR` set, the library's debug log and every failed command
//! go to `SOAK_LOG_DIR/provider-ID.log` (for explaining a violation).

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::time::Duration;

use libregistry::blocking::{Client, Registration};
use libregistry::{Options, Service};

/// Tries to make the first registrations (etcd may be mid-fault) before giving up.
const START_ATTEMPTS: u32 = 60;

fn service(id: u32, names: u32, i: u32) -> Service {
    Service::new(
        format!("soak{}", i % names),
        format!("10.1.{id}.1:{}", 10_000 + i),
    )
}

fn number(arg: Option<String>, what: &str) -> u32 {
    match arg.as_deref().map(str::parse) {
        Some(Ok(n)) => n,
        _ => {
            eprintln!("usage: soak-provider ID COUNT NAMES ({what} missing or not a number)");
            std::process::exit(2);
        }
    }
}

/// Sends the library's debug log (and ours) to `dir/provider-ID.log`.
fn log_to(dir: &std::path::Path, id: u32) {
    use tracing_subscriber::prelude::*;
    let path = dir.join(format!("provider-{id}.log"));
    // Every provider creates it; the first one wins, the others find it.
    let _ = std::fs::create_dir_all(dir);
    let file = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        Ok(file) => file,
        Err(e) => {
            eprintln!("soak-provider {id}: cannot write {}: {e}", path.display());
            return;
        }
    };
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file)),
        )
        .with(
            tracing_subscriber::filter::Targets::new()
                .with_target("libregistry", tracing::Level::DEBUG)
                .with_target("soak_provider", tracing::Level::DEBUG),
        )
        .try_init();
}

fn main() {
    let mut args = std::env::args().skip(1);
    let id = number(args.next(), "ID");
    let count = number(args.next(), "COUNT");
    let names = number(args.next(), "NAMES").max(1);
    if let Some(dir) = std::env::var_os("SOAK_LOG_DIR") {
        log_to(std::path::Path::new(&dir), id);
    }
    let options = Options::new().request_timeout(Duration::from_secs(1));

    let mut attempt = 0;
    let (client, first) = loop {
        attempt += 1;
        let started = Client::connect(options.clone()).and_then(|client| {
            let services: Vec<Service> = (0..count).map(|i| service(id, names, i)).collect();
            let regs = client.register_many(&services)?;
            Ok((client, regs))
        });
        match started {
            Ok(started) => break started,
            Err(e) if attempt < START_ATTEMPTS => {
                eprintln!("soak-provider {id}: not registered yet ({e}); retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => {
                eprintln!("soak-provider {id}: giving up: {e}");
                std::process::exit(1);
            }
        }
    };
    let mut regs: BTreeMap<u32, Registration> = (0..count).zip(first).collect();

    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        let answer = match (words.next(), words.next().map(str::parse::<u32>)) {
            (Some("reg"), Some(Ok(i))) => match client.register(&service(id, names, i)) {
                Ok(reg) => {
                    regs.insert(i, reg);
                    "ok".to_string()
                }
                Err(e) => {
                    tracing::warn!(i, error = %e, "reg failed");
                    format!("err {e}")
                }
            },
            (Some("dereg"), Some(Ok(i))) => match regs.remove(&i).map(|r| r.deregister()) {
                Some(Err(e)) => {
                    tracing::warn!(i, error = %e, "dereg failed");
                    format!("err {e}")
                }
                _ => "ok".to_string(),
            },
            (Some("lease"), None) => format!("lease {:x}", client.lease_id().unwrap_or(0)),
            (Some("quit"), None) => {
                let _ = client.close();
                let _ = writeln!(out, "bye");
                let _ = out.flush();
                return;
            }
            _ => format!("err unknown command {line:?}"),
        };
        let _ = writeln!(out, "{answer}");
        let _ = out.flush();
    }
    // Standard input closed (the soak ended or died): leave cleanly.
    let _ = client.close();
}

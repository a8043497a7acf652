//! The processes of the scale benchmark, modes of this binary:
//!
//! - `bench scale-provider ENDPOINTS NAME FIRST COUNT TTL`: one client
//!   registering COUNT instances of NAME (addresses from FIRST) in one
//!   `register_many`; answers `ready MS` (how long connecting and
//!   registering took) and `quit` (closes the client, answers `bye`).
//! - `bench scale-watch ENDPOINTS NAME...`: one client with a watcher per
//!   name; answers `counts N1 N2 ...` (each watcher's instances) and `quit`.
//!
//! A provider that cannot register answers `failed WHY` to every command.

use std::io::BufRead;
use std::time::{Duration, Instant};

use libregistry::{blocking, Options, Service};

use crate::child::addr;

fn options(endpoints: &str, ttl: u32) -> Options {
    Options::new()
        .endpoints_csv(endpoints)
        .ttl_secs(ttl)
        // Connecting while hundreds of processes start at once takes longer.
        .request_timeout(Duration::from_secs(30))
}

/// Lines of standard input, at most `n`.
fn commands(n: usize) -> impl Iterator<Item = String> {
    std::io::stdin()
        .lock()
        .lines()
        .map_while(Result::ok)
        .take(n)
}

pub fn provider(args: &[String]) {
    let [endpoints, name, first, count, ttl] = args else {
        eprintln!("usage: bench scale-provider ENDPOINTS NAME FIRST COUNT TTL");
        std::process::exit(2);
    };
    let (first, count): (usize, usize) = (first.parse().unwrap_or(0), count.parse().unwrap_or(0));
    let started = Instant::now();
    let registered = blocking::Client::connect(options(endpoints, ttl.parse().unwrap_or(10)))
        .and_then(|client| {
            let services: Vec<Service> = (first..first + count)
                .map(|i| Service::new(name.as_str(), addr(i)))
                .collect();
            let regs = client.register_many(&services)?;
            Ok((client, regs))
        });
    let status = match &registered {
        Ok(_) => format!("ready {}", started.elapsed().as_millis()),
        Err(e) => format!("failed {e}"),
    };
    for line in commands(100) {
        if line == "quit" {
            if let Ok((client, _)) = &registered {
                let _ = client.close();
            }
            println!("bye");
            return;
        }
        println!("{status}");
    }
}

pub fn watcher(args: &[String]) {
    let Some((endpoints, names)) = args.split_first() else {
        eprintln!("usage: bench scale-watch ENDPOINTS NAME...");
        std::process::exit(2);
    };
    let watching = blocking::Client::connect(options(endpoints, 10)).and_then(|client| {
        let watchers = names
            .iter()
            .map(|n| client.watch(n))
            .collect::<libregistry::Result<Vec<_>>>()?;
        Ok((client, watchers))
    });
    for line in commands(1_000_000) {
        match (&watching, line.as_str()) {
            (_, "quit") => {
                println!("bye");
                return;
            }
            (Ok((_, watchers)), _) => {
                let counts: Vec<String> = watchers
                    .iter()
                    .map(|w| w.instances().len().to_string())
                    .collect();
                println!("counts {}", counts.join(" "));
            }
            (Err(e), _) => println!("failed {e}"),
        }
    }
}

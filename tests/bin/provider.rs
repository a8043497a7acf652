//! A provider process for tests: registers one service and lives until killed.
//!
//! Usage: provider NAME ADDR (endpoints and TTL from REGISTRY_ENDPOINTS / REGISTRY_TTL).
//! Prints `registered KEY` once etcd has confirmed.

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: provider NAME ADDR");
        std::process::exit(2);
    }
    let client = match libregistry::blocking::Client::connect(libregistry::Options::new()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("provider: {e}");
            std::process::exit(1);
        }
    };
    match client.register(&libregistry::Service::new(&args[1], &args[2])) {
        Ok(reg) => {
            println!("registered {}", reg.key());
            let _ = std::io::stdout().flush();
        }
        Err(e) => {
            eprintln!("provider: {e}");
            std::process::exit(1);
        }
    }
    loop {
        std::thread::park();
    }
}

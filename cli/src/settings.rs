//! From the parsed command line to the library's [`Options`] and
//! [`Service`], judged by the library's own rules before anything starts;
//! a refusal names the flag (or the variable) it came from.

use std::time::Duration;

use libregistry::{Client, Error, Options, Service};

use crate::args::{Connection, ServiceArgs};
use crate::exit::Failure;

/// How long registering waits for the first passing probe: as long as the
/// command lives (it ends the wait by exiting) or until a signal; the
/// library wants a bound, and a year stands for none.
const READY_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// The options the flags give, the rest from `REGISTRY_*` and defaults;
/// checked now (endpoints, TTL, prefix, TLS files, credentials).
pub fn options(connection: &Connection) -> Result<Options, Failure> {
    let mut options = Options::new();
    if let Some(endpoints) = &connection.endpoints {
        options = options.endpoints_csv(endpoints);
    }
    if let Some(ttl) = connection.ttl {
        options = options.ttl_secs(ttl);
    }
    options.resolve().map_err(refused)?;
    Ok(options)
}

/// The key prefix in force (from `REGISTRY_PREFIX`).
pub fn prefix(options: &Options) -> Result<String, Failure> {
    Ok(options.resolve().map_err(refused)?.prefix)
}

/// Connects: a bad setting found only now (a `REGISTRY_WEIGHT` that is no
/// number) is a usage error, anything else an etcd failure.
pub async fn connect(options: Options) -> Result<Client, Failure> {
    Client::connect(options).await.map_err(refused)
}

/// The service `run` and `register` register, checked whole (in the
/// layout `options` say: `REGISTRY_LAYOUT`).
pub fn service(args: &ServiceArgs, options: &Options) -> Result<Service, Failure> {
    let mut service = Service::new(&args.name, &args.addr);
    for (key, value) in &args.meta {
        service.set(key, value.as_str()).map_err(refused)?;
    }
    if let Some(check) = &args.check {
        let mut check = check
            .clone()
            .tuned(args.check_interval, None, args.check_fails, None)
            .map_err(refused)?;
        check.ready_timeout = READY_WAIT;
        service = service.check(check);
    }
    let layout = options.resolve().map_err(refused)?.layout;
    service.validate(layout).map_err(refused)?;
    Ok(service)
}

/// A bad argument becomes a usage error naming its flag; other errors
/// stay the library's.
pub fn refused(err: Error) -> Failure {
    match &err {
        Error::InvalidArgument { field, reason } => {
            Failure::Usage(format!("invalid value for '{}': {reason}", flag_of(field)))
        }
        _ => Failure::Etcd(err),
    }
}

/// The flag (or environment variable) a field the library names comes from.
fn flag_of(field: &str) -> String {
    const METADATA: [&str; 8] = [
        "env",
        "region",
        "zone",
        "scheme",
        "weight",
        "deployment",
        "appVersion",
        "buildTime",
    ];
    match field {
        "endpoints" => "--endpoints".into(),
        "ttl" => "--ttl".into(),
        "name" => "--name".into(),
        "addr" => "--addr".into(),
        "check" => "--check".into(),
        "check interval" | "check timeout" => "--check-interval".into(),
        "check fails" => "--check-fails".into(),
        _ if METADATA.contains(&field) => format!("--meta {field}"),
        _ => match field.strip_prefix("metadata key ") {
            Some(key) => format!("--meta {}", key.trim_matches('"')),
            None => field.to_string(), // REGISTRY_TTL, REGISTRY_WEIGHT...
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Connection;

    fn message(failure: Failure) -> String {
        match failure {
            Failure::Usage(message) => message,
            other => panic!("a usage error expected, got {other:?}"),
        }
    }

    fn args(meta: &[(&str, &str)]) -> ServiceArgs {
        ServiceArgs {
            name: "micro".into(),
            addr: "127.0.0.1:4000".into(),
            meta: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            check: None,
            check_interval: None,
            check_fails: None,
        }
    }

    #[test]
    fn refusals_name_the_flag() {
        let ttl = options(&Connection {
            endpoints: Some("http://127.0.0.1:1".into()),
            ttl: Some(1),
            verbose: 0,
        })
        .unwrap_err();
        assert!(message(ttl).starts_with("invalid value for '--ttl': "));
        let endpoints = options(&Connection {
            endpoints: Some("127.0.0.1:2379".into()),
            ttl: None,
            verbose: 0,
        })
        .unwrap_err();
        assert!(message(endpoints).starts_with("invalid value for '--endpoints': "));
        let weight = message(service(&args(&[("weight", "heavy")]), &Options::new()).unwrap_err());
        assert_eq!(
            weight,
            "invalid value for '--meta weight': \"heavy\" is not an integer in 0..=10000"
        );
        let mut bad_addr = args(&[]);
        bad_addr.addr = "localhost".into();
        assert!(message(service(&bad_addr, &Options::new()).unwrap_err())
            .starts_with("invalid value for '--addr'"));
        assert_eq!(flag_of("metadata key \"a/b\""), "--meta a/b");
        assert_eq!(flag_of("REGISTRY_WEIGHT"), "REGISTRY_WEIGHT");
    }

    #[test]
    fn a_check_waits_for_readiness_as_long_as_it_takes() {
        let mut with_check = args(&[("zone", "z1")]);
        with_check.check = Some(libregistry::health::Check::parse("tcp://127.0.0.1:1").unwrap());
        with_check.check_interval = Some(Duration::from_millis(200));
        let service = service(&with_check, &Options::new()).unwrap();
        let check = service.health_check().unwrap();
        assert_eq!(check.interval, Duration::from_millis(200));
        assert_eq!(check.ready_timeout, READY_WAIT);
        with_check.check_fails = Some(0);
        assert!(
            message(super::service(&with_check, &Options::new()).unwrap_err())
                .starts_with("invalid value for '--check-fails'")
        );
    }
}

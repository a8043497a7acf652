//! kratos's layout (`contrib/registry/etcd` of github.com/go-kratos/kratos),
//! read by its etcd registry and so by kratos's gRPC and HTTP clients.
//!
//! Key: `{namespace}/{name}/{id}`, the namespace `/microservices` unless
//! the prefix names another (kratos's `Namespace` option). Value: the JSON
//! of kratos's `registry.ServiceInstance`,
//! `{"id":..,"name":..,"version":..,"metadata":{..},"endpoints":["grpc://host:port"]}`,
//! as Go's `json.Marshal` writes it (metadata keys sorted). Every metadata
//! value is a string: kratos reads a whole service at once and one value it
//! cannot decode (a number in `metadata`) fails the whole read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::instance::Instance;
use crate::names::split_addr;

/// The endpoint schemes kratos's servers write (`grpcs`, `https`: with TLS).
pub(crate) const SCHEMES: [&str; 4] = ["grpc", "grpcs", "http", "https"];

#[derive(Serialize)]
struct ServiceInstance<'a> {
    id: &'a str,
    name: &'a str,
    version: &'a str,
    metadata: BTreeMap<&'a str, String>,
    endpoints: [String; 1],
}

#[derive(Deserialize)]
struct Found {
    id: Option<String>,
    name: Option<String>,
    version: Option<String>,
    metadata: Option<Map<String, Value>>,
    endpoints: Option<Vec<String>>,
}

fn text(instance: &Instance, key: &str) -> Option<String> {
    instance.meta(key).filter(|v| !v.is_empty())
}

/// The kratos instance's JSON: `id` and `version` from the metadata of the
/// same names (`id` defaults to the address, `version` to `appVersion`),
/// every other metadata entry as a string, one endpoint `{scheme}://{addr}`.
pub(crate) fn encode(instance: &Instance) -> Result<String> {
    let scheme = text(instance, "scheme").unwrap_or_else(|| "grpc".into());
    if !SCHEMES.contains(&scheme.as_str()) {
        return Err(Error::invalid(
            "scheme",
            format!(
                "{scheme:?} cannot be a kratos endpoint: the kratos layout takes {}",
                SCHEMES.join(", ")
            ),
        ));
    }
    let id = text(instance, "id").unwrap_or_else(|| instance.addr.clone());
    let version = text(instance, "version")
        .or_else(|| text(instance, "appVersion"))
        .unwrap_or_default();
    let metadata = instance
        .metadata
        .keys()
        .filter(|k| *k != "id" && *k != "version")
        .filter_map(|k| Some((k.as_str(), instance.meta(k)?)))
        .collect();
    serde_json::to_string(&ServiceInstance {
        id: &id,
        name: &instance.name,
        version: &version,
        metadata,
        endpoints: [format!("{scheme}://{}", instance.addr)],
    })
    .map_err(|e| Error::invalid("metadata", e.to_string()))
}

/// The address of the first endpoint of the most preferred scheme (gRPC
/// first), with that scheme; the query (`?isSecure=false` of older kratos)
/// is ignored.
fn endpoint(endpoints: &[String]) -> Option<(&'static str, &str)> {
    SCHEMES.iter().find_map(|scheme| {
        endpoints.iter().find_map(|e| {
            let rest = e.strip_prefix(scheme)?.strip_prefix("://")?;
            let host = rest.split(['?', '/', '#']).next()?;
            split_addr(host).ok().map(|_| (*scheme, host))
        })
    })
}

/// Decodes a kratos instance of service `name`; the error says why it is none.
pub(crate) fn decode(name: &str, key: &str, value: &[u8]) -> std::result::Result<Instance, String> {
    let found: Found =
        serde_json::from_slice(value).map_err(|e| format!("no kratos instance: {e}"))?;
    let endpoints = found.endpoints.ok_or("no \"endpoints\"")?;
    match found.name.as_deref() {
        Some(n) if n == name => {}
        // kratos's registry skips these too.
        other => return Err(format!("an instance of {other:?}, not of {name:?}")),
    }
    let (scheme, addr) = endpoint(&endpoints)
        .ok_or_else(|| format!("no {} endpoint in {endpoints:?}", SCHEMES.join("/")))?;
    let mut metadata = found.metadata.unwrap_or_default();
    metadata.retain(|_, v| !v.is_null());
    for (k, v) in [("id", found.id), ("version", found.version)] {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            metadata.insert(k.into(), Value::String(v));
        }
    }
    metadata.insert("scheme".into(), Value::String(scheme.into()));
    Ok(Instance {
        key: key.to_string(),
        name: name.to_string(),
        addr: addr.to_string(),
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(metadata: Value) -> Instance {
        Instance {
            key: "/microservices/greeter/127.0.0.1:9000".into(),
            name: "greeter".into(),
            addr: "127.0.0.1:9000".into(),
            metadata: metadata.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn golden_bytes_every_value_a_string() {
        let i = instance(serde_json::json!({
            "zone": "z1", "ip": "127.0.0.1", "port": 9000, "scheme": "grpc",
            "weight": 300, "appVersion": "v1.2.0", "id": "greeter-1"
        }));
        assert_eq!(
            encode(&i).unwrap(),
            concat!(
                r#"{"id":"greeter-1","name":"greeter","version":"v1.2.0","#,
                r#""metadata":{"appVersion":"v1.2.0","ip":"127.0.0.1","port":"9000","scheme":"grpc","weight":"300","zone":"z1"},"#,
                r#""endpoints":["grpc://127.0.0.1:9000"]}"#
            )
        );
        let back = decode("greeter", &i.key, encode(&i).unwrap().as_bytes()).unwrap();
        assert_eq!(back.addr, "127.0.0.1:9000");
        assert_eq!(back.weight(), 300);
        assert_eq!(back.zone(), Some("z1"));
        assert_eq!(back.meta("id").as_deref(), Some("greeter-1"));
        assert_eq!(back.meta("version").as_deref(), Some("v1.2.0"));
    }

    #[test]
    fn defaults_and_an_explicit_version() {
        let i = instance(serde_json::json!({"version": "2", "appVersion": "x", "scheme": "https"}));
        let v: Value = serde_json::from_str(&encode(&i).unwrap()).unwrap();
        assert_eq!(v["id"], "127.0.0.1:9000");
        assert_eq!(v["version"], "2");
        assert_eq!(v["endpoints"][0], "https://127.0.0.1:9000");
        assert!(v["metadata"].get("version").is_none());
    }

    #[test]
    fn schemes_other_than_grpc_and_http_are_refused() {
        let err = encode(&instance(serde_json::json!({"scheme": "thrift"}))).unwrap_err();
        assert!(err.to_string().contains("kratos layout"), "{err}");
    }

    #[test]
    fn reads_what_kratos_writes() {
        // kratos v2.8.3's gRPC and HTTP servers, and older ones' `?isSecure=false`.
        let v = br#"{"id":"6b1c","name":"greeter","version":"v1","metadata":null,
            "endpoints":["http://10.0.0.5:8000","grpc://10.0.0.5:9000?isSecure=false"]}"#;
        let i = decode("greeter", "/microservices/greeter/6b1c", v).unwrap();
        assert_eq!(i.addr, "10.0.0.5:9000");
        assert_eq!(i.meta("scheme").as_deref(), Some("grpc"));
        assert_eq!(i.meta("id").as_deref(), Some("6b1c"));
        let http = br#"{"id":"a","name":"greeter","endpoints":["http://[::1]:8000"]}"#;
        assert_eq!(decode("greeter", "k", http).unwrap().addr, "[::1]:8000");
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for bad in [
            &br#"{"Addr":"127.0.0.1:4000","ServerName":"greeter","Attributes":null,"Type":0,"Metadata":null}"#[..],
            b"127.0.0.1:4000",
            br#"{"id":"a","name":"other","endpoints":["grpc://a:1"]}"#,
            br#"{"id":"a","name":"greeter","endpoints":["thrift://a:1"]}"#,
            br#"{"id":"a","name":"greeter","endpoints":[]}"#,
            br#"{"id":"a","name":"greeter","endpoints":"grpc://a:1"}"#,
        ] {
            assert!(
                decode("greeter", "k", bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

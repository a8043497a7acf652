//! The key layout and value format in etcd, both ways: exactly the seed's,
//! readable by gRPC-go's resolver.
//!
//! Key: `{prefix}/{name}/{addr}`. Value: compact JSON of gRPC's `resolver.Address`,
//! `{"Addr":..,"ServerName":..,"Attributes":null,"Type":0,"Metadata":{..}}`.
//! Two value shapes are read back: ours and Go's `naming/endpoints`
//! (`{"Op":0,"Addr":..,"Metadata":..}`). Anything else is refused with a
//! reason; callers skip it with a log line.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::instance::Instance;

/// Largest value we write: etcd's default request limit is 1.5 MiB, but a
/// registration this large is a mistake, and every watcher receives it.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// The etcd key of `name` at `addr` under `prefix`.
pub fn key(prefix: &str, name: &str, addr: &str) -> String {
    format!("{prefix}/{name}/{addr}")
}

/// The key range holding every instance of `name`; the trailing `/` keeps
/// `foo` from matching `foo_other`.
pub fn service_prefix(prefix: &str, name: &str) -> String {
    format!("{prefix}/{name}/")
}

#[derive(Serialize)]
struct Address<'a> {
    #[serde(rename = "Addr")]
    addr: &'a str,
    #[serde(rename = "ServerName")]
    server_name: &'a str,
    #[serde(rename = "Attributes")]
    attributes: Option<()>,
    #[serde(rename = "Type")]
    kind: u8,
    #[serde(rename = "Metadata")]
    metadata: &'a Map<String, Value>,
}

/// The JSON value of an instance, fields in the seed's order.
pub fn encode_value(instance: &Instance) -> Result<String> {
    let value = serde_json::to_string(&Address {
        addr: &instance.addr,
        server_name: &instance.name,
        attributes: None,
        kind: 0,
        metadata: &instance.metadata,
    })
    .map_err(|e| Error::invalid("metadata", e.to_string()))?;
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::invalid(
            "metadata",
            format!(
                "the encoded value is {} bytes; the limit is {MAX_VALUE_BYTES}",
                value.len()
            ),
        ));
    }
    Ok(value)
}

/// Decodes the value stored at `key` for service `name`; the error says why
/// it is no instance.
pub fn decode(name: &str, key: &str, value: &[u8]) -> std::result::Result<Instance, String> {
    let parsed: Value = serde_json::from_slice(value).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(mut fields) = parsed else {
        return Err("not a JSON object".into());
    };
    // Go's endpoints.Update: Op 0 is Add; a Delete is never stored, but refuse it if seen.
    if let Some(op) = fields.get("Op") {
        if op.as_u64() != Some(0) {
            return Err(format!("endpoint operation {op} is not an Add"));
        }
    }
    let addr = match fields.remove("Addr") {
        Some(Value::String(a)) if !a.is_empty() => a,
        Some(_) => return Err("\"Addr\" is not a non-empty string".into()),
        None => return Err("no \"Addr\"".into()),
    };
    let metadata = match fields.remove("Metadata") {
        Some(Value::Object(m)) => m,
        // Go's Metadata is `interface{}`: keep a non-object under one key rather than drop it.
        Some(Value::Null) | None => Map::new(),
        Some(other) => Map::from_iter([("value".to_string(), other)]),
    };
    Ok(Instance {
        key: key.to_string(),
        name: name.to_string(),
        addr,
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::DEFAULT_WEIGHT;

    #[test]
    fn golden_bytes_of_the_seed_example() {
        let metadata = serde_json::json!({"region": "beijing", "ip": "127.0.0.1", "port": 4000, "weight": 100});
        let instance = Instance {
            key: key("", "micro", "127.0.0.1:4000"),
            name: "micro".into(),
            addr: "127.0.0.1:4000".into(),
            metadata: metadata.as_object().cloned().unwrap_or_default(),
        };
        assert_eq!(instance.key, "/micro/127.0.0.1:4000");
        assert_eq!(
            key("/prod", "micro", "127.0.0.1:4000"),
            "/prod/micro/127.0.0.1:4000"
        );
        let encoded = encode_value(&instance).unwrap();
        assert_eq!(
            encoded,
            r#"{"Addr":"127.0.0.1:4000","ServerName":"micro","Attributes":null,"Type":0,"Metadata":{"region":"beijing","ip":"127.0.0.1","port":4000,"weight":100}}"#
        );
        assert_eq!(
            decode("micro", &instance.key, encoded.as_bytes()).unwrap(),
            instance
        );
    }

    #[test]
    fn service_prefix_keeps_similar_names_apart() {
        assert_eq!(service_prefix("", "foo"), "/foo/");
        assert!(!key("", "foo_other", "h:1").starts_with(&service_prefix("", "foo")));
    }

    #[test]
    fn decodes_our_own_values() {
        let v = br#"{"Addr":"127.0.0.1:4000","ServerName":"micro","Attributes":null,"Type":0,"Metadata":{"zone":"z1","weight":7,"port":4000}}"#;
        let i = decode("micro", "/micro/127.0.0.1:4000", v).unwrap();
        assert_eq!(i.addr, "127.0.0.1:4000");
        assert_eq!(i.zone(), Some("z1"));
        assert_eq!(i.weight(), 7);
        assert_eq!(i.meta("port").as_deref(), Some("4000"));
        assert_eq!(i.meta("nothing"), None);
    }

    #[test]
    fn decodes_go_endpoints_values() {
        let v = br#"{"Op":0,"Addr":"10.0.0.1:80","Metadata":"v1"}"#;
        let i = decode("micro", "/micro/10.0.0.1:80", v).unwrap();
        assert_eq!(i.addr, "10.0.0.1:80");
        assert_eq!(i.weight(), DEFAULT_WEIGHT);
        assert_eq!(i.meta("value").as_deref(), Some("v1"));
        let plain = decode("m", "/m/a:1", br#"{"Op":0,"Addr":"a:1","Metadata":null}"#).unwrap();
        assert!(plain.metadata.is_empty());
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for bad in [
            &b"x"[..],
            b"[]",
            b"{}",
            br#"{"Addr":5}"#,
            br#"{"Addr":""}"#,
            br#"{"Op":1,"Addr":"a:1"}"#,
        ] {
            assert!(
                decode("m", "/m/k", bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

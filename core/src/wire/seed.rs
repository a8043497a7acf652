//! The seed's layout, read by gRPC-go's etcd resolver.
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
pub(crate) fn encode(instance: &Instance) -> Result<String> {
    serde_json::to_string(&Address {
        addr: &instance.addr,
        server_name: &instance.name,
        attributes: None,
        kind: 0,
        metadata: &instance.metadata,
    })
    .map_err(|e| Error::invalid("metadata", e.to_string()))
}

/// Decodes the value stored at `key` for service `name`; the error says why
/// it is no instance.
pub(crate) fn decode(name: &str, key: &str, value: &[u8]) -> std::result::Result<Instance, String> {
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
            key: "/micro/127.0.0.1:4000".into(),
            name: "micro".into(),
            addr: "127.0.0.1:4000".into(),
            metadata: metadata.as_object().cloned().unwrap_or_default(),
        };
        let encoded = encode(&instance).unwrap();
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
            b"127.0.0.1:4000",
            br#"{"id":"a","name":"m","version":"","metadata":{},"endpoints":["grpc://a:1"]}"#,
        ] {
            assert!(
                decode("m", "/m/k", bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

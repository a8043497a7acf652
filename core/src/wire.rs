//! The key layout and value format in etcd: exactly the seed's, readable by gRPC-go's resolver.
//!
//! Key: `{prefix}/{name}/{addr}`. Value: compact JSON of gRPC's `resolver.Address`,
//! `{"Addr":..,"ServerName":..,"Attributes":null,"Type":0,"Metadata":{..}}`.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::service::{Instance, MetaValue};

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
    metadata: Map<String, Value>,
}

/// The JSON value of an instance, fields in the seed's order.
pub fn encode_value(instance: &Instance) -> crate::Result<String> {
    let metadata = instance
        .metadata
        .iter()
        .map(|(k, v)| {
            let v = match v {
                MetaValue::Number(n) => Value::from(*n),
                MetaValue::Text(s) => Value::from(s.as_str()),
            };
            (k.clone(), v)
        })
        .collect();
    let value = serde_json::to_string(&Address {
        addr: &instance.addr,
        server_name: &instance.name,
        attributes: None,
        kind: 0,
        metadata,
    })
    .map_err(|e| crate::Error::invalid("metadata", e.to_string()))?;
    if value.len() > MAX_VALUE_BYTES {
        return Err(crate::Error::invalid(
            "metadata",
            format!(
                "the encoded value is {} bytes; the limit is {MAX_VALUE_BYTES}",
                value.len()
            ),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_bytes_of_the_seed_example() {
        let instance = Instance {
            name: "micro".into(),
            addr: "127.0.0.1:4000".into(),
            metadata: vec![
                ("region".into(), MetaValue::Text("beijing".into())),
                ("ip".into(), MetaValue::Text("127.0.0.1".into())),
                ("port".into(), MetaValue::Number(4000)),
                ("weight".into(), MetaValue::Number(100)),
            ],
        };
        assert_eq!(key("", "micro", "127.0.0.1:4000"), "/micro/127.0.0.1:4000");
        assert_eq!(
            key("/prod", "micro", "127.0.0.1:4000"),
            "/prod/micro/127.0.0.1:4000"
        );
        assert_eq!(
            encode_value(&instance).unwrap(),
            r#"{"Addr":"127.0.0.1:4000","ServerName":"micro","Attributes":null,"Type":0,"Metadata":{"region":"beijing","ip":"127.0.0.1","port":4000,"weight":100}}"#
        );
    }

    #[test]
    fn service_prefix_keeps_similar_names_apart() {
        assert_eq!(service_prefix("", "foo"), "/foo/");
        assert!(!key("", "foo_other", "h:1").starts_with(&service_prefix("", "foo")));
    }
}

//! What a consumer finds: an [`Instance`] decoded from an etcd key and value.
//!
//! Two value shapes are read: ours (the seed's, gRPC's `resolver.Address`:
//! `{"Addr":..,"ServerName":..,"Metadata":{..}}`) and Go's
//! `naming/endpoints` (`{"Op":0,"Addr":..,"Metadata":..}`). Anything else is
//! refused with a reason; callers skip it with a log line.

use serde_json::{Map, Value};

use crate::service::DEFAULT_WEIGHT;

/// One provider instance as registered in etcd.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// The etcd key, e.g. `/micro/127.0.0.1:4000`.
    pub key: String,
    /// The service name the instance was found under.
    pub name: String,
    /// `host:port` to connect to.
    pub addr: String,
    /// Metadata as written (strings, numbers; anything for foreign writers).
    pub metadata: Map<String, Value>,
}

impl Instance {
    /// Decodes the value stored at `key` for service `name`.
    pub fn decode(name: &str, key: &str, value: &[u8]) -> Result<Instance, String> {
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

    /// A metadata entry as text: strings as they are, numbers and booleans
    /// written out, objects and arrays as JSON; `None` when absent or null.
    pub fn meta(&self, key: &str) -> Option<String> {
        match self.metadata.get(key)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    fn meta_str(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Value::as_str)
    }

    /// `weight` (0..=10000); 100 when absent or unreadable, as registered by default.
    pub fn weight(&self) -> u32 {
        let weight = match self.metadata.get("weight") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        weight.map_or(DEFAULT_WEIGHT, |w| w.min(10_000) as u32)
    }

    /// `zone`, if set.
    pub fn zone(&self) -> Option<&str> {
        self.meta_str("zone")
    }

    /// `region`, if set.
    pub fn region(&self) -> Option<&str> {
        self.meta_str("region")
    }

    /// `env`, if set.
    pub fn env(&self) -> Option<&str> {
        self.meta_str("env")
    }

    /// `deployment`, if set.
    pub fn deployment(&self) -> Option<&str> {
        self.meta_str("deployment")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_our_own_values() {
        let v = br#"{"Addr":"127.0.0.1:4000","ServerName":"micro","Attributes":null,"Type":0,"Metadata":{"zone":"z1","weight":7,"port":4000}}"#;
        let i = Instance::decode("micro", "/micro/127.0.0.1:4000", v).unwrap();
        assert_eq!(i.addr, "127.0.0.1:4000");
        assert_eq!(i.zone(), Some("z1"));
        assert_eq!(i.weight(), 7);
        assert_eq!(i.meta("port").as_deref(), Some("4000"));
        assert_eq!(i.meta("nothing"), None);
    }

    #[test]
    fn decodes_go_endpoints_values() {
        let v = br#"{"Op":0,"Addr":"10.0.0.1:80","Metadata":"v1"}"#;
        let i = Instance::decode("micro", "/micro/10.0.0.1:80", v).unwrap();
        assert_eq!(i.addr, "10.0.0.1:80");
        assert_eq!(i.weight(), DEFAULT_WEIGHT);
        assert_eq!(i.meta("value").as_deref(), Some("v1"));
        let plain =
            Instance::decode("m", "/m/a:1", br#"{"Op":0,"Addr":"a:1","Metadata":null}"#).unwrap();
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
                Instance::decode("m", "/m/k", bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

//! An [`Instance`]: one provider as it stands in etcd — what a provider
//! registers (see [`crate::service::Service`]) and what a consumer finds
//! (decoded by [`crate::wire::decode`]).

use serde_json::{Map, Value};

/// Largest weight; 0 means "registered but send no traffic".
pub const MAX_WEIGHT: u32 = 10_000;
/// The weight of an instance that gives none.
pub const DEFAULT_WEIGHT: u32 = 100;

/// One provider instance as registered in etcd.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// The etcd key, e.g. `/micro/127.0.0.1:4000`.
    pub key: String,
    /// The service name the instance was found under.
    pub name: String,
    /// `host:port` to connect to.
    pub addr: String,
    /// Metadata in the order written (strings, numbers; anything for foreign writers).
    pub metadata: Map<String, Value>,
}

impl Instance {
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
        weight.map_or(DEFAULT_WEIGHT, |w| w.min(u64::from(MAX_WEIGHT)) as u32)
    }

    /// `port`, when it holds a port number (a JSON number or its text).
    pub fn port(&self) -> Option<u16> {
        match self.metadata.get("port")? {
            Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
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
    use serde_json::json;

    fn with(metadata: Value) -> Instance {
        Instance {
            key: "/s/a:1".into(),
            name: "s".into(),
            addr: "a:1".into(),
            metadata: metadata.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn port_is_a_number_or_its_text_and_nothing_else() {
        assert_eq!(with(json!({"port": 4000})).port(), Some(4000));
        assert_eq!(with(json!({"port": " 4000 "})).port(), Some(4000));
        assert_eq!(with(json!({"port": 70000})).port(), None, "not a port");
        assert_eq!(with(json!({"port": "http"})).port(), None);
        assert_eq!(with(json!({"port": true})).port(), None);
        assert_eq!(with(json!({})).port(), None);
    }
}

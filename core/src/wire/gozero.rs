//! go-zero's layout (`core/discov` of github.com/zeromicro/go-zero), read by
//! its `discov.Subscriber` and so by `zrpc` clients with an `EtcdConf`.
//!
//! Key: `{name}/{id}` (`{prefix}/{name}/{id}` with a prefix): go-zero's
//! subscriber lists the prefix `{EtcdConf.Key}/` and uses only the values;
//! the last segment is an identity (go-zero's own publisher writes its lease
//! ID in decimal there). Value: the address alone, `host:port`. Nothing
//! else travels: metadata set explicitly is refused before anything is
//! written.

use serde_json::Map;

use crate::error::{Error, Result};
use crate::instance::Instance;
use crate::names::split_addr;

/// Refuses metadata given explicitly: the layout has no room for it. `id`,
/// the key's last segment, is the one key allowed.
pub(crate) fn check_given(given: &[(String, String)]) -> Result<()> {
    match given.iter().find(|(key, _)| key != "id") {
        Some((key, _)) => Err(Error::invalid(
            format!("metadata key {key:?}"),
            "cannot be carried by the go-zero layout: its value is the address alone \
             (only `id`, the key's last segment, may be set)",
        )),
        None => Ok(()),
    }
}

/// The value: the address, as go-zero's resolver dials it.
pub(crate) fn encode(instance: &Instance) -> String {
    instance.addr.clone()
}

/// Decodes a go-zero value (`host:port`); the error says why it is no instance.
pub(crate) fn decode(name: &str, key: &str, value: &[u8]) -> std::result::Result<Instance, String> {
    let text = std::str::from_utf8(value).map_err(|_| "not UTF-8 text".to_string())?;
    split_addr(text).map_err(|_| format!("{:.60?} is not a host:port address", text))?;
    Ok(Instance {
        key: key.to_string(),
        name: name.to_string(),
        addr: text.to_string(),
        metadata: Map::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_is_the_address_and_reads_back() {
        let instance = Instance {
            key: "greeter.rpc/10.0.0.1:8080".into(),
            name: "greeter.rpc".into(),
            addr: "10.0.0.1:8080".into(),
            metadata: Map::new(),
        };
        assert_eq!(encode(&instance), "10.0.0.1:8080");
        let found = decode("greeter.rpc", &instance.key, b"10.0.0.1:8080").unwrap();
        assert_eq!(found, instance);
        assert_eq!(found.weight(), crate::instance::DEFAULT_WEIGHT);
        // What go-zero's own publisher writes: the lease ID as the last segment.
        let theirs = decode(
            "greeter.rpc",
            "greeter.rpc/7587890385633127685",
            b"[::1]:80",
        )
        .unwrap();
        assert_eq!(theirs.addr, "[::1]:80");
    }

    #[test]
    fn refuses_other_layouts_values() {
        for bad in [
            &br#"{"Addr":"127.0.0.1:4000","ServerName":"m","Attributes":null,"Type":0,"Metadata":null}"#[..],
            br#"{"id":"a","name":"m","version":"","metadata":{},"endpoints":["grpc://a:1"]}"#,
            b"",
            b"127.0.0.1",
            b"grpc://127.0.0.1:80",
            b"\xff:1",
        ] {
            assert!(
                decode("m", "m/k", bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn metadata_is_refused_naming_the_layout_except_id() {
        let given = |k: &str| vec![(k.to_string(), "x".to_string())];
        assert!(check_given(&given("id")).is_ok());
        for key in ["weight", "zone", "team"] {
            let err = check_given(&given(key)).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains("go-zero layout"), "{err}");
        }
    }
}

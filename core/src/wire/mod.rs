//! The key layouts and value formats in etcd, both ways, one per framework
//! whose consumers read them ([`Layout`]): the seed's (gRPC-go's etcd
//! resolver; the default), go-zero's and kratos's. Each layout's module
//! writes and reads its values; this one keeps the keys and ranges.
//!
//! The free functions ([`key`], [`service_prefix`], [`encode_value`],
//! [`decode`]) are the seed layout's.

mod gozero;
mod kratos;
mod seed;

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::instance::Instance;
use crate::names::is_name_byte;

/// Largest value we write: etcd's default request limit is 1.5 MiB, but a
/// registration this large is a mistake, and every watcher receives it.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Longest `id` (the key's last segment in the go-zero and kratos layouts).
pub const MAX_ID_LEN: usize = 128;

/// How registrations are laid out in etcd: which framework's consumers
/// find them. Chosen per client ([`crate::Options::layout`],
/// `REGISTRY_LAYOUT`); register, update, deregister, healing, discover,
/// watch and pick work the same in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Layout {
    /// `{prefix}/{name}/{addr}` -> the JSON of gRPC's `resolver.Address`
    /// (read by gRPC-go's etcd resolver, `go.etcd.io/etcd/client/v3/naming`).
    #[default]
    Seed,
    /// go-zero's `core/discov`: `{name}/{id}` (`{prefix}/{name}/{id}` with
    /// a prefix) -> `host:port`, no metadata. `id` defaults to the address.
    GoZero,
    /// kratos's `contrib/registry/etcd`: `{prefix}/{name}/{id}`, the prefix
    /// `/microservices` by default -> the JSON of `registry.ServiceInstance`,
    /// every metadata value a string. `id` defaults to the address.
    Kratos,
}

impl Layout {
    /// Every layout, the default first.
    pub const ALL: [Layout; 3] = [Layout::Seed, Layout::GoZero, Layout::Kratos];

    /// The layout's name: `seed`, `go-zero` or `kratos`.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Seed => "seed",
            Layout::GoZero => "go-zero",
            Layout::Kratos => "kratos",
        }
    }

    /// The prefix when none is given: kratos's default namespace
    /// `/microservices`; empty for the others.
    pub fn default_prefix(self) -> &'static str {
        match self {
            Layout::Kratos => "/microservices",
            Layout::Seed | Layout::GoZero => "",
        }
    }

    /// The etcd key of service `name` at `addr`: the address is the last
    /// segment in the seed layout, `id` (default: the address) in the others.
    pub fn key(self, prefix: &str, name: &str, addr: &str, id: Option<&str>) -> String {
        let last = match self {
            Layout::Seed => addr,
            Layout::GoZero | Layout::Kratos => id.unwrap_or(addr),
        };
        format!("{}{last}", self.service_prefix(prefix, name))
    }

    /// The key range holding every instance of `name`; the trailing `/`
    /// keeps `foo` from matching `foo_other`. go-zero's keys have no
    /// leading `/` without a prefix (`greeter.rpc/`, as go-zero reads them).
    pub fn service_prefix(self, prefix: &str, name: &str) -> String {
        match self {
            Layout::GoZero if prefix.is_empty() => format!("{name}/"),
            _ => format!("{prefix}/{name}/"),
        }
    }

    /// The range holding every service under `prefix`; `None` for go-zero
    /// without a prefix, whose names share none (the whole key space).
    pub fn whole_range(self, prefix: &str) -> Option<String> {
        match self {
            Layout::GoZero if prefix.is_empty() => None,
            _ => Some(format!("{prefix}/")),
        }
    }

    /// Refuses what the layout cannot carry of what the caller set
    /// explicitly (`given`: metadata by wire name, as text), before
    /// anything is written: any metadata in the go-zero layout, an `id`
    /// that cannot be a key segment in go-zero's and kratos's.
    pub(crate) fn check_given(self, given: &[(String, String)]) -> Result<()> {
        if self == Layout::Seed {
            return Ok(());
        }
        if let Some((_, id)) = given.iter().find(|(k, _)| k == "id") {
            let fits = !id.is_empty()
                && id.len() <= MAX_ID_LEN
                && id.bytes().all(|b| is_name_byte(b) || b == b':');
            if !fits {
                return Err(Error::invalid(
                    "id",
                    format!(
                        "{id:?} is the last segment of the key in the {self} layout: \
                         1..={MAX_ID_LEN} of [A-Za-z0-9._:-]"
                    ),
                ));
            }
        }
        match self {
            Layout::GoZero => gozero::check_given(given),
            Layout::Seed | Layout::Kratos => Ok(()),
        }
    }

    /// The value of `instance` in this layout; refused with the field named
    /// when the layout cannot carry it, or when it exceeds [`MAX_VALUE_BYTES`].
    pub fn encode(self, instance: &Instance) -> Result<String> {
        let value = match self {
            Layout::Seed => seed::encode(instance)?,
            Layout::GoZero => gozero::encode(instance),
            Layout::Kratos => kratos::encode(instance)?,
        };
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

    /// Decodes the value stored at `key` for service `name`; the error says
    /// why it is no instance of this layout (another layout's value, say).
    pub fn decode(
        self,
        name: &str,
        key: &str,
        value: &[u8],
    ) -> std::result::Result<Instance, String> {
        match self {
            Layout::Seed => seed::decode(name, key, value),
            Layout::GoZero => gozero::decode(name, key, value),
            Layout::Kratos => kratos::decode(name, key, value),
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Layout {
    type Err = String;

    /// `seed`, `go-zero` or `kratos`; the error names the value and the choices.
    fn from_str(text: &str) -> std::result::Result<Layout, String> {
        Layout::ALL
            .into_iter()
            .find(|l| l.name() == text)
            .ok_or_else(|| format!("{text:.64?} is not a layout: seed, go-zero or kratos"))
    }
}

/// The seed layout's key of `name` at `addr` under `prefix`.
pub fn key(prefix: &str, name: &str, addr: &str) -> String {
    Layout::Seed.key(prefix, name, addr, None)
}

/// The seed layout's range holding every instance of `name`.
pub fn service_prefix(prefix: &str, name: &str) -> String {
    Layout::Seed.service_prefix(prefix, name)
}

/// The seed layout's JSON value of an instance, fields in the seed's order.
pub fn encode_value(instance: &Instance) -> Result<String> {
    Layout::Seed.encode(instance)
}

/// Decodes a seed-layout value (ours or Go's `naming/endpoints`).
pub fn decode(name: &str, key: &str, value: &[u8]) -> std::result::Result<Instance, String> {
    Layout::Seed.decode(name, key, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_ranges_of_each_layout() {
        let addr = "127.0.0.1:4000";
        assert_eq!(key("", "micro", addr), "/micro/127.0.0.1:4000");
        assert_eq!(key("/prod", "micro", addr), "/prod/micro/127.0.0.1:4000");
        // The seed's key ignores `id`: it is plain metadata there.
        assert_eq!(
            Layout::Seed.key("", "m", addr, Some("x")),
            "/m/127.0.0.1:4000"
        );
        assert_eq!(
            Layout::GoZero.key("", "greeter.rpc", addr, None),
            "greeter.rpc/127.0.0.1:4000"
        );
        assert_eq!(
            Layout::GoZero.key("/prod", "g", addr, Some("7")),
            "/prod/g/7"
        );
        assert_eq!(
            Layout::Kratos.key(Layout::Kratos.default_prefix(), "greeter", addr, Some("a1")),
            "/microservices/greeter/a1"
        );
        assert_eq!(Layout::GoZero.service_prefix("", "foo"), "foo/");
        assert_eq!(Layout::GoZero.whole_range(""), None);
        assert_eq!(Layout::GoZero.whole_range("/p").as_deref(), Some("/p/"));
        assert_eq!(Layout::Seed.whole_range("").as_deref(), Some("/"));
        for layout in Layout::ALL {
            let other = layout.key(layout.default_prefix(), "foo_other", "h:1", None);
            assert!(!other.starts_with(&layout.service_prefix(layout.default_prefix(), "foo")));
        }
    }

    #[test]
    fn names_parse_both_ways() {
        for layout in Layout::ALL {
            assert_eq!(layout.to_string().parse::<Layout>(), Ok(layout));
        }
        let err = "gozero".parse::<Layout>().unwrap_err();
        assert!(
            err.contains("\"gozero\"") && err.contains("go-zero"),
            "{err}"
        );
    }

    #[test]
    fn ids_must_fit_a_key_segment() {
        let given = |v: &str| vec![("id".to_string(), v.to_string())];
        for layout in [Layout::GoZero, Layout::Kratos] {
            assert!(layout.check_given(&given("host-1:80")).is_ok());
            for bad in ["", "a/b", "a b", &"x".repeat(129)] {
                let err = layout.check_given(&given(bad)).unwrap_err().to_string();
                assert!(
                    err.contains("invalid id") && err.contains(layout.name()),
                    "{err}"
                );
            }
        }
        assert!(
            Layout::Seed.check_given(&given("a/b")).is_ok(),
            "plain metadata in the seed layout"
        );
    }

    #[test]
    fn oversized_values_are_refused_in_every_layout() {
        let mut metadata = serde_json::Map::new();
        metadata.insert("pad".into(), "x".repeat(MAX_VALUE_BYTES).into());
        let instance = Instance {
            key: "k".into(),
            name: "m".into(),
            addr: "h:1".into(),
            metadata,
        };
        for layout in [Layout::Seed, Layout::Kratos] {
            assert!(layout.encode(&instance).is_err(), "{layout}");
        }
    }
}

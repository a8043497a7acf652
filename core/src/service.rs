//! What a provider registers: its name, address and the seed's metadata, validated.

use std::collections::BTreeMap;

use crate::env::env;
use crate::error::{Error, Result};
use crate::health::Check;
use crate::instance::Instance;
use crate::names::{is_name_byte, split_addr, validate_name};
use crate::timefmt;
use crate::wire::Layout;
use serde_json::{Map, Value};

pub use crate::names::MAX_NAME_LEN;
/// Longest metadata key.
pub const MAX_METADATA_KEY_LEN: usize = 64;
pub use crate::instance::{DEFAULT_WEIGHT, MAX_WEIGHT};
/// Default protocol.
pub const DEFAULT_SCHEME: &str = "grpc";

/// Keys the library derives itself; callers may not set them.
const DERIVED_KEYS: [&str; 4] = ["ip", "port", "frameVersion", "startTime"];

/// A service instance to register: name, address and metadata. Setters never
/// fail; everything is validated when the service is registered, with an
/// error naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub(crate) name: String,
    pub(crate) addr: String,
    pub(crate) env: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) zone: Option<String>,
    pub(crate) scheme: Option<String>,
    pub(crate) weight: Option<WeightInput>,
    pub(crate) deployment: Option<String>,
    pub(crate) app_version: Option<String>,
    pub(crate) build_time: Option<String>,
    pub(crate) extra: BTreeMap<String, String>,
    pub(crate) check: Option<Check>,
}

/// A weight as given: a number from Rust, or text from C, Python or the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WeightInput {
    Number(u32),
    Text(String),
}

impl Service {
    /// A service `name` (1..=128 of `[A-Za-z0-9._-]`) at `addr` (`host:port`).
    pub fn new(name: impl Into<String>, addr: impl Into<String>) -> Self {
        Service {
            name: name.into(),
            addr: addr.into(),
            env: None,
            region: None,
            zone: None,
            scheme: None,
            weight: None,
            deployment: None,
            app_version: None,
            build_time: None,
            extra: BTreeMap::new(),
            check: None,
        }
    }

    /// The service name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address, `host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Environment (`env`), e.g. `dev`.
    pub fn env(mut self, value: impl Into<String>) -> Self {
        self.env = Some(value.into());
        self
    }
    /// Region (`region`), e.g. `beijing`.
    pub fn region(mut self, value: impl Into<String>) -> Self {
        self.region = Some(value.into());
        self
    }
    /// Availability zone (`zone`), e.g. `zone1`.
    pub fn zone(mut self, value: impl Into<String>) -> Self {
        self.zone = Some(value.into());
        self
    }
    /// Protocol (`scheme`), default `grpc`.
    pub fn scheme(mut self, value: impl Into<String>) -> Self {
        self.scheme = Some(value.into());
        self
    }
    /// Weight 0..=10000 (`weight`), default 100; 0 means "send no traffic".
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = Some(WeightInput::Number(weight));
        self
    }
    /// Deployment group (`deployment`), e.g. `red`.
    pub fn deployment(mut self, value: impl Into<String>) -> Self {
        self.deployment = Some(value.into());
        self
    }
    /// Application version (`appVersion`).
    pub fn app_version(mut self, value: impl Into<String>) -> Self {
        self.app_version = Some(value.into());
        self
    }
    /// Build time (`buildTime`), RFC 3339.
    pub fn build_time(mut self, value: impl Into<String>) -> Self {
        self.build_time = Some(value.into());
        self
    }

    /// A health check: the service is registered once its probe passes,
    /// withdrawn while it fails, written back when it passes again (see
    /// [`crate::health`]).
    pub fn check(mut self, check: Check) -> Self {
        self.check = Some(check);
        self
    }

    /// Sets the health check in place (for builders holding a `&mut Service`).
    pub fn set_check(&mut self, check: Check) {
        self.check = Some(check);
    }

    /// The health check, if any.
    pub fn health_check(&self) -> Option<&Check> {
        self.check.as_ref()
    }

    /// Checks the name and address alone (metadata is checked when registering).
    pub fn validate_identity(&self) -> Result<()> {
        validate_name(&self.name)?;
        split_addr(&self.addr).map(|_| ())
    }

    /// Checks everything registering checks (name, address, metadata
    /// values, health check) without etcd, so a tool can refuse bad input
    /// before it starts anything; the error names the field. `layout` is
    /// the client's (what it cannot carry is refused). Defaults from
    /// `REGISTRY_*` are checked when a client connects, not here.
    pub fn validate(&self, layout: Layout) -> Result<()> {
        self.resolve(&EnvDefaults::default(), layout, "")?;
        match &self.check {
            Some(check) => check.validate(),
            None => Ok(()),
        }
    }

    /// Sets a metadata entry by its wire name: one of the seed's fields
    /// (`env`, `region`, `zone`, `scheme`, `weight`, `deployment`, `appVersion`,
    /// `buildTime`) or any extra key. The key is checked now; the value when registering.
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> Result<()> {
        let value = value.into();
        match key {
            "env" => self.env = Some(value),
            "region" => self.region = Some(value),
            "zone" => self.zone = Some(value),
            "scheme" => self.scheme = Some(value),
            "weight" => self.weight = Some(WeightInput::Text(value)),
            "deployment" => self.deployment = Some(value),
            "appVersion" => self.app_version = Some(value),
            "buildTime" => self.build_time = Some(value),
            _ => {
                validate_metadata_key(key)?;
                self.extra.insert(key.to_string(), value);
            }
        }
        Ok(())
    }

    /// The metadata set on this service, by wire name, as text: the seed's
    /// fields in wire order, then extra keys sorted. Fields the library
    /// derives (`ip`, `port`, `frameVersion`, `startTime`) and defaults
    /// from the environment are not included.
    pub fn metadata(&self) -> Vec<(String, String)> {
        let weight = self.weight.as_ref().map(|w| match w {
            WeightInput::Number(n) => n.to_string(),
            WeightInput::Text(t) => t.clone(),
        });
        let known = [
            ("env", self.env.clone()),
            ("region", self.region.clone()),
            ("zone", self.zone.clone()),
            ("scheme", self.scheme.clone()),
            ("weight", weight),
            ("deployment", self.deployment.clone()),
            ("appVersion", self.app_version.clone()),
            ("buildTime", self.build_time.clone()),
        ];
        let known = known
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), v?)));
        known
            .chain(self.extra.iter().map(|(k, v)| (k.clone(), v.clone())))
            .collect()
    }

    /// The etcd key of this service in `layout` under `prefix`.
    pub(crate) fn key(&self, layout: Layout, prefix: &str) -> String {
        let id = self.extra.get("id").map(String::as_str);
        layout.key(prefix, &self.name, &self.addr, id)
    }

    /// Builder form of [`Service::set`].
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Result<Self> {
        self.set(key, value)?;
        Ok(self)
    }
}

/// Metadata defaults taken from `REGISTRY_*` once, when a client is created.
#[derive(Debug, Clone, Default)]
pub(crate) struct EnvDefaults {
    env: Option<String>,
    region: Option<String>,
    zone: Option<String>,
    deployment: Option<String>,
    scheme: Option<String>,
    weight: Option<String>,
    app_version: Option<String>,
    build_time: Option<String>,
}

impl EnvDefaults {
    pub(crate) fn from_env() -> Result<Self> {
        let defaults = EnvDefaults {
            env: env("REGISTRY_ENV"),
            region: env("REGISTRY_REGION"),
            zone: env("REGISTRY_ZONE"),
            deployment: env("REGISTRY_DEPLOYMENT"),
            scheme: env("REGISTRY_SCHEME"),
            weight: env("REGISTRY_WEIGHT"),
            app_version: env("REGISTRY_APP_VERSION"),
            build_time: env("REGISTRY_BUILD_TIME"),
        };
        // Fail at client creation, naming the variable, rather than at every register.
        if let Some(w) = &defaults.weight {
            parse_weight("REGISTRY_WEIGHT", w)?;
        }
        if let Some(t) = &defaults.build_time {
            check_rfc3339("REGISTRY_BUILD_TIME", t)?;
        }
        Ok(defaults)
    }
}

impl Service {
    /// Validates the service and fills defaults (API value, then environment,
    /// then built-in): the instance as it goes on the wire in `layout` under
    /// `prefix`. What the layout cannot carry is refused here.
    pub(crate) fn resolve(
        &self,
        defaults: &EnvDefaults,
        layout: Layout,
        prefix: &str,
    ) -> Result<Instance> {
        validate_name(&self.name)?;
        let (host, port) = split_addr(&self.addr)?;
        layout.check_given(&self.metadata())?;
        let pick = |api: &Option<String>, env: &Option<String>| api.clone().or_else(|| env.clone());

        let weight = match (&self.weight, &defaults.weight) {
            (Some(WeightInput::Number(w)), _) => check_weight("weight", *w)?,
            (Some(WeightInput::Text(t)), _) => parse_weight("weight", t)?,
            (None, Some(t)) => parse_weight("REGISTRY_WEIGHT", t)?,
            (None, None) => DEFAULT_WEIGHT,
        };
        let build_time = pick(&self.build_time, &defaults.build_time);
        if let Some(t) = &build_time {
            check_rfc3339("buildTime", t)?;
        }

        let mut metadata = Map::new();
        let mut text = |key: &str, value: Option<String>| {
            if let Some(v) = value {
                metadata.insert(key.to_string(), Value::String(v));
            }
        };
        text("env", pick(&self.env, &defaults.env));
        text("region", pick(&self.region, &defaults.region));
        text("zone", pick(&self.zone, &defaults.zone));
        text("ip", Some(host));
        metadata.insert("port".into(), Value::from(port));
        let scheme = pick(&self.scheme, &defaults.scheme).unwrap_or_else(|| DEFAULT_SCHEME.into());
        metadata.insert("scheme".into(), Value::String(scheme));
        metadata.insert("weight".into(), Value::from(weight));
        let mut text = |key: &str, value: Option<String>| {
            if let Some(v) = value {
                metadata.insert(key.to_string(), Value::String(v));
            }
        };
        text("deployment", pick(&self.deployment, &defaults.deployment));
        // This library's version (`crate::VERSION`, read here without a loop through the root).
        text("frameVersion", Some(env!("CARGO_PKG_VERSION").to_string()));
        text("appVersion", pick(&self.app_version, &defaults.app_version));
        text("buildTime", build_time);
        text("startTime", Some(timefmt::process_start_time().to_string()));
        for (key, value) in &self.extra {
            validate_metadata_key(key)?;
            text(key, Some(value.clone()));
        }
        Ok(Instance {
            key: self.key(layout, prefix),
            name: self.name.clone(),
            addr: self.addr.clone(),
            metadata,
        })
    }
}

fn validate_metadata_key(key: &str) -> Result<()> {
    let field = format!("metadata key {key:?}");
    if key.is_empty() || key.len() > MAX_METADATA_KEY_LEN {
        return Err(Error::invalid(
            field,
            format!("must be 1..={MAX_METADATA_KEY_LEN} characters"),
        ));
    }
    if !key.bytes().all(is_name_byte) {
        return Err(Error::invalid(field, "may only hold [A-Za-z0-9._-]"));
    }
    if DERIVED_KEYS.contains(&key) {
        return Err(Error::invalid(
            field,
            "is set by the library and cannot be given",
        ));
    }
    Ok(())
}

fn check_weight(field: &str, weight: u32) -> Result<u32> {
    if weight > MAX_WEIGHT {
        return Err(Error::invalid(
            field,
            format!("{weight} is outside 0..={MAX_WEIGHT}"),
        ));
    }
    Ok(weight)
}

fn parse_weight(field: &str, text: &str) -> Result<u32> {
    let weight = text.trim().parse::<u32>().map_err(|_| {
        Error::invalid(
            field,
            format!("{text:?} is not an integer in 0..={MAX_WEIGHT}"),
        )
    })?;
    check_weight(field, weight)
}

fn check_rfc3339(field: &str, text: &str) -> Result<()> {
    if timefmt::is_rfc3339(text) {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("{text:?} is not an RFC 3339 time such as 2020-10-14T10:00:00Z"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(err: Error) -> String {
        match err {
            Error::InvalidArgument { field, .. } => field,
            other => panic!("expected InvalidArgument, got {other}"),
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(
            split_addr("127.0.0.1:4000").unwrap(),
            ("127.0.0.1".into(), 4000)
        );
        assert_eq!(split_addr("[::1]:80").unwrap(), ("::1".into(), 80));
        assert_eq!(split_addr("svc.example-1.com:65535").unwrap().1, 65535);
        for bad in [
            "127.0.0.1",
            "127.0.0.1:0",
            "127.0.0.1:65536",
            "::1:80",
            "[::1]80",
            "a b:1",
            "999.1.1.1:1",
            "/x:1",
            "h:-1",
            "http://127.0.0.1:8080",
        ] {
            assert_eq!(field_of(split_addr(bad).unwrap_err()), "addr", "{bad}");
        }
    }

    #[test]
    fn weight_and_keys_are_checked_with_the_field_named() {
        let d = EnvDefaults::default();
        let err = Service::new("a", "h:1")
            .weight(10_001)
            .resolve(&d, Layout::Seed, "")
            .unwrap_err();
        assert_eq!(field_of(err), "weight");
        let mut s = Service::new("a", "h:1");
        s.set("weight", "heavy").unwrap();
        assert_eq!(
            field_of(s.resolve(&d, Layout::Seed, "").unwrap_err()),
            "weight"
        );
        assert!(field_of(s.set("ip", "1.2.3.4").unwrap_err()).contains("ip"));
        assert!(field_of(s.set("a/b", "x").unwrap_err()).contains("a/b"));
        let err = Service::new("a", "h:1")
            .build_time("yesterday")
            .resolve(&d, Layout::Seed, "")
            .unwrap_err();
        assert_eq!(field_of(err), "buildTime");
    }

    #[test]
    fn validate_checks_what_registering_checks() {
        assert!(Service::new("a", "h:1").validate(Layout::Seed).is_ok());
        // What a layout cannot carry is refused by that layout only.
        let mut zoned = Service::new("a", "h:1");
        zoned.set("zone", "z1").unwrap();
        assert!(zoned.validate(Layout::Seed).is_ok());
        assert!(zoned.validate(Layout::GoZero).is_err());
        let mut s = Service::new("a", "h:1");
        s.set("weight", "heavy").unwrap();
        assert_eq!(field_of(s.validate(Layout::Seed).unwrap_err()), "weight");
        assert_eq!(
            field_of(
                Service::new("a/b", "h:1")
                    .validate(Layout::Seed)
                    .unwrap_err()
            ),
            "name"
        );
        assert_eq!(
            field_of(Service::new("a", "h").validate(Layout::Seed).unwrap_err()),
            "addr"
        );
        let mut check = Check::parse("tcp://h:1").unwrap();
        check.fails = 0;
        let err = Service::new("a", "h:1")
            .check(check)
            .validate(Layout::Seed)
            .unwrap_err();
        assert_eq!(field_of(err), "check fails");
    }
}

#[cfg(test)]
mod metadata_tests {
    use super::*;

    #[test]
    fn metadata_lists_what_was_set_as_text() {
        let mut s = Service::new("a", "h:1").region("r").weight(9);
        s.set("shard", "x").unwrap();
        s.set("appVersion", "v2").unwrap();
        let got = s.metadata();
        let want = [
            ("region", "r"),
            ("weight", "9"),
            ("appVersion", "v2"),
            ("shard", "x"),
        ];
        assert_eq!(
            got,
            want.map(|(k, v)| (k.to_string(), v.to_string())).to_vec()
        );
    }
}

#[cfg(test)]
mod precedence_tests {
    use super::*;

    #[test]
    fn api_values_win_over_the_environment() {
        let defaults = EnvDefaults {
            region: Some("env-region".into()),
            zone: Some("env-zone".into()),
            weight: Some("7".into()),
            ..EnvDefaults::default()
        };
        let instance = Service::new("a", "h:1")
            .region("api-region")
            .resolve(&defaults, Layout::Seed, "")
            .unwrap();
        let get = |k: &str| instance.metadata.get(k).cloned();
        assert_eq!(get("region"), Some(Value::from("api-region")));
        assert_eq!(get("zone"), Some(Value::from("env-zone")));
        assert_eq!(get("weight"), Some(Value::from(7)));
        assert_eq!(get("env"), None, "unset optional fields are left out");
    }
}

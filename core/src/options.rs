//! Client options: explicit values win, then `REGISTRY_*` environment variables, then defaults.

use std::time::Duration;

use crate::env::env;
use crate::error::{Error, Result};
use crate::names::is_name_byte;
use crate::security::{credentials_from_env, Credentials, Secret, TlsFiles};
use crate::wire::Layout;

/// etcd raises any lease TTL below this to this; we refuse it instead of being surprised.
pub const MIN_TTL_SECS: u32 = 2;
/// Default lease TTL.
pub const DEFAULT_TTL_SECS: u32 = 10;
/// Default endpoint when neither the API nor `REGISTRY_ENDPOINTS` names one.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:2379";
/// Default deadline of every request to etcd.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How to reach etcd and how to behave there. Unset fields fall back to the
/// environment (`REGISTRY_ENDPOINTS`, `REGISTRY_TTL`, `REGISTRY_PREFIX`,
/// `REGISTRY_LAYOUT`), then defaults.
#[derive(Debug, Clone, Default)]
pub struct Options {
    endpoints: Option<Vec<String>>,
    ttl_secs: Option<u32>,
    prefix: Option<String>,
    layout: Option<Layout>,
    request_timeout: Option<Duration>,
    close_timeout: Option<Duration>,
    heal_deleted_keys: Option<bool>,
    tls: Option<TlsFiles>,
    credentials: Option<Credentials>,
}

impl Options {
    /// Options with nothing set: everything comes from the environment or defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// etcd endpoints, e.g. `["http://127.0.0.1:2379"]`. Overrides `REGISTRY_ENDPOINTS`.
    pub fn endpoints<I, S>(mut self, endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.endpoints = Some(endpoints.into_iter().map(Into::into).collect());
        self
    }

    /// Endpoints from one comma-separated string, as `REGISTRY_ENDPOINTS` is written.
    pub fn endpoints_csv(self, csv: &str) -> Self {
        self.endpoints(split_csv(csv))
    }

    /// Lease TTL in seconds (at least 2). Overrides `REGISTRY_TTL`.
    pub fn ttl_secs(mut self, ttl_secs: u32) -> Self {
        self.ttl_secs = Some(ttl_secs);
        self
    }

    /// Key prefix: empty, or starting with `/` without a trailing `/`. Overrides `REGISTRY_PREFIX`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// The key layout and value format: whose consumers find the
    /// registrations, and whose registrations discovery reads (default
    /// [`Layout::Seed`]). Overrides `REGISTRY_LAYOUT` (`seed`, `go-zero`,
    /// `kratos`). In the kratos layout the prefix is kratos's namespace,
    /// `/microservices` unless set.
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = Some(layout);
        self
    }

    /// Deadline of each request to etcd (default 5 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// How long closing (revoking the lease) may take. Default: 2 s plus
    /// 1 s per 10,000 registrations held, since etcd deletes a lease's keys
    /// in one step whose length grows with them.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = Some(timeout);
        self
    }

    /// Whether a key deleted by someone else while the lease lives is put back (default true).
    pub fn heal_deleted_keys(mut self, heal: bool) -> Self {
        self.heal_deleted_keys = Some(heal);
        self
    }

    /// TLS to etcd (`https://` endpoints): the CA file, and for mutual TLS a
    /// client certificate and key. Overrides `REGISTRY_CA_FILE`,
    /// `REGISTRY_CERT_FILE`, `REGISTRY_KEY_FILE`.
    pub fn tls(mut self, files: TlsFiles) -> Self {
        self.tls = Some(files);
        self
    }

    /// etcd username and password. Overrides `REGISTRY_USER` / `REGISTRY_PASSWORD`.
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some(Credentials {
            user: user.into(),
            password: Secret::new(password),
        });
        self
    }

    /// Fills every unset field from the environment and defaults, and validates the result.
    pub fn resolve(&self) -> Result<Resolved> {
        let endpoints = match &self.endpoints {
            Some(list) => list.clone(),
            None => match env("REGISTRY_ENDPOINTS") {
                Some(csv) => split_csv(&csv),
                None => vec![DEFAULT_ENDPOINT.to_string()],
            },
        };
        let field = if self.endpoints.is_some() {
            "endpoints"
        } else {
            "REGISTRY_ENDPOINTS"
        };
        if endpoints.is_empty() {
            return Err(Error::invalid(field, "no endpoint given"));
        }
        for endpoint in &endpoints {
            validate_endpoint(endpoint).map_err(|reason| Error::invalid(field, reason))?;
        }

        let ttl_secs = match self.ttl_secs {
            Some(ttl) => ttl,
            None => match env("REGISTRY_TTL") {
                Some(text) => text.parse().map_err(|_| {
                    Error::invalid(
                        "REGISTRY_TTL",
                        format!("{text:?} is not a whole number of seconds"),
                    )
                })?,
                None => DEFAULT_TTL_SECS,
            },
        };
        if ttl_secs < MIN_TTL_SECS {
            return Err(Error::invalid(
                "ttl",
                format!("{ttl_secs} s is below etcd's minimum lease TTL of {MIN_TTL_SECS} s"),
            ));
        }

        let layout = match (self.layout, env("REGISTRY_LAYOUT")) {
            (Some(layout), _) => layout,
            (None, Some(text)) => text
                .trim()
                .parse()
                .map_err(|reason| Error::invalid("REGISTRY_LAYOUT", reason))?,
            (None, None) => Layout::default(),
        };
        let prefix = match &self.prefix {
            Some(p) => p.clone(),
            None => env("REGISTRY_PREFIX").unwrap_or_else(|| layout.default_prefix().into()),
        };
        validate_prefix(&prefix).map_err(|reason| Error::invalid("prefix", reason))?;

        let request_timeout = self.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        if request_timeout < Duration::from_millis(10) {
            return Err(Error::invalid(
                "request_timeout",
                format!(
                    "{} is too short (at least 10 ms)",
                    crate::timefmt::human_duration(&request_timeout)
                ),
            ));
        }

        if let Some(close) = self.close_timeout {
            if close < Duration::from_millis(10) {
                return Err(Error::invalid(
                    "close_timeout",
                    format!(
                        "{} is too short (at least 10 ms)",
                        crate::timefmt::human_duration(&close)
                    ),
                ));
            }
        }

        let tls = self.tls.clone().or_else(TlsFiles::from_env);
        let https = endpoints
            .iter()
            .filter(|e| e.starts_with("https://"))
            .count();
        if https > 0 && https < endpoints.len() {
            return Err(Error::invalid(
                field,
                "mixes http:// and https:// endpoints",
            ));
        }
        if https == 0 && tls.is_some() {
            return Err(Error::invalid(
                field,
                "TLS files are set (options or REGISTRY_CA_FILE...) but the endpoints are http://",
            ));
        }
        let tls = match (https > 0, tls) {
            (true, Some(files)) => Some(files),
            (true, None) => Some(TlsFiles::default()), // refused by load(), naming ca_file
            (false, _) => None,
        };
        if let Some(files) = &tls {
            files.load()?; // check the files now, not at the first request
        }
        let credentials = match &self.credentials {
            Some(c) => Some(c.clone()),
            None => credentials_from_env()?,
        };
        if let Some(c) = &credentials {
            if c.user.is_empty() {
                return Err(Error::invalid("user", "is empty"));
            }
        }

        Ok(Resolved {
            endpoints,
            ttl_secs,
            prefix,
            layout,
            request_timeout,
            close_timeout: self.close_timeout,
            heal_deleted_keys: self.heal_deleted_keys.unwrap_or(true),
            tls,
            credentials,
        })
    }
}

/// Options with every field decided and validated.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// etcd endpoints.
    pub endpoints: Vec<String>,
    /// Requested lease TTL in seconds.
    pub ttl_secs: u32,
    /// Key prefix (empty or `/...`; in the kratos layout, its namespace).
    pub prefix: String,
    /// The key layout and value format.
    pub layout: Layout,
    /// Deadline of each request.
    pub request_timeout: Duration,
    /// How long closing may take; `None`: it grows with the registrations held.
    pub close_timeout: Option<Duration>,
    /// Put back keys deleted by someone else.
    pub heal_deleted_keys: bool,
    /// TLS files, for `https://` endpoints.
    pub tls: Option<TlsFiles>,
    /// etcd user and password.
    pub credentials: Option<Credentials>,
}

fn split_csv(csv: &str) -> Vec<String> {
    csv.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn validate_endpoint(endpoint: &str) -> std::result::Result<(), String> {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .ok_or_else(|| format!("{endpoint:?} must start with http:// or https://"))?;
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        return Err(format!("{endpoint:?} must be scheme://host:port"));
    }
    Ok(())
}

fn validate_prefix(prefix: &str) -> std::result::Result<(), String> {
    if prefix.is_empty() {
        return Ok(());
    }
    if !prefix.starts_with('/') {
        return Err(format!("{prefix:?} must start with '/'"));
    }
    if prefix.ends_with('/') {
        return Err(format!("{prefix:?} must not end with '/'"));
    }
    if prefix.len() > 256 {
        return Err("longer than 256 bytes".into());
    }
    for segment in prefix[1..].split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(format!("{prefix:?} has an empty, '.' or '..' segment"));
        }
        if !segment.bytes().all(is_name_byte) {
            return Err(format!(
                "{prefix:?} may only hold [A-Za-z0-9._-] between slashes"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_below_etcd_floor_is_refused_with_the_field_named() {
        let err = Options::new()
            .endpoints(["http://x:1"])
            .ttl_secs(1)
            .resolve()
            .unwrap_err();
        assert!(err.to_string().contains("invalid ttl"), "{err}");
    }

    #[test]
    fn prefix_rules() {
        for good in ["", "/svc", "/a/b"] {
            assert!(validate_prefix(good).is_ok(), "{good}");
        }
        for bad in ["svc", "/svc/", "/a//b", "/../x", "/a b"] {
            assert!(validate_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints_need_a_scheme() {
        let err = Options::new()
            .endpoints(["127.0.0.1:2379"])
            .resolve()
            .unwrap_err();
        assert!(err.to_string().contains("invalid endpoints"), "{err}");
        assert!(Options::new()
            .endpoints_csv("http://a:1, http://b:2")
            .resolve()
            .is_ok());
        let mixed = Options::new()
            .endpoints_csv("http://a:1, https://b:2")
            .resolve();
        assert!(mixed.unwrap_err().to_string().contains("mixes"));
    }
}

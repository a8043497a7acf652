//! Connecting to a secured etcd: TLS (with a CA file, and a client
//! certificate for mutual TLS) and username/password authentication.
//! Secrets never reach logs, errors, `Debug` output or events.

use std::path::{Path, PathBuf};

use crate::env::env;
use crate::error::{Error, Result};

/// A password: shown as `***` by `Debug`, never by `Display`, and only handed to etcd.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// etcd username and password; the client re-authenticates by itself when
/// etcd's token expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// etcd user name.
    pub user: String,
    /// Its password.
    pub password: Secret,
}

/// TLS files: the CA that signed etcd's certificate, and for mutual TLS a
/// client certificate and its key (all PEM).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificate(s) to trust.
    pub ca_file: Option<PathBuf>,
    /// Client certificate, for mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// Client private key, for mutual TLS.
    pub key_file: Option<PathBuf>,
}

impl TlsFiles {
    /// TLS files from `REGISTRY_CA_FILE`, `REGISTRY_CERT_FILE`, `REGISTRY_KEY_FILE`.
    pub(crate) fn from_env() -> Option<TlsFiles> {
        let files = TlsFiles {
            ca_file: env("REGISTRY_CA_FILE").map(PathBuf::from),
            cert_file: env("REGISTRY_CERT_FILE").map(PathBuf::from),
            key_file: env("REGISTRY_KEY_FILE").map(PathBuf::from),
        };
        (files != TlsFiles::default()).then_some(files)
    }

    /// Reads and checks the files, into tonic's TLS settings.
    pub(crate) fn load(&self) -> Result<etcd_client::TlsOptions> {
        let mut tls = etcd_client::TlsOptions::new();
        match &self.ca_file {
            Some(path) => {
                let pem = read_pem("ca_file", path, "CERTIFICATE")?;
                tls = tls.ca_certificate(etcd_client::Certificate::from_pem(pem));
            }
            None => {
                return Err(Error::invalid(
                    "ca_file",
                    "https endpoints need the CA that signed etcd's certificate (ca_file or REGISTRY_CA_FILE)",
                ))
            }
        }
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                let cert = read_pem("cert_file", cert, "CERTIFICATE")?;
                let key = read_pem("key_file", key, "PRIVATE KEY")?;
                tls = tls.identity(etcd_client::Identity::from_pem(cert, key));
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(Error::invalid(
                    "key_file",
                    "a client certificate needs its key",
                ))
            }
            (None, Some(_)) => {
                return Err(Error::invalid(
                    "cert_file",
                    "a client key needs its certificate",
                ))
            }
        }
        Ok(tls)
    }
}

/// Reads a PEM file, naming the option (never the content) when it is unusable.
fn read_pem(field: &str, path: &Path, kind: &str) -> Result<Vec<u8>> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::invalid(field, format!("cannot read {}: {e}", path.display())))?;
    let text = String::from_utf8_lossy(&pem);
    if !text.contains("-----BEGIN") || !text.contains(kind) {
        return Err(Error::invalid(
            field,
            format!("{} holds no PEM {kind}", path.display()),
        ));
    }
    Ok(pem)
}

/// Credentials from `REGISTRY_USER` / `REGISTRY_PASSWORD`.
pub(crate) fn credentials_from_env() -> Result<Option<Credentials>> {
    match (
        env("REGISTRY_USER"),
        std::env::var("REGISTRY_PASSWORD").ok(),
    ) {
        (Some(user), Some(password)) => Ok(Some(Credentials {
            user,
            password: Secret(password),
        })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(Error::invalid(
            "REGISTRY_PASSWORD",
            "REGISTRY_USER is set but REGISTRY_PASSWORD is not",
        )),
        (None, Some(_)) => Err(Error::invalid(
            "REGISTRY_USER",
            "REGISTRY_PASSWORD is set but REGISTRY_USER is not",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let creds = Credentials {
            user: "svc".into(),
            password: Secret::new("hunter2-known"),
        };
        let shown = format!("{creds:?}");
        assert!(!shown.contains("hunter2-known"), "{shown}");
        assert!(shown.contains("svc"));
    }

    #[test]
    fn tls_files_are_checked_naming_the_option() {
        let missing = TlsFiles {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsFiles::default()
        };
        let err = missing.load().unwrap_err().to_string();
        assert!(err.contains("ca_file"), "{err}");
        let no_ca = TlsFiles::default().load().unwrap_err().to_string();
        assert!(no_ca.contains("ca_file"), "{no_ca}");
    }
}

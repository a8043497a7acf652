//! Secured etcd for tests: certificates made with `openssl` at test time,
//! TLS and mutual-TLS members, and auth with a role limited to `/micro/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::access::Access;
use crate::Etcd;

/// The user the auth tests register as: may read and write `/micro/` only.
pub const SERVICE_USER: &str = "svc";
/// Its password, known so tests can search every output for it.
pub const SERVICE_PASSWORD: &str = "Known-s3cret-4-leak-search";
const ROOT_PASSWORD: &str = "root-pw-for-tests";

/// A CA, a server certificate for 127.0.0.1, a client certificate, and an
/// unrelated CA (for "wrong CA" cases), as PEM files in a temp dir.
pub struct TestCerts {
    dir: PathBuf,
    /// The CA that signed the server and client certificates.
    pub ca: PathBuf,
    /// etcd's certificate (SAN IP:127.0.0.1, DNS:localhost) and key.
    pub server_cert: PathBuf,
    /// etcd's key.
    pub server_key: PathBuf,
    /// A client certificate signed by `ca`, for mutual TLS.
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
    /// A CA that signed nothing here.
    pub other_ca: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is needed to make test certificates");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const EC_KEY: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

impl TestCerts {
    /// Makes fresh certificates (valid for two days) in a new temp dir.
    pub fn generate() -> TestCerts {
        let dir = std::env::temp_dir().join(crate::unique("certs"));
        std::fs::create_dir_all(&dir).expect("cert dir");
        for ca in ["ca", "other-ca"] {
            let mut args = vec!["req", "-x509", "-nodes", "-days", "2", "-subj"];
            let subject = format!("/CN=libregistry test {ca}");
            args.push(&subject);
            args.extend(EC_KEY);
            let key = format!("{ca}.key");
            let pem = format!("{ca}.pem");
            args.extend(["-keyout", &key, "-out", &pem]);
            openssl(&dir, &args);
        }
        for (name, usage, san) in [
            (
                "server",
                "serverAuth,clientAuth",
                "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
            ),
            ("client", "clientAuth", ""),
        ] {
            let (key, csr, pem, ext) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.pem"),
                format!("{name}.ext"),
            );
            let subject = format!("/CN=libregistry test {name}");
            let mut args = vec!["req", "-nodes", "-subj", &subject];
            args.extend(EC_KEY);
            args.extend(["-keyout", &key, "-out", &csr]);
            openssl(&dir, &args);
            std::fs::write(dir.join(&ext), format!("{san}extendedKeyUsage={usage}\n")).unwrap();
            openssl(
                &dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-extfile",
                    &ext,
                    "-out",
                    &pem,
                ],
            );
        }
        TestCerts {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
            other_ca: dir.join("other-ca.pem"),
            dir,
        }
    }

    fn tls(&self, with_client_cert: bool) -> etcd_client::TlsOptions {
        let read = |p: &PathBuf| std::fs::read(p).expect("read test certificate");
        let mut tls = etcd_client::TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(read(&self.ca)));
        if with_client_cert {
            tls = tls.identity(etcd_client::Identity::from_pem(
                read(&self.client_cert),
                read(&self.client_key),
            ));
        }
        tls
    }
}

impl Drop for TestCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Etcd {
    /// A single node serving clients over TLS with `certs`; with
    /// `client_cert_auth`, only clients with a certificate signed by the CA get in.
    pub async fn start_tls(certs: &TestCerts, client_cert_auth: bool) -> Etcd {
        let path = |p: &PathBuf| p.display().to_string();
        let mut args = vec![
            "--cert-file".to_string(),
            path(&certs.server_cert),
            "--key-file".to_string(),
            path(&certs.server_key),
        ];
        if client_cert_auth {
            // etcd asks every client for a certificate once it has a trusted CA.
            args.extend(["--trusted-ca-file".to_string(), path(&certs.ca)]);
            args.push("--client-cert-auth".to_string());
        }
        let access = Access {
            tls: Some(certs.tls(client_cert_auth)),
            user: None,
        };
        Etcd::cluster_with(1, args, access).await
    }

    /// A single node with auth enabled and simple tokens that expire after
    /// `token_ttl_secs`; user [`SERVICE_USER`] may read and write `/micro/` only.
    pub async fn start_with_auth(token_ttl_secs: u32) -> Etcd {
        let args = vec![
            "--auth-token".to_string(),
            "simple".to_string(),
            "--auth-token-ttl".to_string(),
            token_ttl_secs.to_string(),
        ];
        let mut etcd = Etcd::cluster_with(1, args, Access::default()).await;
        let mut raw = etcd.raw().await;
        raw.user_add("root", ROOT_PASSWORD, None)
            .await
            .expect("add root");
        raw.user_grant_role("root", "root")
            .await
            .expect("root role");
        raw.role_add("micro-rw").await.expect("add role");
        raw.role_grant_permission(
            "micro-rw",
            etcd_client::Permission::read_write("/micro/").with_prefix(),
        )
        .await
        .expect("grant /micro/");
        raw.user_add(SERVICE_USER, SERVICE_PASSWORD, None)
            .await
            .expect("add user");
        raw.user_grant_role(SERVICE_USER, "micro-rw")
            .await
            .expect("grant role");
        raw.auth_enable().await.expect("enable auth");
        etcd.access.user = Some(("root".into(), ROOT_PASSWORD.into()));
        // The harness's checks now go in as root.
        tokio::time::sleep(Duration::from_millis(50)).await;
        etcd
    }
}

//! How the harness's own clients reach etcd (TLS, user): a leaf shared by
//! the cluster code (lib.rs) and the secured clusters (secure.rs).

/// How the harness's own clients reach a member.
#[derive(Clone, Default)]
pub(crate) struct Access {
    pub tls: Option<etcd_client::TlsOptions>,
    pub user: Option<(String, String)>,
}

impl Access {
    pub(crate) fn apply(
        &self,
        mut opts: etcd_client::ConnectOptions,
    ) -> etcd_client::ConnectOptions {
        if let Some(tls) = &self.tls {
            opts = opts.with_tls(tls.clone());
        }
        if let Some((user, password)) = &self.user {
            opts = opts.with_user(user.clone(), password.clone());
        }
        opts
    }
}

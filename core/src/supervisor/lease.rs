//! The client's one lease: granted for the first registration, replaced
//! when lost, and the lost ones revoked once etcd answers.

use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::{remaining, Supervisor, FIRST_BACKOFF};
use crate::error::Result;
use crate::events::{Event, LostReason};
use crate::keepalive::LeaseToKeep;
use crate::metrics::Recorder;

impl Supervisor {
    /// Grants a new lease, hands it to keepalive, and marks every key of ours
    /// for moving to it.
    pub(super) async fn grant(&mut self, until: Instant) -> Result<()> {
        let ttl = i64::from(self.opts.ttl_secs);
        let granted = self.etcd.grant(remaining(until), ttl).await?;
        let new = LeaseToKeep {
            id: granted.id(),
            ttl_secs: u32::try_from(granted.ttl()).unwrap_or(self.opts.ttl_secs),
        };
        tracing::info!(
            lease = format_args!("{:x}", new.id),
            ttl_secs = new.ttl_secs,
            "lease granted"
        );
        Recorder::add(&self.etcd.recorder().lease_grants, 1);
        self.lease = Some(new);
        self.status.lease_id.store(new.id, Ordering::Relaxed);
        self.status
            .granted_ttl_secs
            .store(new.ttl_secs, Ordering::Relaxed);
        let _ = self.lease_tx.send(Some(new));
        self.lease_clean = true;
        self.ledger.recheck_everything(false);
        Ok(())
    }

    /// The lease `id` is lost (keepalive said so, or etcd does not know it).
    pub(super) fn on_lease_lost(&mut self, id: i64, reason: LostReason) {
        if self.lease.map(|l| l.id) != Some(id) {
            return; // an old lease we already replaced
        }
        self.lease = None;
        self.status.lease_id.store(0, Ordering::Relaxed);
        self.ledger.note_lease_lost(id);
        self.etcd.recorder().lease_lost(&reason);
        // A lease we gave up on may still live (a timeout is not a death):
        // revoke it once etcd answers, so its keys cannot outlive this process.
        self.leases_to_revoke.push(id);
        self.start_outage();
        self.events.emit(Event::LeaseLost {
            lease_id: id,
            reason,
        });
        self.backoff = FIRST_BACKOFF;
        self.heal_soon();
    }

    /// Revokes the leases we gave up on; last in a healing step, once every
    /// live key has moved to the current lease.
    pub(super) async fn revoke_former_leases(&mut self) -> Result<()> {
        while let Some(&id) = self.leases_to_revoke.last() {
            self.etcd
                .revoke("revoking a former lease", self.opts.request_timeout, id)
                .await?;
            self.leases_to_revoke.pop();
        }
        Ok(())
    }
}

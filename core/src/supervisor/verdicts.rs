//! A registration as the ledger keeps it ([`Entry`], [`Holder`]) and the
//! decisions that matter most, as plain functions over it, tested without
//! etcd (see `ledger_tests.rs`): what a ranged read of a service name means
//! for each key ([`sweep_verdict`]), what to do with a key whose state in
//! etcd is known ([`reconcile_verdict`]) and what a watch event on our own
//! keys means ([`watch_verdict`]).

/// Who holds one of our keys in etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holder {
    /// Ours: kept alive and healed.
    Us,
    /// Overwritten by another process under this lease: reported and left alone.
    Other(i64),
    /// Deleted from outside while healing of deleted keys is off: left alone.
    Removed,
    /// Withdrawn by its owner (a failing health check, a drain): kept, but
    /// not in etcd until restored; a write of it that lands is removed.
    Withdrawn,
}

/// One registration of this client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub name: String,
    pub value: String,
    pub holder: Holder,
    /// Revision of our last write of this key; older watch events are stale.
    pub written_rev: i64,
    /// The lease of that write: a key missing while it still lives was deleted from outside.
    pub written_lease: i64,
    /// Whether that write carried `value` (false while an update is not yet written).
    pub value_written: bool,
}

/// A key as a ranged read of its service name found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub mod_rev: i64,
    pub lease: i64,
}

/// A key as a read with its value found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyState {
    pub mod_rev: i64,
    pub lease: i64,
    /// Whether etcd holds the value we last wrote.
    pub holds_our_value: bool,
}

/// Our current lease (0: none) and the ones before it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Leases<'a> {
    pub current: i64,
    pub former: &'a [i64],
}

impl Leases<'_> {
    /// Whether a key under `lease` is one of our writes.
    fn ours(&self, lease: i64) -> bool {
        lease == self.current || self.former.contains(&lease)
    }
}

/// What a ranged read of a service name says about one key found there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SweepVerdict {
    /// Ours, as we last wrote it under the current lease.
    Intact,
    /// Ours but moved, rewritten or under an old lease: put it right.
    Dirty,
    /// Under our lease but not held (a late write of ours): delete it.
    Orphan,
    /// Held by another process, now under this lease.
    OtherNow(i64),
    /// Nothing of ours.
    Ignore,
}

/// Judges a key the sweep found; `entry` is ours for that key, if any.
pub(crate) fn sweep_verdict(entry: Option<&Entry>, found: Found, lease: i64) -> SweepVerdict {
    let Some(entry) = entry else {
        return if found.lease == lease {
            SweepVerdict::Orphan
        } else {
            SweepVerdict::Ignore
        };
    };
    match entry.holder {
        Holder::Us => {
            let intact =
                found.lease == lease && found.mod_rev == entry.written_rev && entry.value_written;
            if intact {
                SweepVerdict::Intact
            } else {
                SweepVerdict::Dirty
            }
        }
        Holder::Other(_) => SweepVerdict::OtherNow(found.lease),
        Holder::Removed => SweepVerdict::Ignore,
        // A write of ours that landed after the withdrawal: delete it.
        Holder::Withdrawn if found.lease == lease => SweepVerdict::Orphan,
        Holder::Withdrawn => SweepVerdict::Ignore,
    }
}

/// What to do with one of our keys whose state in etcd is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reconcile {
    /// Under our lease with our value: nothing to do.
    Intact,
    /// Deleted from outside under a living lease, and healing of deleted keys is off.
    LeaveDeleted,
    /// Another process holds it under this lease: report, leave it.
    Conflict(i64),
    /// Write our value under our lease, if the key is still at `expect_mod_rev` (0: absent).
    Rewrite {
        expect_mod_rev: i64,
        was_missing: bool,
    },
}

/// Judges one of our keys (held by us) against what etcd holds there.
pub(crate) fn reconcile_verdict(
    entry: &Entry,
    current: Option<KeyState>,
    leases: Leases<'_>,
    heal_deleted_keys: bool,
) -> Reconcile {
    let lease = leases.current;
    let Some(state) = current else {
        if entry.written_lease == lease && !heal_deleted_keys {
            return Reconcile::LeaveDeleted;
        }
        return Reconcile::Rewrite {
            expect_mod_rev: 0,
            was_missing: true,
        };
    };
    if state.lease == lease && state.holds_our_value {
        return Reconcile::Intact;
    }
    // A key without a lease (a plain put) is no other process's registration.
    if state.lease != 0 && !leases.ours(state.lease) {
        return Reconcile::Conflict(state.lease);
    }
    Reconcile::Rewrite {
        expect_mod_rev: state.mod_rev,
        was_missing: false,
    }
}

/// A put or a delete seen by the watch on our own keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    pub deleted: bool,
    /// The lease of a put (0 for a delete).
    pub lease: i64,
    pub mod_rev: i64,
}

/// What a watch event means for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WatchVerdict {
    /// Stale, ours, or not our business.
    Ignore,
    /// A write of ours under our lease for a key we do not hold: delete it.
    RemoveLateWrite,
    /// Ours and deleted or changed: check and put right.
    Heal,
    /// Deleted from outside while healing of deleted keys is off.
    LeaveDeleted,
    /// The other holder deleted it: ours again, to be written back.
    OursAgain,
    /// Overwritten by another process under this lease: report, leave it.
    Conflict(i64),
    /// The other holder rewrote it, now under this lease.
    OtherNow(i64),
}

/// Judges a watch event on a key; `entry` is ours for that key, if any.
pub(crate) fn watch_verdict(
    entry: Option<&Entry>,
    seen: Seen,
    leases: Leases<'_>,
    heal_deleted_keys: bool,
) -> WatchVerdict {
    let Some(entry) = entry else {
        // Under our lease but not ours to hold (deregistered, or a register
        // that failed): a write of ours that etcd applied after the delete.
        // Our lease would keep it alive.
        let late_write = !seen.deleted && leases.current != 0 && seen.lease == leases.current;
        return if late_write {
            WatchVerdict::RemoveLateWrite
        } else {
            WatchVerdict::Ignore
        };
    };
    if seen.mod_rev <= entry.written_rev {
        return WatchVerdict::Ignore; // about a write older than our last one
    }
    match (seen.deleted, entry.holder) {
        (_, Holder::Removed) => WatchVerdict::Ignore,
        (false, Holder::Withdrawn) if seen.lease == leases.current => WatchVerdict::RemoveLateWrite,
        (_, Holder::Withdrawn) => WatchVerdict::Ignore,
        (true, Holder::Us) => {
            // A delete event carries no lease, so unless healing is off this
            // heals; reconcile_verdict decides whether the lease still lived.
            if heal_deleted_keys || seen.lease != entry.written_lease {
                WatchVerdict::Heal
            } else {
                WatchVerdict::LeaveDeleted
            }
        }
        (true, Holder::Other(_)) => WatchVerdict::OursAgain,
        (false, Holder::Us) if leases.ours(seen.lease) => WatchVerdict::Ignore,
        (false, Holder::Us) => WatchVerdict::Conflict(seen.lease),
        (false, Holder::Other(_)) => WatchVerdict::OtherNow(seen.lease),
    }
}

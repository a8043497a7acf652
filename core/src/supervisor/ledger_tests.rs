//! The ledger's decisions, case by case, without etcd: every case the fault
//! matrix and the soak found, as tables.

use super::*;

const L: i64 = 0x10; // our current lease
const OLD: i64 = 0x0f; // a lease we held before
const X: i64 = 0x99; // another process's lease
const Y: i64 = 0x98; // yet another's

fn entry(holder: Holder) -> Entry {
    Entry {
        name: "svc".into(),
        value: "v".into(),
        holder,
        written_rev: 10,
        written_lease: L,
        value_written: true,
    }
}

fn leases(former: &[i64]) -> Leases<'_> {
    Leases { current: L, former }
}

#[test]
fn sweep_verdicts() {
    let pending_update = Entry {
        value_written: false,
        ..entry(Holder::Us)
    };
    let at = |mod_rev, lease| Found { mod_rev, lease };
    #[rustfmt::skip]
    let cases: [(&str, Option<Entry>, Found, SweepVerdict); 10] = [
        ("ours as written", Some(entry(Holder::Us)), at(10, L), SweepVerdict::Intact),
        ("ours under a lost lease", Some(entry(Holder::Us)), at(10, OLD), SweepVerdict::Dirty),
        ("ours rewritten by someone", Some(entry(Holder::Us)), at(12, L), SweepVerdict::Dirty),
        ("an update not yet written", Some(pending_update), at(10, L), SweepVerdict::Dirty),
        ("a late write of ours we do not hold", None, at(11, L), SweepVerdict::Orphan),
        ("another process's key", None, at(11, X), SweepVerdict::Ignore),
        ("held by another, rewritten", Some(entry(Holder::Other(X))), at(13, Y), SweepVerdict::OtherNow(Y)),
        ("left deleted on purpose", Some(entry(Holder::Removed)), at(13, X), SweepVerdict::Ignore),
        ("withdrawn, but a write of ours landed", Some(entry(Holder::Withdrawn)), at(12, L), SweepVerdict::Orphan),
        ("withdrawn, another process took it", Some(entry(Holder::Withdrawn)), at(12, X), SweepVerdict::Ignore),
    ];
    for (case, entry, found, want) in cases {
        assert_eq!(sweep_verdict(entry.as_ref(), found, L), want, "{case}");
    }
}

#[test]
fn reconcile_verdicts() {
    let state = |mod_rev, lease, holds_our_value| {
        Some(KeyState {
            mod_rev,
            lease,
            holds_our_value,
        })
    };
    let moved = Entry {
        written_lease: OLD,
        ..entry(Holder::Us)
    };
    let rewrite = |expect_mod_rev, was_missing| Reconcile::Rewrite {
        expect_mod_rev,
        was_missing,
    };
    let us = entry(Holder::Us);
    #[rustfmt::skip]
    let cases: [(&str, &Entry, Option<KeyState>, bool, Reconcile); 9] = [
        ("intact", &us, state(10, L, true), true, Reconcile::Intact),
        ("deleted from outside", &us, None, true, rewrite(0, true)),
        ("deleted, healing off", &us, None, false, Reconcile::LeaveDeleted),
        ("gone with a lost lease, healing off", &moved, None, false, rewrite(0, true)),
        ("still under a lost lease", &us, state(10, OLD, true), true, rewrite(10, false)),
        ("our lease, another value", &us, state(12, L, false), true, rewrite(12, false)),
        ("taken by another process", &us, state(12, X, false), true, Reconcile::Conflict(X)),
        ("a plain put without a lease", &us, state(12, 0, false), true, rewrite(12, false)),
        ("our value under an old lease, healing off", &us, state(10, OLD, true), false, rewrite(10, false)),
    ];
    for (case, entry, current, heal, want) in cases {
        assert_eq!(
            reconcile_verdict(entry, current, leases(&[OLD]), heal),
            want,
            "{case}"
        );
    }
}

/// (case, our entry, the event, our leases, heal deleted keys, verdict).
type WatchCase<'a> = (
    &'a str,
    &'a Option<Entry>,
    Seen,
    Leases<'a>,
    bool,
    WatchVerdict,
);

#[test]
fn watch_verdicts() {
    let put = |lease, mod_rev| Seen {
        deleted: false,
        lease,
        mod_rev,
    };
    let delete = |mod_rev| Seen {
        deleted: true,
        lease: 0,
        mod_rev,
    };
    let none = Leases {
        current: 0,
        former: &[],
    };
    let (us, other, removed, withdrawn) = (
        Some(entry(Holder::Us)),
        Some(entry(Holder::Other(X))),
        Some(entry(Holder::Removed)),
        Some(entry(Holder::Withdrawn)),
    );
    #[rustfmt::skip]
    let cases: [WatchCase<'_>; 16] = [
        ("a late write under our lease", &None, put(L, 11), leases(&[]), true, WatchVerdict::RemoveLateWrite),
        ("another process's key", &None, put(X, 11), leases(&[]), true, WatchVerdict::Ignore),
        ("a delete of a key we do not hold", &None, delete(11), leases(&[]), true, WatchVerdict::Ignore),
        ("a plain put while we hold no lease", &None, put(0, 11), none, true, WatchVerdict::Ignore),
        ("older than our last write", &us, delete(10), leases(&[]), true, WatchVerdict::Ignore),
        ("ours deleted from outside", &us, delete(11), leases(&[]), true, WatchVerdict::Heal),
        // A delete carries no lease: whether the lease lived is decided when reconciling.
        ("ours deleted, healing off", &us, delete(11), leases(&[]), false, WatchVerdict::Heal),
        ("left deleted on purpose", &removed, put(X, 11), leases(&[]), true, WatchVerdict::Ignore),
        ("the other holder left", &other, delete(11), leases(&[]), true, WatchVerdict::OursAgain),
        ("our own write", &us, put(L, 11), leases(&[]), true, WatchVerdict::Ignore),
        ("our write under a lost lease", &us, put(OLD, 11), leases(&[OLD]), true, WatchVerdict::Ignore),
        ("overwritten by another process", &us, put(X, 11), leases(&[OLD]), true, WatchVerdict::Conflict(X)),
        ("the other holder rewrote it", &other, put(Y, 12), leases(&[]), true, WatchVerdict::OtherNow(Y)),
        ("a plain put on ours while we hold no lease", &us, put(0, 11), none, true, WatchVerdict::Ignore),
        ("a write of ours landing after the withdrawal", &withdrawn, put(L, 11), leases(&[]), true, WatchVerdict::RemoveLateWrite),
        ("a withdrawn key deleted", &withdrawn, delete(11), leases(&[]), true, WatchVerdict::Ignore),
    ];
    for (case, entry, seen, leases, heal, want) in cases {
        assert_eq!(
            watch_verdict(entry.as_ref(), seen, leases, heal),
            want,
            "{case}"
        );
    }
}

/// A ledger holding `/svc/a` .. `/svc/d`, written at revision 10 under `L`.
fn ledger() -> Ledger {
    let mut ledger = Ledger::default();
    for key in ["/svc/a", "/svc/b", "/svc/c", "/svc/d"] {
        ledger.insert(key, "svc", "v", 10, L);
    }
    ledger
}

#[test]
fn a_sweep_marks_what_is_wrong_and_finds_late_writes() {
    let mut ledger = ledger();
    ledger.on_watch_event(
        "/svc/c",
        Seen {
            deleted: false,
            lease: X,
            mod_rev: 11,
        },
        L,
        true,
    );
    assert_eq!(
        ledger.get("/svc/c").map(|e| e.holder),
        Some(Holder::Other(X))
    );
    let found = [
        (
            "/svc/a".to_string(),
            Found {
                mod_rev: 10,
                lease: L,
            },
        ),
        // b missing; c's holder left; d still under the lease we lost
        (
            "/svc/d".to_string(),
            Found {
                mod_rev: 10,
                lease: OLD,
            },
        ),
        (
            "/svc/late".to_string(),
            Found {
                mod_rev: 12,
                lease: L,
            },
        ),
        (
            "/svc/theirs".to_string(),
            Found {
                mod_rev: 13,
                lease: X,
            },
        ),
    ];
    ledger.apply_sweep("svc", &found, L);
    let dirty: Vec<&str> = ledger.dirty.iter().map(String::as_str).collect();
    assert_eq!(dirty, ["/svc/b", "/svc/c", "/svc/d"]);
    assert_eq!(
        ledger.get("/svc/c").map(|e| e.holder),
        Some(Holder::Us),
        "ours again"
    );
    let orphans: Vec<&str> = ledger.orphans.iter().map(String::as_str).collect();
    assert_eq!(orphans, ["/svc/late"]);
    // Everything dirty was seen by the sweep: no key needs a read of its own.
    let chunk = ledger.next_dirty_chunk(128).unwrap();
    assert!(ledger.unseen(&chunk).is_empty());
}

#[test]
fn a_chunk_plan_writes_what_is_ours_and_reports_takeovers() {
    let mut ledger = ledger();
    ledger.note_lease_lost(OLD);
    ledger.recheck_everything(true);
    let chunk = ledger.next_dirty_chunk(128).unwrap();
    assert_eq!(chunk.len(), 4);
    let read = HashMap::from([
        ("/svc/a".to_string(), Some((10, L, b"v".to_vec()))),
        ("/svc/b".to_string(), None),
        ("/svc/c".to_string(), Some((11, X, b"theirs".to_vec()))),
        ("/svc/d".to_string(), Some((10, OLD, b"v".to_vec()))),
    ]);
    let plan = ledger.plan_chunk(&chunk, read, L, true);
    assert_eq!(
        plan,
        ChunkPlan {
            rewrites: vec![
                ("/svc/b".into(), "v".into(), 0, true),
                ("/svc/d".into(), "v".into(), 10, false),
            ],
            conflicts: vec![("/svc/c".into(), X)],
        }
    );
    ledger.record_written(["/svc/b", "/svc/d"], 20, L);
    assert!(ledger.next_dirty_chunk(128).is_none(), "nothing left to do");
    assert_eq!(ledger.live_count(), 3);
}

#[test]
fn a_recheck_under_a_clean_lease_reads_only_names_shared_with_another_holder() {
    let mut ledger = ledger();
    ledger.insert("/web/a", "web", "v", 10, L);
    ledger.insert("/web/b", "web", "v", 10, L);
    let taken = Seen {
        deleted: false,
        lease: X,
        mod_rev: 11,
    };
    ledger.on_watch_event("/web/b", taken, L, true);
    ledger.note_lease_lost(L);
    ledger.recheck_everything(false);
    let swept: Vec<&str> = ledger.sweep.iter().map(String::as_str).collect();
    assert_eq!(swept, ["web"], "only where another process may have left");
    let chunk = ledger.next_dirty_chunk(128).unwrap();
    assert_eq!(chunk, ["/svc/a", "/svc/b", "/svc/c", "/svc/d", "/web/a"]);
    assert!(ledger.written_under("/svc/a", L) && !ledger.written_under("/svc/a", L + 1));
    ledger.recheck_everything(true);
    assert_eq!(ledger.sweep.len(), 2, "every name read whole");
}

#[test]
fn healing_off_leaves_a_deleted_key_deleted() {
    let mut ledger = ledger();
    let verdict = ledger.on_watch_event(
        "/svc/a",
        Seen {
            deleted: true,
            lease: 0,
            mod_rev: 11,
        },
        L,
        false,
    );
    assert_eq!(verdict, WatchVerdict::Heal);
    let chunk = ledger.next_dirty_chunk(128).unwrap();
    let plan = ledger.plan_chunk(
        &chunk,
        HashMap::from([("/svc/a".to_string(), None)]),
        L,
        false,
    );
    assert_eq!(plan, ChunkPlan::default());
    assert_eq!(
        ledger.get("/svc/a").map(|e| e.holder),
        Some(Holder::Removed)
    );
}

#[test]
fn names_stay_watched_after_their_last_key_goes() {
    let mut ledger = ledger();
    ledger.insert("/other/a", "other", "v", 11, L);
    ledger.forget("/other/a");
    assert!(ledger.former_names.contains("other"));
    assert_eq!(
        ledger.names_to_watch().into_iter().collect::<Vec<_>>(),
        ["other", "svc"]
    );
    for key in ["/svc/a", "/svc/b", "/svc/c", "/svc/d"] {
        assert!(ledger.forget(key).is_some());
    }
    assert!(!ledger.needs_lease(), "no registration, no lease");
    assert!(
        ledger.has_names_to_watch(),
        "late writes may still land under both names"
    );
}

#[test]
fn former_leases_are_bounded() {
    let mut ledger = Ledger::default();
    for id in 1..=40 {
        ledger.note_lease_lost(id);
    }
    assert_eq!(ledger.former_leases.len(), FORMER_LEASES_KEPT);
    assert_eq!(ledger.former_leases.last(), Some(&40));
}

#[test]
fn a_withdrawn_key_is_not_healed_and_comes_back_when_restored() {
    let mut ledger = ledger();
    assert_eq!(ledger.set_withdrawn("/svc/a", true), Some(Holder::Us));
    assert!(!ledger.holds("/svc/a"), "its key may be deleted");
    ledger.recheck_everything(true);
    let chunk = ledger.next_dirty_chunk(128).unwrap();
    assert!(
        !chunk.contains(&"/svc/a".to_string()),
        "not healed while withdrawn"
    );
    ledger.apply_sweep("svc", &[], L);
    assert!(!ledger.dirty.contains("/svc/a"), "missing on purpose");
    assert_eq!(
        ledger.set_withdrawn("/svc/a", false),
        Some(Holder::Withdrawn)
    );
    assert!(
        ledger.holds("/svc/a") && ledger.dirty.contains("/svc/a"),
        "written again"
    );
    assert_eq!(ledger.set_withdrawn("/nope", true), None);
}

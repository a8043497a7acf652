//! The ledger: what a client holds and what it still owes etcd, as plain
//! data. What each state of a key in etcd means is decided in
//! [`super::verdicts`]; the supervisor does the I/O and applies the verdicts.

use std::collections::{BTreeMap, BTreeSet, HashMap};

pub(crate) use super::verdicts::*;

/// Former leases remembered: keys still under them are ours to take back.
const FORMER_LEASES_KEPT: usize = 16;

/// Everything a client holds and owes, with the decisions applied to it.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    entries: HashMap<String, Entry>,
    /// Service name -> our keys under it (decides what we watch and sweep).
    by_name: BTreeMap<String, BTreeSet<String>>,
    /// Keys whose state in etcd must be checked and put right.
    pub dirty: BTreeSet<String>,
    /// Keys we may have left behind (a failed register or deregister) and must delete.
    pub orphans: BTreeSet<String>,
    /// Names we hold no key of now but where a late write of ours may still
    /// land: every name we held, and names of registers that failed unsure
    /// whether their write landed. Watched and swept like our own names.
    pub former_names: BTreeSet<String>,
    /// Service names whose keys are all read again before the next writes:
    /// after our watch was (re)opened or a new lease was granted.
    pub sweep: BTreeSet<String>,
    /// What the last sweep found at each of our keys (`None`: absent),
    /// until a healing write uses it.
    seen: HashMap<String, Option<Found>>,
    /// Leases we held before, newest last.
    former_leases: Vec<i64>,
}

/// The writes one chunk of dirty keys needs, and what was found instead.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ChunkPlan {
    /// (key, value, expected mod revision (0: absent), whether it was missing).
    pub rewrites: Vec<(String, String, i64, bool)>,
    /// Keys another process holds, with its lease.
    pub conflicts: Vec<(String, i64)>,
}

impl Ledger {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Whether `key` is one of ours that etcd should hold (or another
    /// process holds): not to be deleted as a leftover. A withdrawn one is.
    pub fn holds(&self, key: &str) -> bool {
        self.entries
            .get(key)
            .is_some_and(|e| e.holder != Holder::Withdrawn)
    }

    /// Marks `key` withdrawn (or, `false`, ours again and to be written);
    /// `None` when we hold no such key.
    pub fn set_withdrawn(&mut self, key: &str, withdrawn: bool) -> Option<Holder> {
        let entry = self.entries.get_mut(key)?;
        let before = entry.holder;
        if withdrawn {
            entry.holder = Holder::Withdrawn;
            self.dirty.remove(key);
        } else if before == Holder::Withdrawn {
            entry.holder = Holder::Us;
            entry.value_written = false;
            self.dirty.insert(key.to_string());
        }
        Some(before)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Registrations we hold ourselves (not conflicted, not left deleted).
    pub fn live_count(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.holder == Holder::Us)
            .count()
    }

    /// The leases we held before `current` (their keys are ours to take back).
    pub fn former_leases_of(&self, current: i64) -> Vec<i64> {
        self.former_leases
            .iter()
            .copied()
            .filter(|l| *l != current)
            .collect()
    }

    /// Whether a lease is needed: a client with no registration holds none.
    pub fn needs_lease(&self) -> bool {
        !self.entries.is_empty()
    }

    /// Records a registration just written under `lease` at revision `rev`.
    pub fn insert(&mut self, key: &str, name: &str, value: &str, rev: i64, lease: i64) {
        self.by_name
            .entry(name.to_string())
            .or_default()
            .insert(key.to_string());
        self.entries.insert(
            key.to_string(),
            Entry {
                name: name.to_string(),
                value: value.to_string(),
                holder: Holder::Us,
                written_rev: rev,
                written_lease: lease,
                value_written: true,
            },
        );
    }

    /// Forgets a registration; its name stays watched as a former name once
    /// its last key goes (a late write of ours may still land under it).
    pub fn forget(&mut self, key: &str) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.dirty.remove(key);
        self.seen.remove(key);
        if let Some(keys) = self.by_name.get_mut(&entry.name) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_name.remove(&entry.name);
                self.former_names.insert(entry.name.clone());
            }
        }
        Some(entry)
    }

    /// Sets a new value to write; the key's holder says whether we may.
    pub fn set_value(&mut self, key: &str, value: &str) -> Option<Holder> {
        let entry = self.entries.get_mut(key)?;
        entry.value = value.to_string();
        entry.value_written = false;
        Some(entry.holder)
    }

    /// Records that `keys` now hold their value under `lease` at revision `rev`.
    pub fn record_written<'k>(
        &mut self,
        keys: impl IntoIterator<Item = &'k str>,
        rev: i64,
        lease: i64,
    ) {
        for key in keys {
            self.dirty.remove(key);
            if let Some(entry) = self.entries.get_mut(key) {
                entry.written_rev = rev;
                entry.written_lease = lease;
                entry.value_written = true;
            }
        }
    }

    /// Remembers a lost lease: keys still under it are ours to take back.
    pub fn note_lease_lost(&mut self, id: i64) {
        self.former_leases.push(id);
        if self.former_leases.len() > FORMER_LEASES_KEPT {
            self.former_leases.remove(0);
        }
    }

    pub fn has_names_to_watch(&self) -> bool {
        !self.by_name.is_empty() || !self.former_names.is_empty()
    }

    /// Our service names and the former ones.
    pub fn names_to_watch(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.by_name.keys().cloned().collect();
        names.extend(self.former_names.iter().cloned());
        names
    }

    /// Marks every key we hold for checking. `sweep_all`: each service name
    /// (former ones too) is read whole, which also finds writes of ours we
    /// do not know of; else only names where another process holds a key of
    /// ours (ours again if it left), and our keys are checked one by one.
    pub fn recheck_everything(&mut self, sweep_all: bool) {
        self.seen.clear();
        let mut names = BTreeSet::new();
        for (key, entry) in &self.entries {
            match entry.holder {
                Holder::Us => _ = self.dirty.insert(key.clone()),
                Holder::Other(_) => _ = names.insert(entry.name.clone()),
                _ => {}
            }
        }
        self.sweep.extend(if sweep_all {
            self.names_to_watch()
        } else {
            names
        });
    }

    /// Whether our last write of `key` was under `lease`.
    pub fn written_under(&self, key: &str, lease: i64) -> bool {
        self.entries
            .get(key)
            .is_some_and(|e| e.written_lease == lease)
    }

    /// Applies what a ranged read of `name` found (every key under it,
    /// `lease` being ours): keys of ours that are missing, moved or
    /// overwritten become dirty, with what was found remembered for the
    /// write; keys under our lease that we do not hold become orphans.
    pub fn apply_sweep(&mut self, name: &str, found: &[(String, Found)], lease: i64) {
        let mut present = BTreeSet::new();
        for (key, at) in found {
            present.insert(key.as_str());
            match sweep_verdict(self.entries.get(key), *at, lease) {
                SweepVerdict::Intact => {
                    self.dirty.remove(key);
                }
                SweepVerdict::Dirty => {
                    self.dirty.insert(key.clone());
                    self.seen.insert(key.clone(), Some(*at));
                }
                SweepVerdict::Orphan => {
                    self.orphans.insert(key.clone());
                }
                SweepVerdict::OtherNow(other) => {
                    if let Some(entry) = self.entries.get_mut(key) {
                        entry.holder = Holder::Other(other);
                    }
                }
                SweepVerdict::Ignore => {}
            }
        }
        let Some(keys) = self.by_name.get(name) else {
            return;
        };
        for key in keys {
            if present.contains(key.as_str()) {
                continue;
            }
            let Some(entry) = self.entries.get_mut(key) else {
                continue;
            };
            if let Holder::Other(_) = entry.holder {
                // The other holder left while we were not watching: ours again.
                entry.holder = Holder::Us;
            }
            if entry.holder == Holder::Us {
                self.dirty.insert(key.clone());
                self.seen.insert(key.clone(), None);
            }
        }
    }

    /// The next dirty keys to put right, at most `max`; keys no longer ours
    /// (deregistered or conflicted meanwhile) are dropped first.
    pub fn next_dirty_chunk(&mut self, max: usize) -> Option<Vec<String>> {
        let entries = &self.entries;
        self.dirty
            .retain(|k| entries.get(k).is_some_and(|e| e.holder == Holder::Us));
        let chunk: Vec<String> = self.dirty.iter().take(max).cloned().collect();
        (!chunk.is_empty()).then_some(chunk)
    }

    /// The keys of `chunk` no sweep has seen: they need a read of their own.
    pub fn unseen(&self, chunk: &[String]) -> Vec<String> {
        chunk
            .iter()
            .filter(|k| !self.seen.contains_key(*k))
            .cloned()
            .collect()
    }

    /// The names of `keys` (to sweep instead of reading many keys one by one).
    pub fn names_of(&self, keys: &[String]) -> Vec<String> {
        keys.iter()
            .filter_map(|k| self.entries.get(k).map(|e| e.name.clone()))
            .collect()
    }

    /// Decides a chunk of dirty keys from what the sweep saw and `read`
    /// (key -> (mod revision, lease, value) read one by one): applies what
    /// needs no write (intact, left deleted, conflicted) and returns the
    /// writes and the conflicts to report.
    pub fn plan_chunk(
        &mut self,
        keys: &[String],
        mut read: HashMap<String, Option<(i64, i64, Vec<u8>)>>,
        lease: i64,
        heal_deleted_keys: bool,
    ) -> ChunkPlan {
        let mut plan = ChunkPlan::default();
        for key in keys {
            let Some(entry) = self.entries.get(key) else {
                continue;
            };
            let current = match self.seen.remove(key) {
                Some(seen) => seen.map(|at| KeyState {
                    mod_rev: at.mod_rev,
                    lease: at.lease,
                    holds_our_value: entry.value_written && at.mod_rev == entry.written_rev,
                }),
                None => read
                    .remove(key)
                    .flatten()
                    .map(|(mod_rev, lease, value)| KeyState {
                        mod_rev,
                        lease,
                        holds_our_value: value == entry.value.as_bytes(),
                    }),
            };
            let leases = Leases {
                current: lease,
                former: &self.former_leases,
            };
            let verdict = reconcile_verdict(entry, current, leases, heal_deleted_keys);
            let entry = self.entries.get_mut(key).expect("looked up above");
            match verdict {
                Reconcile::Intact => {
                    self.dirty.remove(key);
                }
                Reconcile::LeaveDeleted => {
                    entry.holder = Holder::Removed;
                    self.dirty.remove(key);
                }
                Reconcile::Conflict(other) => {
                    entry.holder = Holder::Other(other);
                    self.dirty.remove(key);
                    plan.conflicts.push((key.clone(), other));
                }
                Reconcile::Rewrite {
                    expect_mod_rev,
                    was_missing,
                } => plan.rewrites.push((
                    key.clone(),
                    entry.value.clone(),
                    expect_mod_rev,
                    was_missing,
                )),
            }
        }
        plan
    }

    /// Applies a watch event on `key`; the verdict tells the supervisor what
    /// to report and whether healing is due.
    pub fn on_watch_event(
        &mut self,
        key: &str,
        seen: Seen,
        current_lease: i64,
        heal_deleted_keys: bool,
    ) -> WatchVerdict {
        let leases = Leases {
            current: current_lease,
            former: &self.former_leases,
        };
        let verdict = watch_verdict(self.entries.get(key), seen, leases, heal_deleted_keys);
        match verdict {
            WatchVerdict::RemoveLateWrite => {
                self.orphans.insert(key.to_string());
            }
            WatchVerdict::Heal => {
                self.dirty.insert(key.to_string());
            }
            WatchVerdict::OursAgain => {
                self.set_holder(key, Holder::Us);
                self.dirty.insert(key.to_string());
            }
            WatchVerdict::LeaveDeleted => self.set_holder(key, Holder::Removed),
            WatchVerdict::Conflict(other) => {
                self.set_holder(key, Holder::Other(other));
                self.dirty.remove(key);
            }
            WatchVerdict::OtherNow(other) => self.set_holder(key, Holder::Other(other)),
            WatchVerdict::Ignore => {}
        }
        verdict
    }

    fn set_holder(&mut self, key: &str, holder: Holder) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.holder = holder;
        }
    }

    /// Forgets everything (the client closed).
    pub fn clear(&mut self) {
        *self = Ledger::default();
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;

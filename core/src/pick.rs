//! Choosing a provider from a watcher's cache: weighted random (or round
//! robin), preferring the consumer's zone, then its region, then anyone;
//! weight 0 is never picked; optional `env` / `deployment` filters.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::instance::Instance;

/// How to balance among the preferred instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// Random, in proportion to `weight`.
    #[default]
    WeightedRandom,
    /// Each instance in turn (weight 0 still excluded).
    RoundRobin,
}

/// What a consumer prefers and requires when picking.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PickPolicy {
    /// Prefer instances in this zone (default: `REGISTRY_ZONE`).
    pub zone: Option<String>,
    /// Then instances in this region (default: `REGISTRY_REGION`).
    pub region: Option<String>,
    /// Only instances with this `env` (canary routing).
    pub env: Option<String>,
    /// Only instances with this `deployment` (canary routing).
    pub deployment: Option<String>,
    /// Weighted random (default) or round robin.
    pub balance: Balance,
}

impl PickPolicy {
    /// The consumer's own zone and region from `REGISTRY_ZONE` / `REGISTRY_REGION`.
    pub fn from_env() -> PickPolicy {
        PickPolicy {
            zone: crate::env::env("REGISTRY_ZONE"),
            region: crate::env::env("REGISTRY_REGION"),
            ..PickPolicy::default()
        }
    }

    fn admits(&self, i: &Instance) -> bool {
        i.weight() > 0
            && self.env.as_deref().is_none_or(|e| i.env() == Some(e))
            && self
                .deployment
                .as_deref()
                .is_none_or(|d| i.deployment() == Some(d))
    }
}

/// Picking state: a random stream and a round-robin cursor, shared by threads without locks.
#[derive(Debug)]
pub(crate) struct Picker {
    rng: AtomicU64,
    cursor: AtomicUsize,
}

impl Picker {
    pub(crate) fn new() -> Picker {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        Picker {
            rng: AtomicU64::new(h.finish()),
            cursor: AtomicUsize::new(0),
        }
    }

    /// SplitMix64: each call advances one shared counter, so threads never contend on a lock.
    fn next_u64(&self) -> u64 {
        let mut z = self
            .rng
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn pick<'a>(
        &self,
        instances: &'a [Instance],
        policy: &PickPolicy,
    ) -> Option<&'a Instance> {
        let admitted: Vec<&Instance> = instances.iter().filter(|i| policy.admits(i)).collect();
        let tier = preferred_tier(&admitted, policy);
        if tier.is_empty() {
            return None;
        }
        match policy.balance {
            Balance::RoundRobin => {
                let n = self.cursor.fetch_add(1, Ordering::Relaxed);
                Some(tier[n % tier.len()])
            }
            Balance::WeightedRandom => {
                let total: u64 = tier.iter().map(|i| u64::from(i.weight())).sum();
                let mut ticket = self.next_u64() % total;
                for i in &tier {
                    let w = u64::from(i.weight());
                    if ticket < w {
                        return Some(i);
                    }
                    ticket -= w;
                }
                tier.last().copied()
            }
        }
    }
}

/// Same zone if any admitted instance is there, else same region, else all.
fn preferred_tier<'a>(admitted: &[&'a Instance], policy: &PickPolicy) -> Vec<&'a Instance> {
    let within =
        |field: fn(&Instance) -> Option<&str>, want: &Option<String>| -> Vec<&'a Instance> {
            match want {
                Some(w) => admitted
                    .iter()
                    .copied()
                    .filter(|i| field(i) == Some(w.as_str()))
                    .collect(),
                None => Vec::new(),
            }
        };
    let zone = within(Instance::zone, &policy.zone);
    if !zone.is_empty() {
        return zone;
    }
    let region = within(Instance::region, &policy.region);
    if !region.is_empty() {
        return region;
    }
    admitted.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inst(addr: &str, meta: serde_json::Value) -> Instance {
        Instance {
            key: format!("/s/{addr}"),
            name: "s".into(),
            addr: addr.into(),
            metadata: meta.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn weights_are_followed_within_5_percent_over_100000_picks() {
        let all = vec![
            inst("a:1", json!({"weight": 100})),
            inst("b:1", json!({"weight": 200})),
            inst("c:1", json!({"weight": 700})),
            inst("z:1", json!({"weight": 0})),
        ];
        let picker = Picker::new();
        let policy = PickPolicy::default();
        let mut counts = std::collections::HashMap::new();
        for _ in 0..100_000 {
            *counts
                .entry(picker.pick(&all, &policy).unwrap().addr.clone())
                .or_insert(0u32) += 1;
        }
        assert_eq!(counts.get("z:1"), None, "weight 0 is never picked");
        for (addr, share) in [("a:1", 0.1), ("b:1", 0.2), ("c:1", 0.7)] {
            let got = f64::from(counts[addr]) / 100_000.0;
            assert!(
                (got - share).abs() <= share * 0.05,
                "{addr}: {got} vs {share}"
            );
        }
    }

    #[test]
    fn zone_then_region_then_all() {
        let all = vec![
            inst("far:1", json!({"region": "r2", "zone": "z9"})),
            inst("region:1", json!({"region": "r1", "zone": "z2"})),
            inst("zone:1", json!({"region": "r1", "zone": "z1"})),
            inst(
                "drained:1",
                json!({"region": "r1", "zone": "z1", "weight": 0}),
            ),
        ];
        let picker = Picker::new();
        let mut policy = PickPolicy {
            zone: Some("z1".into()),
            region: Some("r1".into()),
            ..Default::default()
        };
        for _ in 0..100 {
            assert_eq!(picker.pick(&all, &policy).unwrap().addr, "zone:1");
        }
        policy.zone = Some("z7".into());
        for _ in 0..100 {
            let addr = &picker.pick(&all, &policy).unwrap().addr;
            assert!(
                addr == "region:1" || addr == "zone:1",
                "{addr} is outside region r1"
            );
        }
        policy.region = Some("r7".into());
        assert!(picker.pick(&all, &policy).is_some());
    }

    #[test]
    fn filters_and_round_robin() {
        let all = vec![
            inst("prod:1", json!({"env": "prod", "deployment": "blue"})),
            inst("canary:1", json!({"env": "prod", "deployment": "green"})),
            inst("dev:1", json!({"env": "dev"})),
        ];
        let picker = Picker::new();
        let canary = PickPolicy {
            deployment: Some("green".into()),
            ..Default::default()
        };
        assert_eq!(picker.pick(&all, &canary).unwrap().addr, "canary:1");
        let none = PickPolicy {
            env: Some("staging".into()),
            ..Default::default()
        };
        assert!(picker.pick(&all, &none).is_none());
        let rr = PickPolicy {
            balance: Balance::RoundRobin,
            ..Default::default()
        };
        let order: Vec<String> = (0..6)
            .map(|_| picker.pick(&all, &rr).unwrap().addr.clone())
            .collect();
        assert_eq!(order[0..3], order[3..6]);
        let mut distinct = order[0..3].to_vec();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 3);
    }
}

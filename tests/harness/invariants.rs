//! The invariants the fault matrix and the soak check after every fault:
//! etcd holds exactly the registrations that should be alive, each under its
//! owner's current lease and with its latest value, and a watcher's cache
//! equals a fresh `discover`.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use libregistry::{Client, Instance, Layout, Watcher};

/// Longest a single read of a check may take (etcd may be mid-election).
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between two checks while waiting for convergence.
const POLL: Duration = Duration::from_millis(25);
/// How many offending keys a failure message names.
const NAMED: usize = 4;

/// What one key must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    /// The lease the key must be under; `None`: any lease (a process we do not see into).
    pub lease: Option<i64>,
    /// The metadata `gen` the value must carry (bumped by updates); `None`: any.
    pub generation: Option<String>,
}

/// Every key that should be alive, and what it must hold.
pub type Expected = BTreeMap<String, Want>;

/// Checks that etcd holds exactly `expected` under `range` (a key prefix).
pub async fn etcd_holds(
    raw: &mut etcd_client::Client,
    range: &str,
    expected: &Expected,
) -> Result<(), String> {
    etcd_holds_in(raw, Layout::Seed, range, expected).await
}

/// [`etcd_holds`] for values written in `layout`.
pub async fn etcd_holds_in(
    raw: &mut etcd_client::Client,
    layout: Layout,
    range: &str,
    expected: &Expected,
) -> Result<(), String> {
    let resp = read_prefix(raw, range).await?;
    compare(layout, &resp, expected)
}

/// [`etcd_holds`], reading from every member at once (`raws`: one client per
/// member) and judging the first answer: a member that accepts connections
/// before it serves (a restarted etcd 3.4) must not stall the check, which
/// measures the library, not the checker's choice of member. A read is
/// linearizable, so any member's answer is the cluster's state.
pub async fn etcd_holds_each(
    raws: &[etcd_client::Client],
    range: &str,
    expected: &Expected,
) -> Result<(), String> {
    let mut reads = tokio::task::JoinSet::new();
    for raw in raws {
        let mut raw = raw.clone();
        let range = range.to_string();
        reads.spawn(async move { read_prefix(&mut raw, &range).await });
    }
    let mut last = String::from("no member to read from");
    while let Some(read) = reads.join_next().await {
        match read {
            Ok(Ok(resp)) => return compare(Layout::Seed, &resp, expected),
            Ok(Err(e)) => last = e,
            Err(e) => last = format!("etcd read panicked: {e}"),
        }
    }
    Err(last)
}

/// Whether `resp` holds exactly `expected`, and if not, what differs.
fn compare(
    layout: Layout,
    resp: &etcd_client::GetResponse,
    expected: &Expected,
) -> Result<(), String> {
    let mut missing = Vec::new();
    let mut unexpected = Vec::new();
    let mut wrong = Vec::new();
    let mut held = BTreeMap::new();
    for kv in resp.kvs() {
        let key = kv.key_str().unwrap_or_default().to_string();
        held.insert(key.clone(), ());
        let Some(want) = expected.get(&key) else {
            unexpected.push(format!(
                "{key} (lease {:x}, created at {}, written at {})",
                kv.lease(),
                kv.create_revision(),
                kv.mod_revision()
            ));
            continue;
        };
        if let Some(lease) = want.lease {
            if kv.lease() != lease {
                wrong.push(format!("{key} under lease {:x}, not {lease:x}", kv.lease()));
                continue;
            }
        } else if kv.lease() == 0 {
            wrong.push(format!("{key} under no lease"));
            continue;
        }
        if let Some(generation) = &want.generation {
            let name = service_of(&key);
            let found = layout
                .decode(name, &key, kv.value())
                .ok()
                .and_then(|i| i.meta("gen"));
            if found.as_ref() != Some(generation) {
                wrong.push(format!("{key} has gen {found:?}, not {generation}"));
            }
        }
    }
    for key in expected.keys() {
        if !held.contains_key(key) {
            missing.push(key.clone());
        }
    }
    if missing.is_empty() && unexpected.is_empty() && wrong.is_empty() {
        return Ok(());
    }
    Err(format!(
        "etcd: {} missing {:?}, {} unexpected {:?}, {} wrong {:?}",
        missing.len(),
        &missing[..missing.len().min(NAMED)],
        unexpected.len(),
        &unexpected[..unexpected.len().min(NAMED)],
        wrong.len(),
        &wrong[..wrong.len().min(NAMED)],
    ))
}

/// Reads `range`, trying again (another member, if the client balances
/// over several) until [`READ_TIMEOUT`]: a dead member must not fail a check.
async fn read_prefix(
    raw: &mut etcd_client::Client,
    range: &str,
) -> Result<etcd_client::GetResponse, String> {
    let start = Instant::now();
    loop {
        let left = READ_TIMEOUT.saturating_sub(start.elapsed());
        let options = etcd_client::GetOptions::new().with_prefix();
        let error = match tokio::time::timeout(left, raw.get(range, Some(options))).await {
            Ok(Ok(resp)) => return Ok(resp),
            Ok(Err(e)) => format!("etcd read failed: {e}"),
            Err(_) => "etcd read timed out".to_string(),
        };
        if start.elapsed() + Duration::from_millis(10) >= READ_TIMEOUT {
            return Err(error);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `svc` for `/svc/addr` or `/prefix/svc/addr`: the segment before the last.
fn service_of(key: &str) -> &str {
    let mut parts = key.rsplit('/');
    parts.next();
    parts.next().unwrap_or_default()
}

/// Checks that `watcher`'s cache equals a fresh `discover` by `reader`, and
/// that both hold exactly the keys of `expected` for the watched service.
pub async fn watcher_matches(
    watcher: &Watcher,
    reader: &Client,
    expected: &Expected,
) -> Result<(), String> {
    watchers_match(&[watcher], reader, expected).await
}

/// [`watcher_matches`] for many watchers, reading each service once.
pub async fn watchers_match(
    watchers: &[&Watcher],
    reader: &Client,
    expected: &Expected,
) -> Result<(), String> {
    let mut fresh_by_name: BTreeMap<&str, Vec<Instance>> = BTreeMap::new();
    for watcher in watchers {
        let name = watcher.name();
        if !fresh_by_name.contains_key(name) {
            let fresh = discover_expected(reader, name, expected).await?;
            fresh_by_name.insert(name, fresh);
        }
        let fresh = &fresh_by_name[name];
        let cached = watcher.instances();
        if cached.as_slice() != fresh.as_slice() {
            let stale: Vec<&str> = cached
                .iter()
                .filter(|i| !fresh.contains(i))
                .map(|i| i.key.as_str())
                .collect();
            let unseen: Vec<&str> = fresh
                .iter()
                .filter(|i| !cached.contains(i))
                .map(|i| i.key.as_str())
                .collect();
            return Err(format!(
                "watcher({name}) differs from discover: {} stale {:?}, {} not seen {:?}",
                stale.len(),
                &stale[..stale.len().min(NAMED)],
                unseen.len(),
                &unseen[..unseen.len().min(NAMED)],
            ));
        }
    }
    Ok(())
}

/// A fresh `discover(name)`, checked to hold exactly the expected keys of `name`.
async fn discover_expected(
    reader: &Client,
    name: &str,
    expected: &Expected,
) -> Result<Vec<Instance>, String> {
    let fresh = match tokio::time::timeout(READ_TIMEOUT, reader.discover(name)).await {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => return Err(format!("discover failed: {e}")),
        Err(_) => return Err("discover timed out".into()),
    };
    let want: Vec<&str> = expected
        .keys()
        .filter(|k| service_of(k) == name)
        .map(String::as_str)
        .collect();
    let found: Vec<&str> = fresh.iter().map(|i| i.key.as_str()).collect();
    if found != want {
        return Err(format!(
            "discover({name}) found {} instances, {} expected",
            found.len(),
            want.len()
        ));
    }
    Ok(fresh)
}

/// Runs `check` every 25 ms until it passes or `limit` has passed. Returns
/// how long it took, or the last failure.
pub async fn converge<F, Fut>(limit: Duration, check: F) -> Result<Duration, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    converge_every(POLL, limit, check).await
}

/// [`converge`], checking every `poll`.
pub async fn converge_every<F, Fut>(
    poll: Duration,
    limit: Duration,
    mut check: F,
) -> Result<Duration, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    loop {
        let last = match check().await {
            Ok(()) => return Ok(start.elapsed()),
            Err(e) => e,
        };
        if start.elapsed() >= limit {
            return Err(last);
        }
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::service_of;

    #[test]
    fn service_is_the_segment_before_the_address() {
        assert_eq!(service_of("/svc/10.0.0.1:1000"), "svc");
        assert_eq!(service_of("/prod/svc/10.0.0.1:1000"), "svc");
        assert_eq!(service_of("svc/10.0.0.1:1000"), "svc"); // go-zero's layout
    }
}

//! Register and deregister latency, warm (every client connected first):
//! libregistry through its Rust core and through its C ABI, next to a raw
//! etcd-client put (the floor) and the seed's way (grant a lease, put with
//! it, start its keepalive, for each registration), called round by round
//! against one etcd so that drift hits every way alike.
//!
//! Used by `make bench` (bench/src/sections/latency.rs) and by `make bench-ffi`
//! (ffi-c/benches/register_latency.rs includes this file), so the timed
//! code exists once. The C functions are called exactly as C calls them
//! (`extern "C"`), so the C figure covers the whole boundary.

use std::ffi::CString;
use std::time::{Duration, Instant};

use etcd_client::PutOptions;
use harness::stats::interleaved;
use libregistry::{blocking, Options, Service};
use registry::*;

/// The service name the library's own value is read back from; each way
/// registers under its own name (`Way::name`), so no client's watch on its
/// own keys sees another way's writes.
pub const NAME: &str = "bench";
/// The metadata every way registers (besides what libregistry derives).
pub const METADATA: [(&str, &str); 3] = [
    ("region", "beijing"),
    ("zone", "zone1"),
    ("deployment", "red"),
];
/// Lease TTL of the seed's way (the library's default is the same).
pub const SEED_TTL_SECS: i64 = 10;

/// One way of registering a service, timed side by side with the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// One raw etcd-client put (deregister: one delete): the floor.
    RawPut,
    /// The seed's way with raw etcd-client: grant, put with the lease, open
    /// the lease's keepalive stream (etcd-client answers once the first
    /// keepalive came back); deregister: delete the key.
    Seed,
    /// libregistry's Rust core, blocking API.
    Core,
    /// libregistry's C ABI (`registry_register` / `registry_deregister`).
    CAbi,
}

impl Way {
    /// How the way is named in tables.
    pub fn label(self) -> &'static str {
        match self {
            Way::RawPut => "raw etcd-client put/delete (floor)",
            Way::Seed => "seed's way (grant + put + keepalive)",
            Way::Core => "libregistry, Rust core",
            Way::CAbi => "libregistry, C ABI",
        }
    }

    /// The service name this way registers under.
    pub fn name(self) -> &'static str {
        match self {
            Way::RawPut => "bench-raw",
            Way::Seed => "bench-seed",
            Way::Core => "bench-rust",
            Way::CAbi => "bench-c",
        }
    }

    fn port_base(self) -> usize {
        match self {
            Way::RawPut => 10_000,
            Way::Seed => 20_000,
            Way::Core => 30_000,
            Way::CAbi => 40_000,
        }
    }
}

/// One sample, in microseconds.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// From the call to its return, registering.
    pub register_us: f64,
    /// From the call to its return, deregistering what was just registered.
    pub deregister_us: f64,
}

/// The service every way registers for round `i` (a distinct loopback port each).
pub fn service(way: Way, i: usize) -> Service {
    service_at(
        way.name(),
        &format!("127.0.0.1:{}", 1 + way.port_base() + i % 9_999),
    )
}

/// `name` at `addr` with [`METADATA`].
pub fn service_at(name: &str, addr: &str) -> Service {
    let mut service = Service::new(name, addr);
    for (k, v) in METADATA {
        service = service.with(k, v).expect("valid metadata key");
    }
    service
}

/// Times `ways` round by round (`warmup` rounds dropped, then `samples`)
/// against etcd at `endpoints`; `result[w]` holds `ways[w]`'s samples.
pub fn measure(
    endpoints: &[String],
    ways: &[Way],
    warmup: usize,
    samples: usize,
) -> Vec<Vec<Sample>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let opts = etcd_client::ConnectOptions::new().with_timeout(Duration::from_secs(5));
    let mut raw = rt
        .block_on(etcd_client::Client::connect(endpoints, Some(opts)))
        .expect("raw etcd-client");
    let core = blocking::Client::connect(Options::new().endpoints(endpoints.to_vec()))
        .expect("core client");
    let c_abi = CClient::connect(&endpoints.join(","));

    // The raw ways write the very bytes libregistry writes.
    let value = library_value(&rt, &mut raw, &core);

    let (rt, value, core, c_abi) = (&rt, &value, &core, &c_abi);
    let mut contenders: Vec<Box<dyn FnMut(usize) -> Sample + '_>> = ways
        .iter()
        .map(|&way| -> Box<dyn FnMut(usize) -> Sample + '_> {
            let mut raw = raw.clone();
            match way {
                Way::RawPut => {
                    Box::new(move |i| raw_put_delete(rt, &mut raw, &raw_key(way, i), value))
                }
                Way::Seed => Box::new(move |i| {
                    let key = raw_key(way, i);
                    let start = Instant::now();
                    let (lease, keeper, stream) =
                        rt.block_on(seed_register(&mut raw, &key, value.clone(), SEED_TTL_SECS));
                    let register = start.elapsed();
                    let start = Instant::now();
                    rt.block_on(raw.delete(key.as_str(), None)).expect("delete");
                    let deregister = start.elapsed();
                    drop((keeper, stream));
                    rt.block_on(raw.lease_revoke(lease)).expect("revoke");
                    sample(register, deregister)
                }),
                Way::Core => Box::new(move |i| {
                    let service = service(way, i);
                    let start = Instant::now();
                    let reg = core.register(&service).expect("core register");
                    let register = start.elapsed();
                    let start = Instant::now();
                    reg.deregister().expect("core deregister");
                    sample(register, start.elapsed())
                }),
                Way::CAbi => Box::new(move |i| c_abi.register_deregister(i)),
            }
        })
        .collect();
    let mut refs: Vec<&mut dyn FnMut(usize) -> Sample> = contenders
        .iter_mut()
        .map(|c| c.as_mut() as &mut dyn FnMut(usize) -> Sample)
        .collect();
    let results = interleaved(warmup, samples, &mut refs);
    drop(refs);
    drop(contenders);
    core.close().expect("close core client");
    results
}

/// The seed's `Register` with raw etcd-client: grant a lease, put `value`
/// at `key` with it, open the lease's keepalive stream (etcd-client returns
/// once the first keepalive is answered). Returns the lease and its stream.
pub async fn seed_register(
    raw: &mut etcd_client::Client,
    key: &str,
    value: Vec<u8>,
    ttl_secs: i64,
) -> (
    i64,
    etcd_client::LeaseKeeper,
    etcd_client::LeaseKeepAliveStream,
) {
    let lease = raw.lease_grant(ttl_secs, None).await.expect("grant").id();
    raw.put(key, value, Some(PutOptions::new().with_lease(lease)))
        .await
        .expect("put with lease");
    let (keeper, stream) = raw.lease_keep_alive(lease).await.expect("keepalive");
    (lease, keeper, stream)
}

/// The floor's sample: one raw put of `value` at `key`, then one delete, each timed.
pub fn raw_put_delete(
    rt: &tokio::runtime::Runtime,
    raw: &mut etcd_client::Client,
    key: &str,
    value: &[u8],
) -> Sample {
    let start = Instant::now();
    rt.block_on(raw.put(key, value, None)).expect("raw put");
    let register = start.elapsed();
    let start = Instant::now();
    rt.block_on(raw.delete(key, None)).expect("raw delete");
    sample(register, start.elapsed())
}

/// The bytes libregistry writes for [`service`] (read back from etcd), so
/// that every floor moves exactly as much data as the library.
pub fn library_value(
    rt: &tokio::runtime::Runtime,
    raw: &mut etcd_client::Client,
    core: &blocking::Client,
) -> Vec<u8> {
    let reg = core
        .register(&service_at(NAME, "127.0.0.1:1"))
        .expect("register once");
    let resp = rt.block_on(raw.get(reg.key(), None)).expect("read it back");
    let value = resp
        .kvs()
        .first()
        .map(|kv| kv.value().to_vec())
        .unwrap_or_default();
    reg.deregister().expect("deregister");
    value
}

fn raw_key(way: Way, i: usize) -> String {
    format!(
        "/{}/127.0.0.1:{}",
        way.name(),
        1 + way.port_base() + i % 9_999
    )
}

fn sample(register: Duration, deregister: Duration) -> Sample {
    Sample {
        register_us: register.as_secs_f64() * 1e6,
        deregister_us: deregister.as_secs_f64() * 1e6,
    }
}

/// A client made and used through the C ABI.
struct CClient {
    client: *mut registry_client,
    name: CString,
    metadata: Vec<(CString, CString)>,
}

impl CClient {
    fn connect(endpoints: &str) -> CClient {
        let c_endpoints = CString::new(endpoints).expect("no NUL in endpoints");
        let mut client = std::ptr::null_mut();
        // SAFETY: the C API used as documented, with live pointers.
        unsafe {
            let opts = registry_options_new();
            assert_eq!(
                registry_options_set_endpoints(opts, c_endpoints.as_ptr()),
                registry_status::REGISTRY_OK
            );
            assert_eq!(
                registry_client_new(opts, &mut client),
                registry_status::REGISTRY_OK
            );
            registry_options_free(opts);
        }
        CClient {
            client,
            name: CString::new(Way::CAbi.name()).expect("no NUL"),
            metadata: METADATA
                .iter()
                .map(|(k, v)| {
                    (
                        CString::new(*k).expect("no NUL"),
                        CString::new(*v).expect("no NUL"),
                    )
                })
                .collect(),
        }
    }

    /// Builds the service first, as a C caller would; only
    /// `registry_register` and `registry_deregister` are timed.
    fn register_deregister(&self, i: usize) -> Sample {
        let addr = CString::new(format!(
            "127.0.0.1:{}",
            1 + Way::CAbi.port_base() + i % 9_999
        ))
        .expect("no NUL");
        // SAFETY: the C API used as documented, with live pointers.
        unsafe {
            let mut svc = std::ptr::null_mut();
            assert_eq!(
                registry_service_new(self.name.as_ptr(), addr.as_ptr(), &mut svc),
                registry_status::REGISTRY_OK
            );
            for (k, v) in &self.metadata {
                assert_eq!(
                    registry_service_set(svc, k.as_ptr(), v.as_ptr()),
                    registry_status::REGISTRY_OK
                );
            }
            let mut reg = std::ptr::null_mut();
            let start = Instant::now();
            let status = registry_register(self.client, svc, &mut reg);
            let register = start.elapsed();
            assert_eq!(status, registry_status::REGISTRY_OK);
            let start = Instant::now();
            let status = registry_deregister(reg);
            let deregister = start.elapsed();
            assert_eq!(status, registry_status::REGISTRY_OK);
            registry_service_free(svc);
            sample(register, deregister)
        }
    }
}

impl Drop for CClient {
    fn drop(&mut self) {
        // SAFETY: freeing the client made in `connect`, once.
        unsafe { registry_client_free(self.client) };
    }
}

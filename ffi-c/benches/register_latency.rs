//! Register latency through the C ABI next to the Rust core's, same run,
//! same etcd, samples interleaved so drift hits both alike.
//!
//! `make bench-ffi` (release build). Prints p50/p99 of each and what the
//! C ABI adds. The C functions are called exactly as C calls them (they are
//! `extern "C"`), so the figure covers the whole boundary: argument checks,
//! panic guard, handle allocation.

use std::ffi::CString;
use std::time::{Duration, Instant};

use harness::Etcd;
use libregistry::{blocking, Options, Service};
use registry::*;

const SAMPLES: usize = 2000;
const WARMUP: usize = 200;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let etcd = rt.block_on(Etcd::start());
    let endpoints = etcd.endpoints_csv();

    let core = blocking::Client::connect(Options::new().endpoints_csv(&endpoints)).unwrap();

    let mut ffi: *mut registry_client = std::ptr::null_mut();
    let c_endpoints = CString::new(endpoints.clone()).unwrap();
    // SAFETY: the C API used as documented, with live pointers.
    unsafe {
        let opts = registry_options_new();
        assert_eq!(
            registry_options_set_endpoints(opts, c_endpoints.as_ptr()),
            registry_status::REGISTRY_OK
        );
        assert_eq!(
            registry_client_new(opts, &mut ffi),
            registry_status::REGISTRY_OK
        );
        registry_options_free(opts);
    }

    let name = CString::new("bench").unwrap();
    let mut core_times = Vec::with_capacity(SAMPLES);
    let mut ffi_times = Vec::with_capacity(SAMPLES);
    for i in 0..WARMUP + SAMPLES {
        // Rust core.
        let service = Service::new("bench", format!("10.0.{}.{}:1", i / 250, i % 250 + 1));
        let start = Instant::now();
        let reg = core.register(&service).unwrap();
        let core_took = start.elapsed();
        reg.deregister().unwrap();

        // C ABI: the service is built first, as a C caller would, and only
        // registry_register is timed, like the core's register above.
        let addr = CString::new(format!("10.1.{}.{}:1", i / 250, i % 250 + 1)).unwrap();
        // SAFETY: the C API used as documented, with live pointers.
        let ffi_took = unsafe {
            let mut svc = std::ptr::null_mut();
            assert_eq!(
                registry_service_new(name.as_ptr(), addr.as_ptr(), &mut svc),
                registry_status::REGISTRY_OK
            );
            let mut reg = std::ptr::null_mut();
            let start = Instant::now();
            let status = registry_register(ffi, svc, &mut reg);
            let took = start.elapsed();
            assert_eq!(status, registry_status::REGISTRY_OK);
            assert_eq!(registry_deregister(reg), registry_status::REGISTRY_OK);
            registry_service_free(svc);
            took
        };
        if i >= WARMUP {
            core_times.push(core_took);
            ffi_times.push(ffi_took);
        }
    }
    // SAFETY: freeing the client made above.
    unsafe { registry_client_free(ffi) };
    core.close().unwrap();

    core_times.sort();
    ffi_times.sort();
    let (c50, c99) = (percentile(&core_times, 0.5), percentile(&core_times, 0.99));
    let (f50, f99) = (percentile(&ffi_times, 0.5), percentile(&ffi_times, 0.99));
    println!(
        "register latency, {SAMPLES} samples each, etcd {} on loopback, {} cores",
        harness::etcd_version(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!("  {:<22} {:>10} {:>10}", "", "p50", "p99");
    println!(
        "  {:<22} {:>10.1?} {:>10.1?}",
        "Rust core (baseline)", c50, c99
    );
    println!("  {:<22} {:>10.1?} {:>10.1?}", "C ABI", f50, f99);
    let added_us = f50.as_secs_f64() * 1e6 - c50.as_secs_f64() * 1e6;
    println!(
        "  C ABI adds {added_us:+.1} µs at p50 (ratio {:.3}); goal: at most +20 µs",
        f50.as_secs_f64() / c50.as_secs_f64()
    );
}

//! Whatever another writer leaves under a service's prefix, decoding it
//! never panics, and what decodes is usable: an address and readable metadata.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(instance) = libregistry::wire::decode("svc", "/svc/key", data) {
        assert!(!instance.addr.is_empty());
        assert!(instance.weight() <= 10_000);
        for key in instance.metadata.keys() {
            let _ = instance.meta(key);
        }
        let _ = (instance.zone(), instance.region(), instance.env(), instance.deployment());
    }
});

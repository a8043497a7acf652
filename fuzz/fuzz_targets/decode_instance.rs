//! Whatever another writer leaves under a service's prefix, decoding it
//! never panics, and what decodes is usable: an address and readable
//! metadata. In every layout (the seed's, go-zero's, kratos's).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for layout in libregistry::Layout::ALL {
        if let Ok(instance) = layout.decode("svc", "/svc/key", data) {
            assert!(!instance.addr.is_empty());
            assert!(instance.weight() <= 10_000);
            for key in instance.metadata.keys() {
                let _ = instance.meta(key);
            }
            let _ = (instance.zone(), instance.region(), instance.env(), instance.deployment());
        }
    }
});

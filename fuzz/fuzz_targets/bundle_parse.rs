//! Untrusted bundle bytes: reading never panics; what reads encodes again to a bundle that
//! reads back the same, and its snapshot is planned against every built-in host without a
//! panic.
#![no_main]

use armfw::bundle::{Bundle, BundleHeader};
use libfuzzer_sys::fuzz_target;

/// The built-in hosts, parsed once.
fn hosts() -> &'static [armfw::Profile] {
    static HOSTS: std::sync::OnceLock<Vec<armfw::Profile>> = std::sync::OnceLock::new();
    HOSTS.get_or_init(armfw::profile::builtin)
}

fuzz_target!(|data: &[u8]| {
    // The reader `armfw check` uses: the header, then the snapshot alone.
    if let Ok(h) = BundleHeader::parse(data) {
        let _ = h.snapshot(data);
    }
    let Ok(b) = Bundle::parse(data) else {
        return;
    };
    let again = Bundle::encode(&b.snapshot, &b.devices, &b.memory).expect("what reads encodes");
    let b2 = Bundle::parse(&again).expect("what was encoded reads");
    assert_eq!(b2.snapshot, b.snapshot);
    assert_eq!(b2.devices, b.devices);
    assert_eq!(b2.memory, b.memory);
    for host in hosts() {
        let _ = armfw::compat::whole::plan(&b.snapshot, host);
    }
});

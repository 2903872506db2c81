//! Untrusted snapshot bytes (JSON or binary): loading never panics; what loads validates,
//! round-trips through both forms, and can be checked and restored against every built-in
//! host without a panic, a failed restore changing nothing.
#![no_main]

use armfw::Firmware;
use armfw::migrate::RestorePolicy;
use armfw::snapshot::Snapshot;
use libfuzzer_sys::fuzz_target;

/// The built-in hosts, parsed once.
fn hosts() -> &'static [armfw::Profile] {
    static HOSTS: std::sync::OnceLock<Vec<armfw::Profile>> = std::sync::OnceLock::new();
    HOSTS.get_or_init(armfw::profile::builtin)
}

fuzz_target!(|data: &[u8]| {
    let Ok(snap) = Snapshot::load(data) else {
        return;
    };
    snap.validate().expect("a loaded snapshot is valid");
    let bytes = snap.to_bytes();
    assert_eq!(Snapshot::load(&bytes).expect("binary round trip"), snap);
    let json = snap.to_json().to_string();
    assert_eq!(Snapshot::from_json(&json).expect("JSON round trip"), snap);
    for host in hosts() {
        let _ = armfw::compat::check(&snap, host);
        for policy in [RestorePolicy::Strict, RestorePolicy::Armfw] {
            let mut fw = Firmware::new(host);
            let before = fw.clone();
            if fw.restore(&snap, policy).is_err() {
                assert_eq!(
                    format!("{fw:?}"),
                    format!("{before:?}"),
                    "a failed restore changed the VM"
                );
            }
        }
    }
});

//! Untrusted profile text: parsing never panics; a profile that parses writes back to JSON
//! that parses to the same profile.
#![no_main]

use armfw::Profile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(p) = Profile::from_json(text) else {
        return;
    };
    let again = Profile::from_value(&p.to_json()).expect("a profile's own JSON parses");
    assert_eq!(again.to_json(), p.to_json());
    // The engine takes any valid profile.
    let mut fw = armfw::Firmware::new(&p);
    let _ = fw.add_vcpu();
});

//! Untrusted scenario text: parsing never panics, and a scenario that parses runs on the
//! model of any built-in host to a document whose JSON form reads back equal.
#![no_main]

use armfw::scenario::{self, ModelBackend, ResultDocument};
use libfuzzer_sys::fuzz_target;

/// The built-in hosts, parsed once.
fn hosts() -> &'static [armfw::Profile] {
    static HOSTS: std::sync::OnceLock<Vec<armfw::Profile>> = std::sync::OnceLock::new();
    HOSTS.get_or_init(armfw::profile::builtin)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(s) = scenario::parse(text, None) else {
        return;
    };
    if s.steps.len() > 256 {
        return;
    }
    let hosts = hosts();
    let host = &hosts[data.len() % hosts.len()];
    let doc = scenario::run(&s, &mut ModelBackend::new(host));
    let back = ResultDocument::from_json(&doc.to_json()).expect("a document's JSON reads back");
    assert!(back.differences(&doc).is_empty());
});

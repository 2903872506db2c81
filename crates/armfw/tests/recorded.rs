//! The model against real kernels, without booting them: for every host recorded by the
//! conformance harness (`conformance/run --record`), every project scenario run on the model
//! with that host's probed profile (crates/armfw/profiles/HOST.json) must give the document the real
//! kernel gave (scenarios/expected/HOST/NAME.json).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

mod recorded_hosts;

use armfw::Profile;
use armfw::scenario::{self, ModelBackend, ResultDocument};
use recorded_hosts::{recorded_hosts, repo};

/// The built-in profiles, which ship in this crate.
fn profile_path(host: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("profiles")
        .join(format!("{host}.json"))
}

fn json_stems(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect()
}

#[test]
fn recorded_hosts_cover_three_kernels_and_three_cpu_models() {
    let mut kernels = BTreeSet::new();
    let mut cpus = BTreeSet::new();
    for host in recorded_hosts() {
        let text = std::fs::read_to_string(profile_path(&host))
            .unwrap_or_else(|e| panic!("crates/armfw/profiles/{host}.json: {e}"));
        let p = Profile::from_json(&text).unwrap_or_else(|e| panic!("{host}: {e}"));
        assert_eq!(
            p.name(),
            host,
            "crates/armfw/profiles/{host}.json names another host"
        );
        assert!(
            p.source().starts_with("probed"),
            "{host}: a recorded host's profile must be probed"
        );
        let r = p.release();
        kernels.insert((r.major, r.minor));
        cpus.insert(p.cpu().to_string());
    }
    assert!(kernels.len() >= 3, "recorded kernels: {kernels:?}");
    assert!(cpus.len() >= 3, "recorded CPU models: {cpus:?}");
}

#[test]
fn every_project_scenario_has_a_real_result_on_every_recorded_host() {
    let scenarios = json_stems(&repo().join("scenarios"));
    assert!(scenarios.len() >= 40);
    for host in recorded_hosts() {
        let recorded = json_stems(&repo().join(format!("scenarios/expected/{host}")));
        assert_eq!(
            recorded, scenarios,
            "{host}: recorded results vs scenarios/"
        );
    }
}

#[test]
fn the_model_gives_each_recorded_hosts_real_documents() {
    let mut failures = Vec::new();
    let mut compared = 0;
    for host in recorded_hosts() {
        let text = std::fs::read_to_string(profile_path(&host)).expect("profile");
        let profile = Profile::from_json(&text).expect("profile");
        let mut model = ModelBackend::new(&profile);
        let dir = repo().join(format!("scenarios/expected/{host}"));
        for name in json_stems(&dir) {
            let path = repo().join(format!("scenarios/{name}.json"));
            let text = std::fs::read_to_string(&path).expect("scenario");
            let s = scenario::parse(&text, Some(&name)).expect("scenario parses");
            let expected_text =
                std::fs::read_to_string(dir.join(format!("{name}.json"))).expect("expected");
            let expected = ResultDocument::parse(&expected_text)
                .unwrap_or_else(|e| panic!("{host}/{name}.json is not a result document: {e}"));
            assert_eq!(
                expected.target["backend"], "kvm",
                "{host}/{name}: not a real kernel's document"
            );
            let ours = scenario::run(&s, &mut model);
            for m in ours.differences(&expected) {
                failures.push(format!("{host}/{name}: {m}"));
            }
            compared += 1;
        }
    }
    assert!(compared >= 40 * 9, "only {compared} documents compared");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_recorded_document_is_written_back_byte_for_byte() {
    // The harness records `serde_json::to_string_pretty(document)` and a newline; reading a
    // recorded file and writing it again through `Serialize` must give the same bytes.
    let mut written = 0;
    for host in recorded_hosts() {
        let dir = repo().join(format!("scenarios/expected/{host}"));
        for name in json_stems(&dir) {
            let path = dir.join(format!("{name}.json"));
            let text = std::fs::read_to_string(&path).expect("recorded document");
            let doc =
                ResultDocument::parse(&text).unwrap_or_else(|e| panic!("{host}/{name}.json: {e}"));
            let again = serde_json::to_string_pretty(&doc).expect("a document serialises") + "\n";
            assert!(
                again == text,
                "{host}/{name}.json is not written back as recorded:\n{again}"
            );
            let line = serde_json::to_string(&doc).expect("a document serialises");
            assert_eq!(line, doc.to_json().to_string(), "{host}/{name}.json");
            written += 1;
        }
    }
    assert!(written >= 40 * 9, "only {written} documents written back");
}

//! `armfw-harness conformance-report`, the harness's last step, on records made from real kernels'
//! documents (scenarios/expected/): a pass, a mismatch, a host that did not boot, a host
//! that skipped a scenario, and recording into a repository tree.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scratch() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "armfw-conformance-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn armfw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_armfw-harness"))
        .args(args)
        .output()
        .expect("armfw-harness runs")
}

/// A scenario set holding copies of the project scenarios `names`.
fn set_of(names: &[&str]) -> PathBuf {
    let d = scratch();
    for n in names {
        std::fs::copy(
            repo().join(format!("scenarios/{n}.json")),
            d.join(format!("{n}.json")),
        )
        .unwrap();
    }
    d
}

/// Records of `host`, where scenario `name`'s model document is `host`'s real one, or the
/// real one of `model_from` for those listed.
fn records(host: &str, names: &[&str], model_from: &[(&str, &str)]) -> String {
    let mut lines = vec![json!({"kind": "profile", "profile": read_json(&repo().join(format!("crates/armfw/profiles/{host}.json")))}).to_string()];
    for n in names {
        let real = read_json(&repo().join(format!("scenarios/expected/{host}/{n}.json")));
        let other = model_from
            .iter()
            .find(|(s, _)| s == n)
            .map_or(host, |(_, h)| *h);
        let model = read_json(&repo().join(format!("scenarios/expected/{other}/{n}.json")));
        let mismatches: Vec<Value> = real["results"]
            .as_array()
            .unwrap()
            .iter()
            .zip(model["results"].as_array().unwrap())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| json!({"step": i, "kvm": a, "model": b}))
            .collect();
        lines.push(
            json!({"kind": "scenario", "set": "project", "file": format!("{n}.json"),
                   "kvm": real, "model": model, "mismatches": mismatches})
            .to_string(),
        );
    }
    lines.join("\n") + "\n"
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `armfw-harness conformance-report --set project=SET [EXTRA...] HOSTS...`: exit code and stdout.
fn report(set: &Path, extra: &[&str], hosts: &[&Path]) -> (Option<i32>, String) {
    let set = format!("project={}", set.display());
    let mut args = vec!["conformance-report", "--set", &set];
    args.extend_from_slice(extra);
    args.extend(hosts.iter().map(|h| h.to_str().unwrap()));
    let o = armfw(&args);
    (o.status.code(), stdout(&o))
}

#[test]
fn all_matching_hosts_pass_and_count_one_per_scenario_per_host() {
    let names = ["psci_version_default", "smccc_filter_errors"];
    let set = set_of(&names);
    let d = scratch();
    let (a, b) = (d.join("a.jsonl"), d.join("b.jsonl"));
    std::fs::write(&a, records("linux-6.1.192-max", &names, &[])).unwrap();
    std::fs::write(&b, records("linux-7.2.13-cortex-a53", &names, &[])).unwrap();
    let (code, out) = report(&set, &[], &[&a, &b]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("linux-6.1.192-max"), "{out}");
    assert!(out.contains("linux-7.2.13-cortex-a53"), "{out}");
    assert_eq!(
        out.lines().last(),
        Some("conformance: 4 passed, 0 failed"),
        "{out}"
    );
}

#[test]
fn a_mismatch_is_shown_with_its_step_and_fails_the_run() {
    let names = ["psci_version_default", "smc_conduit"];
    let set = set_of(&names);
    let d = scratch();
    let a = d.join("a.jsonl");
    // 7.2 defaults to PSCI 1.3; 6.1 to 1.1 and no SMC: as if the model had answered as 6.1.
    std::fs::write(
        &a,
        records(
            "linux-7.2.13-max",
            &names,
            &[("psci_version_default", "linux-6.1.192-max")],
        ),
    )
    .unwrap();
    let (code, out) = report(&set, &[], &[&a]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("MISMATCH"), "{out}");
    assert!(
        out.contains("--- linux-7.2.13-max project/psci_version_default.json"),
        "{out}"
    );
    // The step itself, then both answers.
    assert!(
        out.contains(r#"step 0: {"op":"call","x":["0x84000000"]}"#),
        "{out}"
    );
    assert!(out.contains(r#"kvm:   {"x":["0x10003""#), "{out}");
    assert!(out.contains(r#"model: {"x":["0x10001""#), "{out}");
    assert_eq!(
        out.lines().last(),
        Some("conformance: 1 passed, 1 failed"),
        "{out}"
    );
}

#[test]
fn a_host_that_did_not_boot_fails_every_scenario() {
    let names = ["psci_version_default", "smc_conduit"];
    let set = set_of(&names);
    let d = scratch();
    let a = d.join("a.jsonl");
    std::fs::write(&a, records("linux-6.12.117-neoverse-n1", &names, &[])).unwrap();
    let f = d.join("6.12.117+deb12-arm64_cortex-a53.failed");
    std::fs::write(
        &f,
        "qemu exit 124 after 120 s; no end marker (3 records);\n",
    )
    .unwrap();
    let (code, out) = report(&set, &[], &[&a, &f]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAILED: qemu exit 124"), "{out}");
    assert!(out.contains("cortex-a53"), "{out}");
    assert_eq!(
        out.lines().last(),
        Some("conformance: 2 passed, 2 failed"),
        "{out}"
    );
}

#[test]
fn a_scenario_the_host_did_not_answer_is_a_failure() {
    let set = set_of(&["psci_version_default", "smc_conduit"]);
    let d = scratch();
    let a = d.join("a.jsonl");
    std::fs::write(
        &a,
        records("linux-6.12.117-max", &["psci_version_default"], &[]),
    )
    .unwrap();
    let (code, out) = report(&set, &[], &[&a]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("project/smc_conduit.json\nno result from the host"),
        "{out}"
    );
    assert!(out.contains("NOT RUN (1)"), "{out}");
    assert_eq!(
        out.lines().last(),
        Some("conformance: 1 passed, 1 failed"),
        "{out}"
    );
}

#[test]
fn record_writes_the_profile_and_the_real_documents() {
    let names = ["psci_version_default", "smc_conduit"];
    let set = set_of(&names);
    let d = scratch();
    let a = d.join("a.jsonl");
    std::fs::write(&a, records("linux-6.1.192-cortex-a72", &names, &[])).unwrap();
    let root = scratch();
    // A stale result of the same host is replaced, not kept.
    let stale = root.join("scenarios/expected/linux-6.1.192-cortex-a72/gone.json");
    std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
    std::fs::write(&stale, "{}").unwrap();
    let (code, out) = report(&set, &["--record", root.to_str().unwrap()], &[&a]);
    assert_eq!(code, Some(0), "{out}");
    assert!(!stale.exists());
    assert_eq!(
        read_json(&root.join("crates/armfw/profiles/linux-6.1.192-cortex-a72.json")),
        read_json(&repo().join("crates/armfw/profiles/linux-6.1.192-cortex-a72.json"))
    );
    for n in names {
        assert_eq!(
            read_json(&root.join(format!(
                "scenarios/expected/linux-6.1.192-cortex-a72/{n}.json"
            ))),
            read_json(&repo().join(format!(
                "scenarios/expected/linux-6.1.192-cortex-a72/{n}.json"
            )))
        );
    }
}

#[test]
fn bad_report_input_is_one_line_and_exit_2() {
    let set = set_of(&["smc_conduit"]);
    let d = scratch();
    let garbage = d.join("g.jsonl");
    std::fs::write(&garbage, "{\"kind\": \"profile\"\nnot json\n").unwrap();
    for args in [
        vec!["conformance-report", "--set", "nodir", "x.jsonl"],
        vec![
            "conformance-report",
            "--set",
            &format!("project={}", set.display()),
            garbage.to_str().unwrap(),
        ],
        vec![
            "conformance-report",
            "--set",
            &format!("project={}", set.display()),
            "/nonexistent/h.jsonl",
        ],
    ] {
        let o = armfw(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
}

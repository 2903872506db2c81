//! Every JSON document armfw prints is valid against its schema under docs/schemas/, and
//! carries its format name: real outputs of every command, over every built-in host.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_armfw");
const BASE: &str = "https://armfw.invalid/schemas/";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scratch() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "armfw-schemas-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn schema_text(name: &str) -> Value {
    let p = root()
        .join("docs/schemas")
        .join(format!("{name}.schema.json"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// A validator for docs/schemas/NAME.schema.json, with every other schema there registered
/// (for `$ref`s between them), offline.
fn validator(name: &str) -> jsonschema::Validator {
    let mut registry = jsonschema::Registry::new();
    for e in std::fs::read_dir(root().join("docs/schemas")).unwrap() {
        let file = e.unwrap().file_name().to_string_lossy().into_owned();
        let other = file.strip_suffix(".schema.json").unwrap();
        registry = registry
            .add(format!("{BASE}{file}"), schema_text(other))
            .unwrap();
    }
    let registry = registry.prepare().unwrap();
    jsonschema::options()
        .with_registry(&registry)
        .build(&schema_text(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn assert_valid(v: &jsonschema::Validator, doc: &Value, what: &str) {
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}\n{doc:#}");
}

fn armfw(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn builtin() -> Vec<String> {
    let doc = json_of(&armfw(&["profiles", "--json"]));
    doc["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_schema_is_a_valid_schema_with_its_id() {
    for e in std::fs::read_dir(root().join("docs/schemas")).unwrap() {
        let file = e.unwrap().file_name().to_string_lossy().into_owned();
        let name = file.strip_suffix(".schema.json").unwrap();
        let s = schema_text(name);
        assert_eq!(s["$id"], format!("{BASE}{file}"));
        validator(name);
    }
}

#[test]
fn check_documents_for_every_pair_of_hosts_match_the_schema() {
    let v = validator("armfw-check-1");
    let names = builtin();
    let mut verdicts = std::collections::BTreeSet::new();
    let mut results = std::collections::BTreeSet::new();
    // Default VMs of every host, and VMs created on 7.2 with a 6.12 + 7.2 baseline.
    let d = scratch();
    let mut sources: Vec<Vec<String>> = names
        .iter()
        .map(|n| vec!["--from".to_string(), n.clone()])
        .collect();
    for host in ["linux-7.2.13-max", "linux-7.2.13-cortex-a72"] {
        let state = d.join(format!("{host}.json"));
        let o = armfw(&[
            "save",
            "--profile",
            host,
            "--baseline",
            "linux-6.12.117-max",
            "--baseline",
            host,
            "-o",
            state.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{o:?}");
        sources.push(vec!["--state".into(), state.to_str().unwrap().into()]);
    }
    for source in &sources {
        for to in &names {
            let from = source.join(" ");
            let mut args: Vec<&str> = vec!["check"];
            args.extend(source.iter().map(String::as_str));
            args.extend(["--to", to, "--json"]);
            let o = armfw(&args);
            let doc = json_of(&o);
            assert_valid(&v, &doc, &format!("{from} -> {to}"));
            assert_eq!(doc["format"], "armfw-check/1");
            let verdict = doc["verdict"].as_str().unwrap().to_string();
            let code = match verdict.as_str() {
                "compatible" => 0,
                "compatible_with_plan" => 3,
                _ => 1,
            };
            assert_eq!(o.status.code(), Some(code), "{from} -> {to}");
            // exit 0 exactly when the strict restore changes nothing.
            assert_eq!(
                code == 0,
                doc["strict"]["result"] == "unchanged",
                "{from} -> {to}: {doc:#}"
            );
            verdicts.insert(verdict);
            results.insert(doc["strict"]["result"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(verdicts.len(), 3, "{verdicts:?}");
    assert_eq!(results.len(), 3, "{results:?}");
}

#[test]
fn check_text_and_json_agree_on_the_plan() {
    for (from, to) in [
        ("linux-7.2.13-max", "linux-6.12.117-max"),
        ("linux-7.2.13-max", "linux-7.2.13-max"),
        ("linux-6.12.117-max", "linux-7.2.13-max"),
    ] {
        let doc = json_of(&armfw(&["check", "--from", from, "--to", to, "--json"]));
        let text = String::from_utf8(armfw(&["check", "--from", from, "--to", to]).stdout).unwrap();
        if doc["verdict"] == "incompatible" {
            assert!(doc["plan"].is_null());
            assert!(text.contains("armfw plan: none (incompatible)"), "{text}");
        } else {
            let n = doc["plan"].as_array().unwrap().len();
            let listed = text
                .lines()
                .filter(|l| l.starts_with("  ") && l.contains(". "))
                .count();
            assert_eq!(listed, n, "{text}");
        }
    }
}

#[test]
fn baseline_documents_match_the_schema_with_and_without_a_baseline() {
    let v = validator("armfw-baseline-2");
    let names = builtin();
    for pair in names.windows(2) {
        let o = armfw(&["baseline", &pair[0], &pair[1], "--json"]);
        let doc = json_of(&o);
        assert_valid(&v, &doc, &format!("{pair:?}"));
        assert!(doc["no_baseline"].is_null());
    }
    // A host without the bitmaps (a 5.15 kernel) and one with them: no baseline, exit 1, and
    // still one document.
    let d = scratch();
    let mut old: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("crates/armfw/profiles/linux-6.12.117-max.json"))
            .unwrap(),
    )
    .unwrap();
    old["name"] = "linux-5.15.0-max".into();
    old["kernel"] = "5.15.0-1-arm64".into();
    old.as_object_mut().unwrap().remove("kernel_version");
    old["registers"].as_array_mut().unwrap().truncate(4);
    // 5.15 had neither system suspend (5.19) nor the SMCCC filter (6.4).
    old["capabilities"]["system_suspend"] = false.into();
    old["capabilities"]["smccc_filter"] = false.into();
    let file = d.join("old.json");
    std::fs::write(&file, old.to_string()).unwrap();
    let o = armfw(&[
        "baseline",
        file.to_str().unwrap(),
        "linux-6.12.117-max",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let doc = json_of(&o);
    assert_valid(&v, &doc, "no baseline");
    assert!(
        doc["no_baseline"]
            .as_str()
            .unwrap()
            .contains("linux-5.15.0-max lacks STD_BMAP")
    );
}

#[test]
fn regs_profiles_and_profile_files_match_their_schemas() {
    let regs = validator("armfw-regs-2");
    for name in builtin() {
        let doc = json_of(&armfw(&["regs", "--profile", &name, "--json"]));
        assert_eq!(doc["format"], "armfw-regs/2");
        assert_valid(&regs, &doc, &name);
    }
    let doc = json_of(&armfw(&["profiles", "--json"]));
    assert_valid(&validator("armfw-profiles-1"), &doc, "profiles");
    assert_eq!(doc["default"], "linux-7.2.13-a64fx");
    let (v1, v2) = (validator("armfw-profile-1"), validator("armfw-profile-2"));
    let mut versions = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(root().join("crates/armfw/profiles")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            let doc: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            let format = doc["format"].as_str().unwrap().to_string();
            let profile = if format == "armfw-profile/1" {
                &v1
            } else {
                &v2
            };
            assert_valid(profile, &doc, &p.display().to_string());
            versions.insert(format);
        }
    }
    assert!(versions.contains("armfw-profile/2"), "{versions:?}");
}

#[test]
fn errors_with_json_are_one_document_and_match_the_schema() {
    let v = validator("armfw-error-1");
    let d = scratch();
    let bad = d.join("bad.json");
    std::fs::write(&bad, r#"{"format": "armfw-profile/1", "name": 1}"#).unwrap();
    let bad = bad.to_str().unwrap();
    let missing = d.join("missing.json");
    let missing = missing.to_str().unwrap();
    // Arguments, kind, file, field.
    type Case<'a> = (Vec<&'a str>, &'a str, Option<&'a str>, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (
            vec!["check", "--from", "nope", "--to", "linux-6.12.117-max"],
            "unknown_profile",
            None,
            None,
        ),
        (
            vec!["check", "--state", missing, "--to", "linux-6.12.117-max"],
            "read",
            Some(missing),
            None,
        ),
        (
            vec!["regs", "--profile", bad],
            "invalid",
            Some(bad),
            Some("name"),
        ),
        (vec!["sim", missing], "read", Some(missing), None),
        (
            vec!["baseline", "linux-6.12.117-mx"],
            "unknown_profile",
            None,
            None,
        ),
        (vec!["save", "--vcpus", "0"], "refused", None, None),
        (vec!["save", "-o", "/dev/full"], "write", None, None),
        (vec!["profiles", "--nope"], "usage", None, None),
        (
            vec!["check", "--to", "linux-6.12.117-max"],
            "usage",
            None,
            None,
        ),
    ];
    for (mut args, kind, file, field) in cases {
        args.push("--json");
        let o = armfw(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        let doc = json_of(&o);
        assert_valid(&v, &doc, &format!("{args:?}"));
        assert_eq!(doc["kind"], kind, "{args:?}: {doc:#}");
        assert_eq!(doc["file"].as_str(), file, "{args:?}: {doc:#}");
        assert_eq!(doc["field"].as_str(), field, "{args:?}: {doc:#}");
        let stderr = String::from_utf8(o.stderr).unwrap();
        assert_eq!(
            stderr,
            format!("armfw: {}\n", doc["message"].as_str().unwrap())
        );
    }
}

#[test]
fn whole_vm_check_documents_match_the_schema_and_set_the_exit_code() {
    let v = validator("armfw-check-1");
    let names = builtin();
    let mut outcomes = std::collections::BTreeSet::new();
    let sources: [&[&str]; 4] = [
        &["--from", "linux-6.1.192-max", "--whole"],
        &["--from", "linux-6.12.117-max", "--whole"],
        &[
            "--from",
            "linux-7.2.13-max",
            "--whole",
            "--features",
            "pmu_v3",
        ],
        &[
            "--from",
            "linux-7.2.13-a64fx",
            "--whole",
            "--features",
            "sve",
        ],
    ];
    for source in sources {
        for to in &names {
            let mut args = vec!["check"];
            args.extend_from_slice(source);
            args.extend(["--to", to, "--json"]);
            let o = armfw(&args);
            let doc = json_of(&o);
            let what = format!("{} -> {to}", source.join(" "));
            assert_valid(&v, &doc, &what);
            let policies = doc["whole_vm"]["policies"].as_array().unwrap();
            let all_succeed = policies.iter().all(|p| p["result"] == "succeeds");
            let plan = doc["whole_vm"]["plan"]["result"] == "restores";
            let code = match (all_succeed && doc["verdict"] == "compatible", plan) {
                (true, _) => 0,
                (false, true) => 3,
                (false, false) => 1,
            };
            outcomes.insert(format!("plan {}", doc["whole_vm"]["plan"]["result"]));
            assert_eq!(o.status.code(), Some(code), "{what}");
            for p in policies {
                outcomes.insert(p["result"].as_str().unwrap().to_string());
            }
        }
    }
    // Every kind of outcome occurs among these moves.
    assert_eq!(outcomes.len(), 5, "{outcomes:?}");
}

#[test]
fn qemu_check_documents_match_the_schema() {
    let v = validator("armfw-qemu-check-1");
    let hosts: Vec<String> = builtin()
        .into_iter()
        .filter(|n| n.ends_with("-neoverse-n1") || n.ends_with("-max"))
        .collect();
    let mut results = std::collections::BTreeSet::new();
    for from in &hosts {
        for to in hosts
            .iter()
            .filter(|t| t.rsplit('-').next() == from.rsplit('-').next())
        {
            for policy in ["qemu-7.2", "qemu-10.0", "qemu-11.1"] {
                let args = [
                    "check",
                    "--from",
                    from,
                    "--to",
                    to,
                    "--policy",
                    policy,
                    "--qemu-cpu",
                    "host,pmu=off",
                    "--json",
                ];
                let o = armfw(&args);
                let doc = json_of(&o);
                let what = format!("{from} -> {to} {policy}");
                assert_valid(&v, &doc, &what);
                let loads = doc["result"] == "loads";
                assert_eq!(o.status.code(), Some(if loads { 0 } else { 1 }), "{what}");
                results.insert(doc["rule"].as_str().unwrap_or("loads").to_string());
            }
        }
    }
    // The pairs reach every outcome the built-in hosts give.
    assert!(results.len() >= 3, "{results:?}");
}

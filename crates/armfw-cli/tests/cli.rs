//! `armfw` end to end. Expected values are what real kernels answered (measured on emulated
//! arm64 hosts: Linux 6.12.117 and 7.2.13 under QEMU 7.2), never the model's own output.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

fn armfw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_armfw"))
        .args(args)
        .output()
        .expect("armfw runs")
}

/// A scratch folder of this test process.
fn scratch() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "armfw-cli-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Write `body` as scenario `name` (its `name` key is filled in) and return the path.
fn scenario(name: &str, body: &str) -> PathBuf {
    let p = scratch().join(format!("{name}.json"));
    std::fs::write(&p, format!(r#"{{"name": "{name}", {body}}}"#)).unwrap();
    p
}

/// Run one scenario on a built-in profile; its results as JSON values.
fn sim(profile: &str, name: &str, body: &str) -> Vec<Value> {
    let p = scenario(name, body);
    let out = armfw(&["sim", "--profile", profile, p.to_str().unwrap()]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let doc: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(doc["scenario"], name);
    doc["results"].as_array().unwrap().clone()
}

fn x0(r: &Value) -> &str {
    r["x"][0].as_str().unwrap()
}

const M612: &str = "linux-6.12.117-max";
const M72: &str = "linux-7.2.13-max";

#[test]
fn cpu_on_starts_a_powered_off_vcpu_at_its_entry_point() {
    // Measured (6.12.117): CPU_ON(1) returns 0, vcpu1 becomes RUNNABLE, AFFINITY_INFO then
    // returns ON, a second CPU_ON returns ALREADY_ON (-4).
    let r = sim(
        M612,
        "cpu_on",
        r#""vm": {"vcpus": 2, "power_off": [1]}, "steps": [
        {"op": "call", "x": ["0xc4000004", "0x1", "0x0"]},
        {"op": "call", "x": ["0xc4000003", "0x1", "0x40001000", "0x55"]},
        {"op": "mp_state", "vcpu": 1},
        {"op": "entry", "vcpu": 1},
        {"op": "call", "x": ["0xc4000004", "0x1", "0x0"]},
        {"op": "call", "x": ["0xc4000003", "0x1", "0x40001000", "0x55"]},
        {"op": "call", "x": ["0xc4000003", "0x7", "0x0", "0x0"]}]"#,
    );
    assert_eq!(x0(&r[0]), "0x1");
    assert_eq!(x0(&r[1]), "0x0");
    assert_eq!(r[2]["mp_state"], "RUNNABLE");
    assert_eq!(r[3]["pc"], "0x40001000");
    assert_eq!(r[3]["x0"], "0x55");
    assert_eq!(x0(&r[4]), "0x0");
    assert_eq!(x0(&r[5]), "0xfffffffffffffffc");
    assert_eq!(x0(&r[6]), "0xfffffffffffffffe");
}

#[test]
fn psci_version_default_and_accepted_values_follow_the_kernel() {
    // Measured: default 1.1 on 6.12, 1.3 on 7.2; 6.12 refuses 0x10002 and 0x10003.
    let body = r#""steps": [{"op": "get", "reg": "PSCI_VERSION"}, {"op": "set", "reg": "PSCI_VERSION", "value": "0x10003"},
        {"op": "set", "reg": "PSCI_VERSION", "value": "0x1"}, {"op": "set", "reg": "PSCI_VERSION", "value": "0x20000"}]"#;
    let r = sim(M612, "psci_612", body);
    assert_eq!(r[0]["value"], "0x10001");
    assert_eq!(r[1]["errno"], "EINVAL");
    assert_eq!(r[2]["errno"], "EINVAL");
    let r = sim(M72, "psci_72", body);
    assert_eq!(r[0]["value"], "0x10003");
    assert_eq!(r[1]["ok"], true);
    assert_eq!(r[3]["errno"], "EINVAL");
}

#[test]
fn register_list_has_seven_ids_on_6_12_and_eight_on_7_2() {
    let body = r#""steps": [{"op": "reg_list"}, {"op": "get", "reg": "VENDOR_HYP_BMAP_2"}]"#;
    let r = sim(M612, "regs612", body);
    assert_eq!(r[0]["regs"].as_array().unwrap().len(), 7);
    assert_eq!(r[1]["errno"], "ENOENT");
    let r = sim(M72, "regs72", body);
    assert_eq!(r[0]["regs"].as_array().unwrap().len(), 8);
    assert_eq!(r[0]["regs"][7], "0x6030000000160003");
    assert_eq!(r[1]["value"], "0x0");
}

#[test]
fn wrong_size_and_unknown_firmware_ids_are_enoent() {
    // Measured: 0x...140004, 0x...14ffff, 0x...160004 and the U32 PSCI id give ENOENT.
    let r = sim(
        M612,
        "unknown_ids",
        r#""steps": [{"op": "get", "reg": "0x6030000000140004"}, {"op": "get", "reg": "0x603000000014ffff"},
        {"op": "get", "reg": "0x6030000000160004"}, {"op": "get", "reg": "0x6020000000140000"}]"#,
    );
    for res in r {
        assert_eq!(res["errno"], "ENOENT");
    }
}

#[test]
fn workaround_1_set_validates_against_the_host_level() {
    // Measured with host level 2: 0, 1, 2 succeed; 3, 0x10, 0x13, 0x20 give EINVAL; the value
    // read back stays 2.
    let r = sim(
        M612,
        "wa1",
        r#""steps": [
        {"op": "set", "reg": "SMCCC_ARCH_WORKAROUND_1", "value": 0}, {"op": "set", "reg": "SMCCC_ARCH_WORKAROUND_1", "value": 1},
        {"op": "set", "reg": "SMCCC_ARCH_WORKAROUND_1", "value": 2}, {"op": "set", "reg": "SMCCC_ARCH_WORKAROUND_1", "value": 3},
        {"op": "set", "reg": "SMCCC_ARCH_WORKAROUND_1", "value": "0x10"}, {"op": "set", "reg": "SMCCC_ARCH_WORKAROUND_1", "value": "0x13"},
        {"op": "set", "reg": "SMCCC_ARCH_WORKAROUND_1", "value": "0x20"}, {"op": "get", "reg": "SMCCC_ARCH_WORKAROUND_1"}]"#,
    );
    let got: Vec<&str> = r[..7]
        .iter()
        .map(|v| {
            if v["ok"] == true {
                "ok"
            } else {
                v["errno"].as_str().unwrap()
            }
        })
        .collect();
    assert_eq!(
        got,
        ["ok", "ok", "ok", "EINVAL", "EINVAL", "EINVAL", "EINVAL"]
    );
    assert_eq!(r[7]["value"], "0x2");
}

#[test]
fn workaround_2_host_level_3_accepts_levels_up_to_3() {
    // Measured on cortex-a53 (host WA2 = 3): 0..3 succeed; on max (host WA2 = 0): 0, 1 succeed.
    let body = r#""steps": [{"op": "set", "reg": "SMCCC_ARCH_WORKAROUND_2", "value": 3}, {"op": "set", "reg": "SMCCC_ARCH_WORKAROUND_2", "value": 1},
        {"op": "set", "reg": "SMCCC_ARCH_WORKAROUND_2", "value": "0x10"}]"#;
    let r = sim("linux-6.12.117-cortex-a53", "wa2_a53", body);
    assert_eq!(
        (
            r[0]["ok"].clone(),
            r[1]["ok"].clone(),
            r[2]["errno"].clone()
        ),
        (true.into(), true.into(), "EINVAL".into())
    );
    let r = sim(M612, "wa2_max", body);
    assert_eq!(
        (r[0]["errno"].clone(), r[1]["ok"].clone()),
        ("EINVAL".into(), true.into())
    );
}

#[test]
fn arch_features_answers_follow_the_cpu_model() {
    // Measured guest ARCH_FEATURES(WA1 / WA2 / WA3) per CPU model on 6.12 with QEMU 7.2.
    let body = r#""steps": [{"op": "call", "x": ["0x80000001", "0x80008000"]}, {"op": "call", "x": ["0x80000001", "0x80007fff"]},
        {"op": "call", "x": ["0x80000001", "0x80003fff"]}]"#;
    let cases = [
        (
            "linux-6.12.117-max",
            ["0x1", "0xffffffffffffffff", "0xffffffffffffffff"],
        ),
        (
            "linux-6.12.117-neoverse-n1",
            ["0x1", "0xffffffffffffffff", "0x0"],
        ),
        (
            "linux-6.12.117-cortex-a53",
            ["0x1", "0xfffffffffffffffe", "0x1"],
        ),
        (
            "linux-6.12.117-cortex-a72",
            [
                "0xffffffffffffffff",
                "0xffffffffffffffff",
                "0xffffffffffffffff",
            ],
        ),
    ];
    for (profile, want) in cases {
        let r = sim(profile, "arch_features", body);
        let got: Vec<&str> = r.iter().map(x0).collect();
        assert_eq!(got, want, "{profile}");
    }
}

#[test]
fn bitmaps_lock_after_the_first_run() {
    // Measured: unknown bits give EINVAL; after the first KVM_RUN the same value succeeds and
    // another gives EBUSY.
    let r = sim(
        M612,
        "bitmaps",
        r#""steps": [{"op": "set", "reg": "STD_BMAP", "value": "0xffffffffffffffff"},
        {"op": "set", "reg": "VENDOR_HYP_BMAP", "value": "0x8000000000000003"}, {"op": "set", "reg": "VENDOR_HYP_BMAP", "value": 1},
        {"op": "call", "x": ["0x84000000"]}, {"op": "set", "reg": "VENDOR_HYP_BMAP", "value": 1}, {"op": "set", "reg": "VENDOR_HYP_BMAP", "value": 3},
        {"op": "set", "reg": "PSCI_VERSION", "value": "0x10000"}]"#,
    );
    assert_eq!(r[0]["errno"], "EINVAL");
    assert_eq!(r[1]["errno"], "EINVAL");
    assert_eq!(r[2]["ok"], true);
    assert_eq!(r[4]["ok"], true);
    assert_eq!(r[5]["errno"], "EBUSY");
    assert_eq!(
        r[6]["ok"], true,
        "PSCI_VERSION stays writable after the VM has run"
    );
}

#[test]
fn bitmap_gating_turns_services_off() {
    // Measured: STD_BMAP = 0 makes TRNG_VERSION -1; VENDOR_HYP_BMAP = 0 makes CALL_UID and
    // KVM_FEATURES -1; STD_HYP_BMAP = 0 makes PV_TIME_FEATURES -1.
    let r = sim(
        M612,
        "gating_on",
        r#""steps": [{"op": "call", "x": ["0x84000050"]}]"#,
    );
    assert_eq!(x0(&r[0]), "0x10000");
    let r = sim(
        M612,
        "gating",
        r#""steps": [{"op": "set", "reg": "STD_BMAP", "value": 0},
        {"op": "set", "reg": "VENDOR_HYP_BMAP", "value": 0}, {"op": "set", "reg": "STD_HYP_BMAP", "value": 0},
        {"op": "call", "x": ["0x84000050"]}, {"op": "call", "x": ["0x8600ff01"]}, {"op": "call", "x": ["0x86000000"]},
        {"op": "call", "x": ["0xc5000020", "0xc5000020"]}]"#,
    );
    for res in &r[..3] {
        assert_eq!(res["ok"], true);
    }
    for res in &r[3..] {
        assert_eq!(x0(res), "0xffffffffffffffff");
    }
}

#[test]
fn psci_features_depend_on_the_selected_version() {
    // Measured: under 0.2 PSCI_FEATURES itself is -1; under 1.0 PSCI_FEATURES(RESET2) and
    // RESET2 are -1; PSCI_FEATURES(SYSTEM_OFF2) is -1 on 6.12 and 0x1 on 7.2.
    let r = sim(
        M612,
        "features",
        r#""steps": [{"op": "set", "reg": "PSCI_VERSION", "value": 2}, {"op": "call", "x": ["0x8400000a", "0x84000000"]},
        {"op": "set", "reg": "PSCI_VERSION", "value": "0x10000"}, {"op": "call", "x": ["0x8400000a", "0x84000012"]}, {"op": "call", "x": ["0x84000012", "0x0"]},
        {"op": "set", "reg": "PSCI_VERSION", "value": "0x10001"}, {"op": "call", "x": ["0x8400000a", "0xc4000015"]}]"#,
    );
    assert_eq!(x0(&r[1]), "0xffffffffffffffff");
    assert_eq!(x0(&r[3]), "0xffffffffffffffff");
    assert_eq!(x0(&r[4]), "0xffffffffffffffff");
    assert_eq!(x0(&r[6]), "0xffffffffffffffff");
    let r = sim(
        M72,
        "features72",
        r#""steps": [{"op": "call", "x": ["0x8400000a", "0xc4000015"]}]"#,
    );
    assert_eq!(x0(&r[0]), "0x1");
}

#[test]
fn system_events_stop_every_vcpu() {
    // Measured: SYSTEM_OFF exits SHUTDOWN with data [0] and every vCPU STOPPED; SYSTEM_RESET2
    // type 0 or 0x80000001 exits RESET with data [1]; type 1 returns -2 without an exit.
    let r = sim(
        M612,
        "events",
        r#""vm": {"vcpus": 2}, "steps": [{"op": "call", "x": ["0x84000008"]}, {"op": "mp_state", "vcpu": 1},
        {"op": "set_mp_state", "mp_state": "RUNNABLE"}, {"op": "call", "x": ["0xc4000012", "0x1"]}, {"op": "call", "x": ["0xc4000012", "0x80000001"]},
        {"op": "set_mp_state", "mp_state": "RUNNABLE"}, {"op": "call", "x": ["0x84000009"]}]"#,
    );
    assert_eq!(
        (
            r[0]["exit"].as_str(),
            r[0]["type"].as_str(),
            r[0]["data"][0].as_str()
        ),
        (Some("system_event"), Some("SHUTDOWN"), Some("0x0"))
    );
    assert_eq!(r[1]["mp_state"], "STOPPED");
    assert_eq!(x0(&r[3]), "0xfffffffffffffffe");
    assert_eq!(
        (r[4]["type"].as_str(), r[4]["data"][0].as_str()),
        (Some("RESET"), Some("0x1"))
    );
    assert_eq!(
        (r[6]["type"].as_str(), r[6]["data"][0].as_str()),
        (Some("RESET"), Some("0x0"))
    );
}

#[test]
fn system_suspend_exits_without_data_only_with_the_capability() {
    // Measured: with KVM_CAP_ARM_SYSTEM_SUSPEND, SUSPEND with ndata 0, the vCPU stays
    // RUNNABLE, even while vCPU 1 is on; without it, SYSTEM_SUSPEND returns -1.
    let body = r#""steps": [{"op": "call", "x": ["0xc400000e", "0x40001000", "0x1"]}, {"op": "mp_state"}]"#;
    let r = sim(
        M612,
        "ssusp",
        &format!(r#""vm": {{"vcpus": 2, "system_suspend": true}}, {body}"#),
    );
    assert_eq!(r[0]["type"], "SUSPEND");
    assert_eq!(r[0]["data"].as_array().unwrap().len(), 0);
    assert_eq!(r[1]["mp_state"], "RUNNABLE");
    let r = sim(M612, "ssusp_off", body);
    assert_eq!(x0(&r[0]), "0xffffffffffffffff");
}

#[test]
fn blocked_calls_report_what_kvm_left() {
    // Measured: after CPU_OFF x0..x3 are 0 and the state STOPPED; after CPU_SUSPEND 0 and
    // RUNNABLE; a STOPPED vCPU never enters the guest and keeps the call's inputs.
    let r = sim(
        M612,
        "blocked",
        r#""vm": {"vcpus": 3, "power_off": [2]}, "steps": [{"op": "call", "x": ["0x84000002", "0x7"]},
        {"op": "call", "vcpu": 1, "x": ["0xc4000001", "0x0", "0x40001000", "0x5"]}, {"op": "call", "vcpu": 2, "x": ["0x84000000", "0x1", "0x2", "0x3"]}]"#,
    );
    assert_eq!(
        (r[0]["blocked"].clone(), r[0]["mp_state"].clone()),
        (true.into(), "STOPPED".into())
    );
    assert_eq!(r[0]["x"], serde_json::json!(["0x0", "0x0", "0x0", "0x0"]));
    assert_eq!(r[1]["mp_state"], "RUNNABLE");
    assert_eq!(r[1]["x"], serde_json::json!(["0x0", "0x0", "0x0", "0x0"]));
    assert_eq!(r[2]["mp_state"], "STOPPED");
    assert_eq!(
        r[2]["x"],
        serde_json::json!(["0x84000000", "0x1", "0x2", "0x3"])
    );
}

#[test]
fn smccc_filter_forwards_denies_and_reserves() {
    // Measured: FWD_TO_USER gives a hypercall exit with nr = the id and flags 0 (HVC); DENY on
    // 0x86000000 makes KVM_FEATURES -1; the architecture ranges give EEXIST; writes after the
    // VM has run give EBUSY.
    let r = sim(
        M612,
        "filter",
        r#""steps": [{"op": "smccc_filter", "base": "0x82000010", "count": 1, "action": "forward"},
        {"op": "smccc_filter", "base": "0x86000000", "count": 1, "action": "deny"}, {"op": "smccc_filter", "base": "0x80000000", "count": 1, "action": "deny"},
        {"op": "smccc_filter", "base": "0xc0000000", "count": 1, "action": "deny"}, {"op": "smccc_filter", "base": "0x82000010", "count": 1, "action": "deny"},
        {"op": "call", "x": ["0x82000010", "0x1"]}, {"op": "call", "x": ["0x86000000"]},
        {"op": "smccc_filter", "base": "0xc4000053", "count": 1, "action": "deny"}]"#,
    );
    assert_eq!(r[0]["ok"], true);
    assert_eq!(r[1]["ok"], true);
    assert_eq!(r[2]["errno"], "EEXIST");
    assert_eq!(r[3]["errno"], "EEXIST");
    assert_eq!(r[4]["errno"], "EEXIST");
    assert_eq!(
        (
            r[5]["exit"].as_str(),
            r[5]["nr"].as_str(),
            r[5]["flags"].as_str()
        ),
        (Some("hypercall"), Some("0x82000010"), Some("0x0"))
    );
    assert_eq!(x0(&r[6]), "0xffffffffffffffff");
    assert_eq!(r[7]["errno"], "EBUSY");
}

#[test]
fn bundled_scenarios_all_run_on_every_builtin_profile() {
    // The project's scenarios are well-formed: on every host each one runs to its end, and
    // ends with an error exactly where the host's real kernel did (the two scenarios about
    // malformed steps everywhere; a set-up with vCPU features the host lacks there).
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let out = armfw(&["profiles", "--json"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["format"], "armfw-profiles/1");
    let profiles = doc["profiles"].as_array().unwrap().clone();
    assert!(profiles.len() >= 5);
    for p in profiles {
        let name = p["name"].as_str().unwrap();
        let out = armfw(&["sim", "--profile", name, dir.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: only the error scenarios fail"
        );
        let docs: Vec<Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(docs.len() >= 40);
        let errored: Vec<&str> = docs
            .iter()
            .filter(|d| {
                d["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r.get("error").is_some())
            })
            .map(|d| d["scenario"].as_str().unwrap())
            .collect();
        let real = dir.join("expected").join(name);
        let mut real_errors: Vec<String> = std::fs::read_dir(&real)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let doc: Value =
                    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
                doc["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r.get("error").is_some())
            })
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        real_errors.sort();
        assert!(real_errors.contains(&"error_entry_after_call".to_string()));
        assert_eq!(errored, real_errors, "{name}");
    }
}

/// Bad input: one line on stderr naming the file and the field, exit 2, nothing on stdout.
fn assert_bad(args: &[&str], needles: &[&str]) {
    let out = armfw(args);
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    assert!(
        out.stdout.is_empty(),
        "{args:?} printed {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    // Each part of the message once (an error and its source are not both printed).
    let parts: Vec<&str> = err.trim_end().split(": ").collect();
    for k in 1..=parts.len() / 2 {
        for w in parts.windows(2 * k) {
            assert_ne!(w[..k], w[k..], "{err:?} says {:?} twice", w[..k].join(": "));
        }
    }
    for n in needles {
        assert!(err.contains(n), "{err:?} should name {n:?}");
    }
}

#[test]
fn bad_inputs_get_one_line_and_exit_2() {
    let d = scratch();
    let missing = d.join("missing.json");
    assert_bad(&["sim", missing.to_str().unwrap()], &["missing.json"]);
    let not_json = d.join("not_json.json");
    std::fs::write(&not_json, "{ nope").unwrap();
    assert_bad(
        &["sim", not_json.to_str().unwrap()],
        &["not_json.json", "not JSON"],
    );
    let renamed = d.join("renamed.json");
    std::fs::write(&renamed, r#"{"name": "other", "steps": []}"#).unwrap();
    assert_bad(
        &["sim", renamed.to_str().unwrap()],
        &["renamed.json", "name"],
    );
    let extra = d.join("extra.json");
    std::fs::write(&extra, r#"{"name": "extra", "steps": [], "stpes": []}"#).unwrap();
    assert_bad(&["sim", extra.to_str().unwrap()], &["extra.json", "stpes"]);
    let no_steps = d.join("no_steps.json");
    std::fs::write(&no_steps, r#"{"name": "no_steps"}"#).unwrap();
    assert_bad(
        &["sim", no_steps.to_str().unwrap()],
        &["no_steps.json", "steps"],
    );
    // A good file next to a bad one: nothing runs.
    let good = scenario("good", r#""steps": [{"op": "mp_state"}]"#);
    assert_bad(
        &["sim", good.to_str().unwrap(), not_json.to_str().unwrap()],
        &["not_json.json"],
    );
    assert_bad(
        &["regs", "--profile", "linux-0.0-nothing"],
        &["linux-0.0-nothing"],
    );
    let bad_profile = d.join("bad_profile.json");
    std::fs::write(&bad_profile, r#"{"format": "armfw-profile/1", "name": "x", "kernel": "6.12.0", "cpu": "max", "registers": [{"name": "PSCI_VERSION", "default": "0x10001", "id": "0x6030000000140001"}], "psci_versions": ["0x10001"], "capabilities": {"system_suspend": true, "smccc_filter": true}}"#).unwrap();
    assert_bad(
        &["regs", "--profile", bad_profile.to_str().unwrap()],
        &["bad_profile.json", "registers[0].id"],
    );
    // Bad arguments: one line too, naming what is wrong.
    assert_bad(
        &["sim", "--backend", "qemu", good.to_str().unwrap()],
        &["qemu", "--backend"],
    );
    assert_bad(&[], &["no command"]);
    assert_bad(&["simulate"], &["simulate"]);
    assert_bad(&["sim"], &["<SCENARIOS>"]);
    assert_bad(&["sim", "--bogus", good.to_str().unwrap()], &["--bogus"]);
    assert_bad(&["regs", "--profile"], &["--profile"]);
}

#[test]
fn help_and_version_are_not_errors() {
    for args in [&["--help"][..], &["--version"], &["sim", "--help"]] {
        let out = armfw(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn malformed_step_ends_the_scenario_with_an_error_result() {
    let p = scenario(
        "typo",
        r#""vm": {"vcpus": 2}, "steps": [{"op": "mp_state"}, {"op": "mp_state", "vpcu": 1}, {"op": "mp_state"}]"#,
    );
    let out = armfw(&["sim", "--profile", M612, p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = doc["results"].as_array().unwrap();
    assert_eq!(r.len(), 2);
    assert!(r[1]["error"].as_str().unwrap().contains("vpcu"));
    assert!(String::from_utf8(out.stderr).unwrap().contains("typo.json"));
}

#[test]
fn regs_json_lists_every_register_of_the_host() {
    let out = armfw(&["regs", "--profile", M72, "--json"]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let regs = v["registers"].as_array().unwrap();
    assert_eq!(regs.len(), 8);
    assert_eq!(regs[0]["name"], "PSCI_VERSION");
    assert_eq!(
        regs[0]["accepts"],
        serde_json::json!(["0x2", "0x10000", "0x10001", "0x10002", "0x10003"])
    );
    assert_eq!(regs[7]["accepts_mask"], "0x3");
}

#[test]
fn regs_lists_what_the_probe_recorded_for_every_feature_set() {
    // `armfw regs` and `armfw probe` agree: for each built-in profile and each feature set the
    // probe recorded, the vCPU registers are the profile's, in its order, with its reset
    // values; each has a name and a rule.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../armfw/profiles");
    let mut sets = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let profile: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = profile["name"].as_str().unwrap();
        for set in profile["vcpu"]["feature_sets"].as_array().unwrap() {
            let features: Vec<&str> = set["features"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap())
                .collect();
            let list = features.join(",");
            let out = armfw(&["regs", "--profile", name, "--features", &list, "--json"]);
            assert!(out.status.success(), "{name} {list}: {out:?}");
            let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
            let got: Vec<(String, String)> = doc["vcpu"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    assert!(!r["name"].as_str().unwrap().is_empty());
                    assert!(!r["rule"].as_str().unwrap().is_empty());
                    (
                        r["id"].as_str().unwrap().into(),
                        r["reset"].as_str().unwrap().into(),
                    )
                })
                .collect();
            let want: Vec<(String, String)> = set["registers"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().into()))
                .collect();
            assert_eq!(got, want, "{name} {list}");
            sets += 1;
        }
    }
    assert!(sets >= 24, "only {sets} feature sets");
}

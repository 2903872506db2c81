//! `armfw save`, `armfw check` and `armfw baseline` end to end. Expected values come from the
//! measured host profiles (`crates/armfw/profiles/`: default PSCI 1.1 and 7 firmware registers on 6.12, 1.3
//! and 8 on 7.2; the WORKAROUND levels per CPU model) and the kernel's SET rules, never from
//! armfw's own output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

const M612: &str = "linux-6.12.117-max";
const M72: &str = "linux-7.2.13-max";
const A53: &str = "linux-6.12.117-cortex-a53";

fn armfw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_armfw"))
        .args(args)
        .output()
        .expect("armfw runs")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("armfw exits")
}

/// A fresh scratch folder of this test process.
fn scratch() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "armfw-migrate-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `armfw save ARGS -o FILE`; the file's path.
fn save(args: &[&str], file: &str) -> PathBuf {
    let path = scratch().join(file);
    let mut all = vec!["save"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", path.to_str().unwrap()]);
    let out = armfw(&all);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    path
}

/// `armfw check --json` with `source` (`--state FILE` or `--from PROFILE`): exit code and
/// report.
fn check_json(source: &[&str], to: &str) -> (i32, Value) {
    let mut args = vec!["check", "--json", "--to", to];
    args.extend_from_slice(source);
    let out = armfw(&args);
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let v = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    (code(&out), v)
}

fn finding<'a>(report: &'a Value, subject: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["subject"] == subject)
        .unwrap_or_else(|| panic!("no finding for {subject}"))
}

fn state(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A bad input: exit 2, one line on stderr naming the problem, nothing on stdout.
fn assert_bad_input(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(out), 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("armfw: "), "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    // Each part of the message once (an error and its source are not both printed).
    let parts: Vec<&str> = stderr.trim_end().split(": ").collect();
    for k in 1..=parts.len() / 2 {
        for w in parts.windows(2 * k) {
            assert_ne!(
                w[..k],
                w[k..],
                "{stderr:?} says {:?} twice",
                w[..k].join(": ")
            );
        }
    }
    assert!(out.stdout.is_empty());
}

#[test]
fn default_7_2_vm_cannot_go_to_6_12_because_of_psci_1_3() {
    // 7.2 defaults to PSCI 1.3; 6.12's SET accepts only 0.2, 1.0, 1.1 (EINVAL otherwise).
    let (code, r) = check_json(&["--from", M72], M612);
    assert_eq!(code, 1);
    assert_eq!(r["verdict"], "incompatible");
    let psci = finding(&r, "PSCI_VERSION");
    assert_eq!(psci["saved"], "0x10003");
    assert_eq!(psci["outcome"], "refuse");
    assert_eq!(
        psci["destination"]["values"],
        serde_json::json!(["0x2", "0x10000", "0x10001"])
    );
    assert!(psci["remedy"].as_str().unwrap().contains("1.1"));
    assert_eq!(r["strict"]["register"], "PSCI_VERSION");
    assert_eq!(r["strict"]["errno"], "EINVAL");
}

#[test]
fn default_6_12_vm_goes_to_7_2_unchanged() {
    let (code, r) = check_json(&["--from", M612], M72);
    assert_eq!(code, 0);
    assert_eq!(r["verdict"], "compatible");
    assert_eq!(r["strict"]["ok"], true);
    // 7.2's extra VENDOR_HYP_BMAP_2 keeps its default 0: nothing is written.
    let b2 = finding(&r, "VENDOR_HYP_BMAP_2");
    assert_eq!(b2["saved"], Value::Null);
    assert_eq!(b2["outcome"], "keep");
    assert_eq!(r["plan"].as_array().unwrap().len(), 7);
}

#[test]
fn pinned_7_2_vm_needs_the_plan_that_drops_bmap_2() {
    let p = save(&["--profile", M72, "--psci-version", "1.1"], "pinned.json");
    let (code, r) = check_json(&["--state", state(&p)], M612);
    assert_eq!(code, 3);
    assert_eq!(r["verdict"], "compatible_with_plan");
    // The strict restore writes the 8th register, which 6.12 does not have: ENOENT.
    assert_eq!(r["strict"]["register"], "VENDOR_HYP_BMAP_2");
    assert_eq!(r["strict"]["errno"], "ENOENT");
    let plan = r["plan"].as_array().unwrap();
    assert_eq!(plan[0]["action"], "write");
    assert_eq!(plan[0]["value"], "0x10001");
    assert_eq!(plan[7]["action"], "skip");
    assert_eq!(plan[7]["register"], "VENDOR_HYP_BMAP_2");
}

#[test]
fn binary_state_gives_the_same_report_as_json() {
    let j = save(&["--profile", M72, "--psci-version", "1.0"], "s.json");
    let b = save(
        &["--profile", M72, "--psci-version", "1.0", "--binary"],
        "s.bin",
    );
    assert_eq!(&std::fs::read(&b).unwrap()[..8], b"ARMFWSNP");
    let (cj, rj) = check_json(&["--state", state(&j)], M612);
    let (cb, rb) = check_json(&["--state", state(&b)], M612);
    assert_eq!((cj, &rj), (cb, &rb));
}

#[test]
fn service_bits_only_7_2_has_are_refused_on_6_12() {
    let p = save(
        &[
            "--profile",
            M72,
            "--psci-version",
            "1.1",
            "--set",
            "VENDOR_HYP_BMAP_2=0x3",
        ],
        "bmap2.json",
    );
    let (code, r) = check_json(&["--state", state(&p)], M612);
    assert_eq!(code, 1);
    let b2 = finding(&r, "VENDOR_HYP_BMAP_2");
    assert_eq!(b2["saved"], "0x3");
    assert_eq!(b2["destination"]["present"], false);
    assert_eq!(b2["outcome"], "refuse");
}

#[test]
fn workaround_level_above_the_destination_is_refused() {
    // cortex-a53: WA2 = 3 (NOT_REQUIRED); max: WA2 = 0. KVM refuses the higher level.
    let (code, r) = check_json(&["--from", A53], M612);
    assert_eq!(code, 1);
    let wa2 = finding(&r, "SMCCC_ARCH_WORKAROUND_2");
    assert_eq!(wa2["saved"], "0x3");
    assert_eq!(wa2["destination"]["host_level"], "0x0");
    assert_eq!(wa2["outcome"], "refuse");
    assert_eq!(r["strict"]["register"], "SMCCC_ARCH_WORKAROUND_2");
    assert_eq!(r["strict"]["errno"], "EINVAL");
}

#[test]
fn text_report_names_the_verdict_rules_and_strict_outcome() {
    let out = armfw(&["check", "--from", M72, "--to", M612]);
    assert_eq!(code(&out), 1);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with(&format!("{M72} (kernel 7.2.13+deb14-arm64) -> {M612}")));
    assert!(text.contains("incompatible"));
    assert!(text.contains("psci_version_not_offered"));
    assert!(text.contains("remedy:"));
    assert!(text.contains("KVM_SET_ONE_REG PSCI_VERSION on vCPU 0: EINVAL"));
}

#[test]
fn baseline_of_6_12_and_7_2_pins_psci_1_1_and_moves_both_ways() {
    let out = armfw(&["baseline", "--json", M612, M72]);
    assert_eq!(code(&out), 0);
    let b: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(b["psci_version"], "0x10001");
    assert_eq!(b["any_to_any"], true);
    let regs: Vec<(&str, &str)> = b["registers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["value"].as_str().unwrap()))
        .collect();
    assert_eq!(
        regs,
        [
            ("PSCI_VERSION", "0x10001"),
            ("STD_BMAP", "0x1"),
            ("STD_HYP_BMAP", "0x1"),
            ("VENDOR_HYP_BMAP", "0x3"),
            ("VENDOR_HYP_BMAP_2", "0x0"),
        ]
    );
    // A VM created on 7.2 with the baseline goes to 6.12 (dropping BMAP_2 = 0) and back.
    let p = save(
        &["--profile", M72, "--baseline", M612, "--baseline", M72],
        "base.json",
    );
    assert_eq!(check_json(&["--state", state(&p)], M612).0, 3);
    assert_eq!(check_json(&["--state", state(&p)], M72).0, 0);
}

#[test]
fn baseline_with_differing_workaround_levels_exits_1_and_names_the_hosts() {
    let out = armfw(&["baseline", M612, A53]);
    assert_eq!(code(&out), 1);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("SMCCC_ARCH_WORKAROUND_2: levels 0..3"),
        "{text}"
    );
    assert!(text.contains(A53) && text.contains(M612));
}

#[test]
fn help_documents_the_exit_codes() {
    let out = armfw(&["check", "--help"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("0 compatible"));
    assert!(text.contains("3 compatible only with armfw's plan"));
    assert!(text.contains("1 incompatible"));
    assert!(text.contains("2 bad input"));
}

#[test]
fn bad_state_files_are_one_line_errors_with_exit_2() {
    let dir = scratch();
    let good = save(&["--profile", M612], "good.json");
    let text = std::fs::read_to_string(&good).unwrap();
    let write = |name: &str, body: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let not_json = write("not.json", b"{\"format\": ");
    let profile = write("profile.json", br#"{"format": "armfw-profile/1"}"#);
    let newer = write(
        "newer.json",
        text.replace("armfw-snapshot/1.0", "armfw-snapshot/3.0")
            .as_bytes(),
    );
    let edited = write(
        "edited.json",
        text.replace("\"0x10001\"", "\"0x10000\"").as_bytes(),
    );
    let field = write(
        "field.json",
        text.replace("\"RUNNABLE\"", "\"HALTED\"").as_bytes(),
    );
    let bin = save(&["--profile", M612, "--binary"], "good.bin");
    let bytes = std::fs::read(&bin).unwrap();
    let truncated = write("truncated.bin", &bytes[..bytes.len() - 5]);
    let missing = dir.join("missing.json");
    for (path, needle) in [
        (&not_json, "not JSON"),
        (&profile, "not an armfw snapshot"),
        (&newer, "format version 3.0 is not readable"),
        (&edited, "checksum"),
        (&field, "vcpus[0].mp_state"),
        (&truncated, "truncated"),
        (&missing, "cannot read"),
    ] {
        let out = armfw(&["check", "--state", state(path), "--to", M612]);
        assert_bad_input(&out, needle);
    }
}

#[test]
fn bad_arguments_are_one_line_errors_with_exit_2() {
    assert_bad_input(
        &armfw(&["check", "--from", "no-such-host", "--to", M612]),
        "no-such-host",
    );
    assert_bad_input(&armfw(&["check", "--to", M612]), "required");
    assert_bad_input(
        &armfw(&["save", "--profile", M612, "--psci-version", "1.3"]),
        "EINVAL",
    );
    assert_bad_input(
        &armfw(&["save", "--profile", M612, "--set", "STD_BMAP=0x2"]),
        "EINVAL",
    );
    assert_bad_input(&armfw(&["baseline", "nope"]), "nope");
}

#[test]
fn whole_vm_states_are_saved_checked_under_each_vmm_policy_and_refused_when_bad() {
    // 6.12 lists TCR2_EL1, PIRE0_EL1 and PIR_EL1 on every CPU model; 7.2 on none (measured,
    // docs/kernel-differences.md): a whole VM of 6.12 does not go back to 7.2 as today's
    // VMMs restore it, and QEMU refuses it by the count of its registers.
    let json_state = save(
        &["--profile", "linux-6.12.117-max", "--whole"],
        "whole.json",
    );
    let bin_state = save(
        &["--profile", "linux-6.12.117-max", "--whole", "--binary"],
        "whole.bin",
    );
    let text = std::fs::read_to_string(&json_state).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["format"], "armfw-snapshot/2.0");
    assert_eq!(doc["machine"]["reg_list"].as_array().unwrap().len(), 259);
    let (c_json, r_json) = check_json(&["--state", state(&json_state)], "linux-7.2.13-max");
    let (c_bin, r_bin) = check_json(&["--state", state(&bin_state)], "linux-7.2.13-max");
    let (c_from, r_from) = check_json(
        &["--from", "linux-6.12.117-max", "--whole"],
        "linux-7.2.13-max",
    );
    // Only armfw's plan restores it: exit 3.
    assert_eq!((c_json, c_bin, c_from), (3, 3, 3));
    assert_eq!(r_json["whole_vm"], r_bin["whole_vm"]);
    assert_eq!(r_json["whole_vm"], r_from["whole_vm"]);
    let policies = r_json["whole_vm"]["policies"].as_array().unwrap();
    let names: Vec<&str> = policies
        .iter()
        .map(|p| p["policy"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first-refusal", "write-all", "qemu"]);
    let refused = |p: &Value| -> Vec<String> {
        p["refusals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r["id"].as_str().unwrap(),
                    r["errno"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(refused(&policies[0]), ["0x603000000013c103 ENOENT"]);
    assert_eq!(
        refused(&policies[1]),
        [
            "0x603000000013c103 ENOENT",
            "0x603000000013c512 ENOENT",
            "0x603000000013c513 ENOENT"
        ]
    );
    assert_eq!(policies[2]["result"], "ids_refused");
    assert!(
        policies[2]["ids"]
            .as_str()
            .unwrap()
            .contains("cpreg_vmstate_array_len"),
        "{policies:?}"
    );
    // armfw's plan leaves the three out: the VM presents ID_AA64MMFR3_EL1 = 0, so its guest
    // cannot use them.
    let plan = &r_json["whole_vm"]["plan"];
    assert_eq!(plan["result"], "restores");
    let skipped: Vec<&str> = plan["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["register"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["TCR2_EL1", "PIRE0_EL1", "PIR_EL1"]);
    // Back to 6.1 nothing restores it: 6.1 lacks the physical-timer registers.
    let (c_old, old) = check_json(&["--state", state(&json_state)], "linux-6.1.192-max");
    assert_eq!(c_old, 1, "{old:#}");
    assert_eq!(old["whole_vm"]["plan"]["result"], "refused");
    // The same VM on the same host: every policy restores it, and the firmware is unchanged.
    let (code_same, same) = check_json(&["--state", state(&json_state)], "linux-6.12.117-max");
    assert_eq!(code_same, 0, "{same:#}");
    assert!(
        same["whole_vm"]["policies"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["result"] == "succeeds")
    );
    // A firmware-only state has no whole-VM part, and is still written as 1.0.
    let fw_only = save(&["--profile", "linux-6.12.117-max"], "fw.json");
    let (_, r) = check_json(&["--state", state(&fw_only)], "linux-7.2.13-max");
    assert!(r.get("whole_vm").is_none());
    // Bad whole-VM parts: one line naming the field, exit 2.
    let d = scratch();
    let edit = |name: &str, f: &dyn Fn(&mut Value)| {
        let mut v = doc.clone();
        f(&mut v);
        let p = d.join(name);
        std::fs::write(&p, v.to_string()).unwrap();
        p
    };
    type Edit<'a> = &'a dyn Fn(&mut Value);
    let cases: [(&str, Edit, &str); 4] = [
        (
            "value.json",
            &|v| v["machine"]["vcpus"][0]["registers"][0]["value"] = "0x1ffffffffffffffff".into(),
            "machine.vcpus[0].registers[0].value",
        ),
        (
            "list.json",
            &|v| {
                v["machine"]["reg_list"].as_array_mut().unwrap().pop();
            },
            "checksum",
        ),
        (
            "features.json",
            &|v| v["machine"]["features"] = serde_json::json!(["ptrauth_address"]),
            "checksum",
        ),
        (
            "unknown.json",
            &|v| v["machine"]["extra"] = 1.into(),
            "machine.extra",
        ),
    ];
    for (name, f, needle) in cases {
        let p = edit(name, f);
        let out = armfw(&["check", "--state", state(&p), "--to", "linux-7.2.13-max"]);
        assert_bad_input(&out, needle);
    }
}

#[test]
fn whole_vms_created_with_the_cpu_baseline_move_between_the_covered_hosts() {
    // 7.2 cortex-a72 and cortex-a57: the same WORKAROUND levels (profiles: 0, 0, 0), other
    // MIDR_EL1 values (0x410fd083, 0x411fd070); 7.2 makes the implementation ids writable.
    const A72: &str = "linux-7.2.13-cortex-a72";
    const A57: &str = "linux-7.2.13-cortex-a57";
    const A53_72: &str = "linux-7.2.13-cortex-a53";
    let pool = ["--baseline", A72, "--baseline", A57];
    let mut args = vec!["--profile", A57, "--whole"];
    args.extend_from_slice(&pool);
    let s57 = save(&args, "a57.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&s57).unwrap()).unwrap();
    assert_eq!(
        doc["machine"]["writable_imp_id_regs"], true,
        "{:#}",
        doc["machine"]
    );
    // Without the baseline a VM of the a72 does not move to the a57 (measured by
    // conformance/migrate: the a57 cannot present the a72's ID_MMFR0_EL1.AuxReg 2); the
    // other way armfw's plan writes the a57's MIDR_EL1 with the capability.
    let (plain, r) = check_json(&["--from", A72, "--whole"], A57);
    assert_eq!(plain, 1);
    let f = &r["whole_vm"]["plan"]["findings"][0];
    assert_eq!(f["register"], "ID_MMFR0_EL1", "{:#}", r["whole_vm"]["plan"]);
    assert_eq!(f["rule"], "id_field_not_presentable");
    assert_eq!(f["outcome"], "refuse");
    assert!(
        f["accepts"]
            .as_str()
            .unwrap()
            .starts_with("ID_MMFR0_EL1.AuxReg = 0x1 (its own), not the saved 0x2; lower-safe"),
        "{f:#}"
    );
    assert!(
        f["remedy"]
            .as_str()
            .unwrap()
            .contains("armfw baseline SOURCE linux-7.2.13-cortex-a57")
    );
    let (plain, _) = check_json(&["--from", A57, "--whole"], A72);
    assert_eq!(plain, 3);
    // With it, both ways: the plan writes the baseline's MIDR_EL1 (the a72's) back.
    let (c, r) = check_json(&["--state", state(&s57)], A72);
    assert!(c == 0 || c == 3, "{c}: {:#}", r["whole_vm"]);
    assert_eq!(r["whole_vm"]["plan"]["result"], "restores");
    let mut args = vec!["--profile", A72, "--whole"];
    args.extend_from_slice(&pool);
    let s72 = save(&args, "a72.json");
    let (c, r) = check_json(&["--state", state(&s72)], A57);
    assert!(c == 0 || c == 3, "{c}: {:#}", r["whole_vm"]);
    // A host the pool's baseline leaves out: one line naming the host and the reason.
    let out = armfw(&[
        "save",
        "--profile",
        A53_72,
        "--whole",
        "--baseline",
        A72,
        "--baseline",
        A57,
        "--baseline",
        A53_72,
    ]);
    assert_bad_input(
        &out,
        "linux-7.2.13-cortex-a53 is left out of the --baseline pool's CPU baseline: SMCCC_ARCH_WORKAROUND_",
    );
}

#[test]
fn baseline_prints_the_cpu_part_and_its_recipe() {
    const A72: &str = "linux-7.2.13-cortex-a72";
    const A57: &str = "linux-7.2.13-cortex-a57";
    const A53_72: &str = "linux-7.2.13-cortex-a53";
    let out = armfw(&["baseline", "--json", A72, A57, A53_72]);
    // The a53 is left out: not every move is possible.
    assert_eq!(code(&out), 1);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["format"], "armfw-baseline/2");
    let cpu = &doc["cpu"];
    assert_eq!(cpu["covered"], serde_json::json!([A72, A57]));
    assert_eq!(cpu["left_out"][0]["host"], A53_72);
    let midr = cpu["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["register"] == "MIDR_EL1")
        .expect("MIDR_EL1 differs");
    assert_eq!(midr["value"], "0x410fd083");
    assert_eq!(cpu["implementations"].as_array().unwrap().len(), 2);
    // Both are 7.2 hosts: VENDOR_HYP_BMAP_2 takes bits 0 and 1 (profiles: writable 0x3).
    assert_eq!(cpu["discover_impl"], true);
    // The a72 writes nothing for MIDR_EL1 (its own); the a57 enables the capability and
    // writes it.
    let recipe = |h: &str| {
        cpu["recipes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["host"] == h)
            .unwrap()
            .clone()
    };
    assert_eq!(recipe(A72)["writable_imp_id_regs"], false);
    assert_eq!(recipe(A57)["writable_imp_id_regs"], true);
    assert!(
        recipe(A57)["writes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["name"] == "MIDR_EL1" && w["value"] == "0x410fd083")
    );
    // The text says the same.
    let text = String::from_utf8(armfw(&["baseline", A72, A57, A53_72]).stdout).unwrap();
    assert!(
        text.contains("CPU baseline (vCPU features: none): covers 2 of 3 hosts"),
        "{text}"
    );
    assert!(
        text.contains("left out: linux-7.2.13-cortex-a53: SMCCC_ARCH_WORKAROUND_"),
        "{text}"
    );
    // Features a host was not probed with: no CPU baseline, said in one line of the text and
    // in the document.
    let out = armfw(&["baseline", "--json", "--features", "sve", A72, A57]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["cpu"].is_null());
    assert!(
        doc["no_cpu_baseline"]
            .as_str()
            .unwrap()
            .starts_with("linux-7.2.13-cortex-a72 was not probed with the vCPU features sve"),
        "{doc:#}"
    );
    assert_eq!(doc["any_to_any"], false);
}

#[test]
fn a_vm_bundle_is_checked_by_its_snapshot_and_a_cut_one_is_refused() {
    use armfw::bundle::{Bundle, DEVICES_FORMAT, Devices, GicState, RamRange};
    let saved = save(&["--profile", M612, "--whole"], "whole.json");
    let snapshot = armfw::Snapshot::load(&std::fs::read(&saved).unwrap()).unwrap();
    let n = snapshot.vcpus().len();
    let devices = Devices {
        format: DEVICES_FORMAT.into(),
        ram: vec![RamRange {
            base: 0x4000_0000,
            size: 0x10_0000,
        }],
        gic: GicState {
            nr_irqs: 64,
            redist: vec![Vec::new(); n],
            cpu: vec![Vec::new(); n],
            ..GicState::default()
        },
        engine: None,
        implementations: Vec::new(),
        vmm: serde_json::json!({}),
    };
    let page = vec![7u8; 0x1000];
    let runs = [armfw::bundle::MemoryRun {
        gpa: 0x4000_0000,
        data: &page,
    }];
    let bytes = Bundle::encode(&snapshot, &devices, &runs).unwrap();
    let bundle = scratch().join("vm.bundle");
    std::fs::write(&bundle, &bytes).unwrap();
    let (c_state, r_state) = check_json(&["--state", state(&saved)], M72);
    let (c_bundle, r_bundle) = check_json(&["--state", bundle.to_str().unwrap()], M72);
    assert_eq!(c_bundle, c_state);
    assert_eq!(r_bundle["whole_vm"], r_state["whole_vm"]);
    assert_eq!(r_bundle["findings"], r_state["findings"]);
    // A bundle cut inside its snapshot: one line, exit 2.
    let cut = scratch().join("cut.bundle");
    std::fs::write(&cut, &bytes[..100]).unwrap();
    let out = armfw(&["check", "--state", cut.to_str().unwrap(), "--to", M72]);
    assert_bad_input(&out, "truncated");
}

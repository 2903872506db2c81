//! `armfw check` with a QEMU policy, end to end, on real QEMU streams (fuzz/seeds/qemu_stream/,
//! saved by Debian's QEMU inside emulated Debian hosts; conformance/qemu recorded what QEMU
//! did with each) and on bad input.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn armfw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_armfw"))
        .args(args)
        .output()
        .expect("armfw runs")
}

fn seed(name: &str) -> String {
    format!(
        "{}/../../fuzz/seeds/qemu_stream/{name}.qevm",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("armfw-qemu-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

const N1_612: &str = "linux-6.12.117-neoverse-n1";
const N1_72: &str = "linux-7.2.13-neoverse-n1";

#[test]
fn a_stream_qemu_refuses_exits_1_and_names_the_rule() {
    // QEMU 10.0 printed "Invalid value 184 expecting positive value <= 182".
    let s = seed("trixie-6.12-neoverse-n1");
    let o = armfw(&[
        "check",
        "--qemu-stream",
        &s,
        "--to",
        N1_72,
        "--qemu-cpu",
        "host,pmu=off",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["policy"], "qemu-10.0");
    assert_eq!(doc["rule"], "cpreg_count");
    assert_eq!(doc["source"]["machine_type"], "virt-10.0");
    assert_eq!(
        doc["messages"][0],
        "Invalid value 184 expecting positive value <= 182"
    );
}

#[test]
fn a_stream_qemu_loads_exits_0() {
    // QEMU 11.1 loaded it and the guest went on with the next tick.
    let s = seed("sid-6.12-neoverse-n1");
    let o = armfw(&[
        "check",
        "--qemu-stream",
        &s,
        "--to",
        N1_72,
        "--qemu-cpu",
        "host,pmu=off",
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.contains("qemu-11.1 loading it on linux-7.2.13-neoverse-n1"),
        "{text}"
    );
    assert!(text.contains("loads, the guest goes on"), "{text}");
    // The same stream under QEMU 10.0's rules is refused, at the count.
    let o = armfw(&[
        "check",
        "--qemu-stream",
        &s,
        "--to",
        N1_72,
        "--policy",
        "qemu-10.0",
        "--qemu-cpu",
        "host,pmu=off",
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let d = scratch("bad");
    let real = std::fs::read(seed("bookworm-7-neoverse-n1")).unwrap();
    let cut = d.join("cut.qevm");
    std::fs::write(&cut, &real[..real.len() / 2]).unwrap();
    let garbage = d.join("garbage.qevm");
    std::fs::write(&garbage, b"QEVM\0\0\0\x03this is not a stream").unwrap();
    let profile = format!(
        "{}/../../crates/armfw/profiles/{N1_612}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--qemu-stream".into(), d.join("none").display().to_string()],
            "cannot read",
        ),
        (
            vec!["--qemu-stream".into(), d.display().to_string()],
            "a folder",
        ),
        (
            vec!["--qemu-stream".into(), "-".into()],
            "not standard input",
        ),
        (
            vec!["--qemu-stream".into(), cut.display().to_string()],
            "no device description",
        ),
        (
            vec!["--qemu-stream".into(), garbage.display().to_string()],
            "no device description",
        ),
        (
            vec!["--qemu-stream".into(), profile],
            "not a QEMU migration stream",
        ),
        (
            vec![
                "--qemu-stream".into(),
                seed("sid-7-neoverse-n1"),
                "--policy".into(),
                "qemu-9.0".into(),
            ],
            "not a QEMU policy",
        ),
        (
            vec![
                "--qemu-stream".into(),
                seed("sid-7-neoverse-n1"),
                "--qemu-cpu".into(),
                "max".into(),
            ],
            "must be host",
        ),
        (
            vec![
                "--from".into(),
                N1_72.into(),
                "--policy".into(),
                "qemu-7.2".into(),
                "--qemu-cpu".into(),
                "host,pmu=maybe".into(),
            ],
            "on or off",
        ),
    ];
    for (args, says) in cases {
        let mut all = vec!["check".to_string()];
        all.extend(args.iter().cloned());
        all.extend(["--to".into(), N1_612.into()]);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let o = armfw(&refs);
        let err = String::from_utf8(o.stderr).unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn a_whole_vm_state_is_checked_as_qemu_would_load_it() {
    // An armfw whole-VM state of a 6.12 neoverse-n1 VM carries the 184 cpregs a QEMU 10.0
    // stream of that host carries (QEMU: "Invalid value 184 expecting positive value <= 182"
    // on 7.2).
    let d = scratch("state");
    let f = d.join("whole.json");
    let o = armfw(&[
        "save",
        "--profile",
        N1_612,
        "--whole",
        "-o",
        f.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{o:?}");
    let o = armfw(&[
        "check",
        "--state",
        f.to_str().unwrap(),
        "--to",
        N1_72,
        "--policy",
        "qemu-10.0",
        "--qemu-cpu",
        "host,pmu=off",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["source"]["kind"], "state");
    assert_eq!(doc["source"]["cpregs"], 184);
    assert_eq!(
        doc["messages"][0],
        "Invalid value 184 expecting positive value <= 182"
    );
    // A firmware-only state has no cpregs to check.
    let g = d.join("fw.json");
    assert!(
        armfw(&["save", "--profile", N1_612, "-o", g.to_str().unwrap()])
            .status
            .success()
    );
    let o = armfw(&[
        "check",
        "--state",
        g.to_str().unwrap(),
        "--to",
        N1_72,
        "--policy",
        "qemu-10.0",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8(o.stderr)
            .unwrap()
            .contains("whole-VM state")
    );
}

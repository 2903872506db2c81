// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The steps the scripts in conformance/ run on the build machine: `hosts`, `records` and
//! `initramfs`.

use std::path::PathBuf;
use std::process::{Command, Output};

fn harness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_armfw-harness"))
        .args(args)
        .output()
        .expect("armfw-harness runs")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("armfw-harness-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn hosts_prints_one_host_a_line_with_all_expanded() {
    let o = harness(&["hosts", "7:max,all:cortex-a72"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "7:max\n6.1:cortex-a72\n6.12:cortex-a72\n7:cortex-a72\n"
    );
}

#[test]
fn hosts_bad_spec_is_one_line_and_exit_2() {
    let o = harness(&["hosts", "6.1:max,8:max"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("unknown kernel series '8'"), "{err}");
}

#[test]
fn records_prints_the_json_of_a_noisy_console_log() {
    let d = scratch("records");
    let log = d.join("host.log");
    std::fs::write(
        &log,
        "[    0.1] Booting Linux\r\n@@ARMFW 0 {\"kind\":\"profile\"}\r\n[ 1.2] kvm [1]: VHE\r\n\
         x@@ARMFW 1 {\"kind\":\"error\",\"error\":\"e\"}\r\n@@ARMFW-END 2\r\n[ 2.0] Power down\r\n",
    )
    .unwrap();
    let o = harness(&["records", log.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "{\"kind\":\"profile\"}\n{\"kind\":\"error\",\"error\":\"e\"}\n"
    );
}

#[test]
fn records_of_a_cut_log_exit_1_with_why() {
    let d = scratch("cut");
    let log = d.join("host.log");
    std::fs::write(&log, "@@ARMFW 0 {}\n@@ARMFW 1 {\"a\":").unwrap();
    let o = harness(&["records", log.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).trim_end(),
        "records: no end marker (2 records)"
    );
}

#[test]
fn initramfs_holds_init_the_device_and_the_files() {
    let d = scratch("initramfs");
    let (init, extra, out) = (d.join("prog"), d.join("set"), d.join("out/initrd.cpio"));
    std::fs::write(&init, b"\x7fELF").unwrap();
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(extra.join("a.json"), b"{}").unwrap();
    let o = harness(&[
        "initramfs",
        out.to_str().unwrap(),
        "--init",
        init.to_str().unwrap(),
        extra.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let bytes = std::fs::read(&out).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(bytes.starts_with(b"070701"));
    for name in [
        "armfw/set/a.json\0",
        "dev/console\0",
        "init\0",
        "proc\0",
        "sys\0",
        "TRAILER!!!\0",
    ] {
        assert!(text.contains(name), "{name}");
    }
    assert_eq!(bytes.len() % 4, 0);
}

//! The CLI's bad inputs, one table over every command: each case gives exit 2, exactly one
//! line on stderr that names the problem (and says nothing twice), nothing on stdout, and
//! leaves the files it was pointed at as they were.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

const HOST: &str = "linux-6.12.117-max";

fn scratch() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "armfw-bad-input-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, name: &str, body: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.to_str().unwrap().to_string()
}

/// A state file saved by `armfw save`.
fn saved(dir: &Path, name: &str, binary: bool) -> Vec<u8> {
    let out = dir.join(name);
    let mut args = vec!["save", "--profile", HOST, "-o", out.to_str().unwrap()];
    if binary {
        args.push("--binary");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_armfw"))
        .args(&args)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    std::fs::read(out).unwrap()
}

#[test]
fn every_bad_input_is_one_line_exit_2_and_changes_nothing() {
    let d = scratch();
    let json = saved(&d, "state.json", false);
    let bin = saved(&d, "state.bin", true);
    let text = String::from_utf8(json.clone()).unwrap();

    let missing = d.join("missing.json").to_str().unwrap().to_string();
    let folder = d.to_str().unwrap().to_string();
    let nothing = d.join("nothing").to_str().unwrap().to_string();
    let good = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/psci_version_default.json"
    );
    let empty = write(&d, "empty.json", b"");
    let not_json = write(&d, "not_json.json", b"{ nope");
    let not_utf8 = write(&d, "not_utf8.json", &[0xff, 0xfe, 0x00, 0x7b]);
    let scenario_bad_field = write(
        &d,
        "bad_field.json",
        br#"{"name": "bad_field", "vm": {"vcpus": 1}, "steps": [], "extra": 1}"#,
    );
    let profile_bad_field = write(
        &d,
        "bad_profile.json",
        br#"{"format": "armfw-profile/1", "name": "x", "kernel": "6.12.0", "cpu": "max"}"#,
    );
    let truncated_bin = write(&d, "truncated.bin", &bin[..bin.len() / 2]);
    let truncated_json = write(&d, "truncated.json", &json[..json.len() / 2]);
    let bad_checksum = write(
        &d,
        "checksum.json",
        text.replacen("\"0x10001\"", "\"0x10000\"", 1).as_bytes(),
    );
    let mut flipped = bin.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    let flipped = write(&d, "flipped.bin", &flipped);
    let out_file = write(&d, "keep.json", b"precious");
    // Hostile files (issue 11): too big, deeply nested, duplicate keys, profiles no real host
    // reports, profiles whose state files `check` would refuse.
    let huge = d.join("huge.json");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len((32 << 20) + 1)
        .unwrap();
    let huge = huge.to_str().unwrap().to_string();
    let deep = write(
        &d,
        "deep.json",
        ("[".repeat(50_000) + &"]".repeat(50_000)).as_bytes(),
    );
    let dup_state = write(
        &d,
        "dup_state.json",
        text.replacen("\"vm\": {", "\"vm\": {\n    \"psci_0_2\": false,", 1)
            .as_bytes(),
    );
    let profile_text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../armfw/profiles/linux-6.1.192-max.json"
    ))
    .unwrap();
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value = serde_json::from_str(&profile_text).unwrap();
        f(&mut v);
        v.to_string()
    };
    let dup_profile = write(
        &d,
        "dup_profile.json",
        profile_text
            .replacen(
                "\"cpu\": \"max\",",
                "\"cpu\": \"max\", \"cpu\": \"other\",",
                1,
            )
            .as_bytes(),
    );
    let dup_scenario = write(
        &d,
        "dup.json",
        br#"{"name": "dup", "steps": [], "steps": []}"#,
    );
    let no_psci_0_2 = write(
        &d,
        "no_psci_0_2.json",
        edit(&|v| v["capabilities"]["psci_0_2"] = false.into()).as_bytes(),
    );
    let old_filter = write(
        &d,
        "old_filter.json",
        edit(&|v| v["capabilities"]["smccc_filter"] = true.into()).as_bytes(),
    );
    let long_name = write(
        &d,
        "long_name.json",
        edit(&|v| v["name"] = "x".repeat(300).into()).as_bytes(),
    );
    let out_of_order = write(
        &d,
        "out_of_order.json",
        edit(&|v| v["registers"].as_array_mut().unwrap().swap(0, 1)).as_bytes(),
    );
    let no_folder = d.join("no/such/state.json").to_str().unwrap().to_string();

    let cases: Vec<(Vec<&str>, &str)> = vec![
        // sim
        (vec!["sim", &missing], "missing.json"),
        (vec!["sim", &empty], "not JSON"),
        (vec!["sim", &not_json], "not JSON"),
        (vec!["sim", &not_utf8], "not_utf8.json"),
        (vec!["sim", &scenario_bad_field], "extra"),
        (
            vec!["sim", "--profile", "linux-0.0-none", good],
            "linux-0.0-none",
        ),
        (
            vec!["sim", "--profile", &profile_bad_field, good],
            "bad_profile.json",
        ),
        (vec!["sim", "--backend", "qemu", good], "qemu"),
        (vec!["sim", good, &not_json], "not_json.json"),
        (vec!["sim", &nothing], "nothing"),
        // regs, profiles, probe
        (
            vec!["regs", "--profile", "linux-0.0-none"],
            "linux-0.0-none",
        ),
        (vec!["regs", "--profile", &not_json], "not JSON"),
        (vec!["regs", "--jsn"], "--jsn"),
        (vec!["profiles", "extra"], "extra"),
        // check
        (
            vec!["check", "--state", &missing, "--to", HOST],
            "cannot read",
        ),
        (
            vec!["check", "--state", &folder, "--to", HOST],
            "cannot read",
        ),
        (vec!["check", "--state", &empty, "--to", HOST], "not"),
        (
            vec!["check", "--state", &truncated_bin, "--to", HOST],
            "truncated",
        ),
        (
            vec!["check", "--state", &truncated_json, "--to", HOST],
            "not JSON",
        ),
        (
            vec!["check", "--state", &bad_checksum, "--to", HOST],
            "checksum",
        ),
        (vec!["check", "--state", &flipped, "--to", HOST], "checksum"),
        (vec!["check", "--state", &not_utf8, "--to", HOST], "not"),
        (
            vec!["check", "--from", "linux-0.0-none", "--to", HOST],
            "linux-0.0-none",
        ),
        (
            vec!["check", "--from", HOST, "--to", &profile_bad_field],
            "bad_profile.json",
        ),
        (vec!["check", "--to", HOST], "required"),
        // save: unknown register, bad values, values KVM refuses; the output file is kept
        (
            vec![
                "save",
                "--profile",
                HOST,
                "--set",
                "NO_SUCH_REG=1",
                "-o",
                &out_file,
            ],
            "NO_SUCH_REG",
        ),
        (
            vec![
                "save",
                "--profile",
                HOST,
                "--set",
                "STD_BMAP",
                "-o",
                &out_file,
            ],
            "STD_BMAP",
        ),
        (
            vec![
                "save",
                "--profile",
                HOST,
                "--set",
                "STD_BMAP=zero",
                "-o",
                &out_file,
            ],
            "zero",
        ),
        (
            vec![
                "save",
                "--profile",
                HOST,
                "--set",
                "STD_BMAP=0x2",
                "-o",
                &out_file,
            ],
            "EINVAL",
        ),
        (
            vec![
                "save",
                "--profile",
                HOST,
                "--psci-version",
                "1.3",
                "-o",
                &out_file,
            ],
            "EINVAL",
        ),
        (
            vec!["save", "--profile", HOST, "--vcpus", "0", "-o", &out_file],
            "vcpus",
        ),
        (
            vec![
                "save",
                "--profile",
                HOST,
                "--vcpus",
                "many",
                "-o",
                &out_file,
            ],
            "many",
        ),
        (
            vec!["save", "--profile", "linux-0.0-none", "-o", &out_file],
            "linux-0.0-none",
        ),
        // hostile files: size, nesting, duplicate keys (with their path)
        (vec!["check", "--state", &huge, "--to", HOST], "too big"),
        (vec!["sim", &huge], "too big"),
        (vec!["regs", "--profile", &huge], "too big"),
        (
            vec!["check", "--state", "/dev/zero", "--to", HOST],
            "not a regular file",
        ),
        (vec!["regs", "--profile", "/dev/zero"], "not a regular file"),
        (vec!["sim", "/dev/zero"], "not a regular file"),
        (
            vec!["check", "--state", &deep, "--to", HOST],
            "recursion limit",
        ),
        (vec!["regs", "--profile", &deep], "recursion limit"),
        (vec!["sim", &deep], "recursion limit"),
        (
            vec!["check", "--state", &dup_state, "--to", HOST],
            "vm.psci_0_2: duplicate key",
        ),
        (
            vec!["regs", "--profile", &dup_profile],
            "cpu: duplicate key",
        ),
        (vec!["sim", &dup_scenario], "steps: duplicate key"),
        // profiles no real host reports, and profiles whose state `check` would refuse
        (
            vec!["regs", "--profile", &no_psci_0_2],
            "capabilities.psci_0_2",
        ),
        (
            vec!["save", "--profile", &old_filter, "-o", &out_file],
            "the SMCCC filter is new in 6.4",
        ),
        (
            vec!["save", "--profile", &long_name, "-o", &out_file],
            "name: longer than 256 bytes",
        ),
        (
            vec!["save", "--profile", &out_of_order, "-o", &out_file],
            "registers[1]",
        ),
        // save: a value the --baseline pool does not share; a folder that does not exist
        (
            vec![
                "save",
                "--profile",
                "linux-7.2.13-max",
                "--baseline",
                HOST,
                "--baseline",
                "linux-7.2.13-max",
                "--psci-version",
                "1.3",
                "-o",
                &out_file,
            ],
            "--outside-baseline",
        ),
        (
            vec![
                "save",
                "--profile",
                HOST,
                "--outside-baseline",
                "-o",
                &out_file,
            ],
            "--baseline",
        ),
        (
            vec!["save", "--profile", HOST, "-o", &no_folder],
            "cannot write",
        ),
        (
            vec!["save", "--profile", HOST, "-o", "/dev/full"],
            "No space left",
        ),
        // a mistyped profile name gets the closest built-in one
        (
            vec!["regs", "--profile", "linux-6.12.117-mx"],
            "did you mean \"linux-6.12.117-max\"?",
        ),
        (vec!["simm"], "a similar subcommand exists: 'sim'"),
        // baseline
        (vec!["baseline", "linux-0.0-none"], "linux-0.0-none"),
        (vec!["baseline", &not_json], "not JSON"),
        (vec!["baseline"], "required"),
        // no command, unknown command
        (vec![], "no command"),
        (vec!["migrate"], "migrate"),
    ];
    let before: Vec<(String, Vec<u8>)> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    for (args, needle) in &cases {
        let o = Command::new(env!("CARGO_BIN_EXE_armfw"))
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?} printed on stdout");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("armfw: "), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: {err:?} should name {needle:?}"
        );
        let parts: Vec<&str> = err.trim_end().split(": ").collect();
        for k in 1..=parts.len() / 2 {
            for w in parts.windows(2 * k) {
                assert_ne!(w[..k], w[k..], "{args:?}: {err:?} says it twice");
            }
        }
    }
    let after: Vec<(String, Vec<u8>)> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    assert_eq!(before, after, "a bad input changed a file");
}

//! One validation story: what `save` writes `check` reads; `save` says what it did not store
//! and refuses what breaks its `--baseline` pool; names and files are told apart.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const BIN: &str = env!("CARGO_BIN_EXE_armfw");
const M612: &str = "linux-6.12.117-max";
const M72: &str = "linux-7.2.13-max";

fn scratch() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "armfw-validation-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn armfw(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn a_value_kvm_accepts_without_storing_is_reported() {
    let d = scratch();
    let out = d.join("s.json");
    let o = armfw(&[
        "save",
        "--profile",
        M612,
        "--set",
        "SMCCC_ARCH_WORKAROUND_1=0x1",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("--set SMCCC_ARCH_WORKAROUND_1=0x1: linux-6.12.117-max accepts it but stores nothing; SMCCC_ARCH_WORKAROUND_1 reads 0x2"),
        "{e}"
    );
    // A value that is stored says nothing.
    let o = armfw(&[
        "save",
        "--profile",
        M612,
        "--set",
        "STD_BMAP=0x0",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success() && o.stderr.is_empty(), "{o:?}");
    // And what save wrote, check reads.
    let o = armfw(&["check", "--state", out.to_str().unwrap(), "--to", M612]);
    assert_ne!(o.status.code(), Some(2), "{o:?}");
}

#[test]
fn a_psci_version_outside_the_baseline_pool_needs_outside_baseline() {
    let d = scratch();
    let out = d.join("s.json");
    let base = [
        "save",
        "--profile",
        M72,
        "--baseline",
        M612,
        "--baseline",
        M72,
        "--psci-version",
        "1.3",
        "-o",
        out.to_str().unwrap(),
    ];
    let o = armfw(&base);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr(&o).contains(
        "not offered by every host of the --baseline pool (they all offer 0.2, 1.0, 1.1)"
    ));
    assert!(!out.exists());
    let mut insist = base.to_vec();
    insist.push("--outside-baseline");
    let o = armfw(&insist);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(stderr(&o).contains("saved as asked"));
    // The saved VM indeed cannot move to 6.12.
    let o = armfw(&["check", "--state", out.to_str().unwrap(), "--to", M612]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    // A bitmap bit outside the pool's common bits is refused the same way.
    let o = armfw(&[
        "save",
        "--profile",
        M72,
        "--baseline",
        M612,
        "--baseline",
        M72,
        "--set",
        "VENDOR_HYP_BMAP_2=0x1",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr(&o).contains("--outside-baseline"), "{o:?}");
}

#[test]
fn a_file_named_like_a_builtin_profile_does_not_shadow_it() {
    let d = scratch();
    std::fs::write(d.join(M612), "not a profile").unwrap();
    let o = Command::new(BIN)
        .current_dir(&d)
        .args(["regs", "--profile", M612])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert!(String::from_utf8(o.stdout).unwrap().starts_with(M612));
    // A bare name that is a file, not a built-in: the error says how to read the file.
    std::fs::write(d.join("mine"), "{}").unwrap();
    let o = Command::new(BIN)
        .current_dir(&d)
        .args(["regs", "--profile", "mine"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("to read the file mine, give ./mine"),
        "{o:?}"
    );
    let o = Command::new(BIN)
        .current_dir(&d)
        .args(["regs", "--profile", "./mine"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("./mine: "), "{o:?}");
}

#[test]
fn every_builtin_saves_a_state_check_reads() {
    let d = scratch();
    let doc: serde_json::Value =
        serde_json::from_slice(&armfw(&["profiles", "--json"]).stdout).unwrap();
    for p in doc["profiles"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        for binary in [false, true] {
            let out = d.join(format!("{name}-{binary}"));
            let mut args = vec![
                "save",
                "--profile",
                name,
                "--vcpus",
                "4",
                "-o",
                out.to_str().unwrap(),
            ];
            if binary {
                args.push("--binary");
            }
            assert!(armfw(&args).status.success());
            for to in [M612, M72] {
                let o = armfw(&["check", "--state", out.to_str().unwrap(), "--to", to]);
                assert_ne!(o.status.code(), Some(2), "{name} -> {to}: {o:?}");
            }
        }
    }
}

#[test]
fn completions_and_man_pages_come_from_the_same_definitions() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let o = armfw(&["completions", shell]);
        assert!(o.status.success(), "{shell}: {o:?}");
        let text = String::from_utf8(o.stdout).unwrap();
        for cmd in ["sim", "check", "baseline", "save"] {
            assert!(text.contains(cmd), "{shell} lacks {cmd}");
        }
    }
    let o = armfw(&["man"]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.starts_with(".ie"), "{}", &text[..40]);
    for page in ["armfw-check", "armfw-save", "armfw-baseline", "Exit codes"] {
        assert!(text.contains(page), "man lacks {page}");
    }
    // Every command's help states its exit codes.
    for cmd in [
        "sim",
        "regs",
        "profiles",
        "probe",
        "save",
        "check",
        "baseline",
        "completions",
        "man",
    ] {
        let o = armfw(&[cmd, "--help"]);
        let text = String::from_utf8(o.stdout).unwrap();
        assert!(text.contains("Exit codes"), "{cmd} --help: {text}");
        assert!(text.contains("141"), "{cmd} --help: {text}");
    }
}

//! What armfw writes: a full disk, a closed pipe, a file that existed, a terminal.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

const HOST: &str = "linux-6.12.117-max";
const BIN: &str = env!("CARGO_BIN_EXE_armfw");

fn scratch() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "armfw-writes-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn stderr_line(o: &Output) -> String {
    let e = String::from_utf8(o.stderr.clone()).unwrap();
    assert_eq!(e.lines().count(), 1, "one line on stderr: {e:?}");
    e
}

/// The files in `dir` (to show no temporary file was left).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_full_standard_output_is_one_line_and_exit_2() {
    for args in [
        &["save", "--profile", HOST][..],
        &["save", "--profile", HOST, "--binary"],
        &["profiles"],
        &["regs", "--json"],
        &["check", "--from", HOST, "--to", HOST],
        &["baseline", HOST, "--json"],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let o = Command::new(BIN)
            .args(args)
            .stdout(Stdio::from(full))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        let e = stderr_line(&o);
        assert!(
            e.starts_with("armfw: cannot write standard output: No space left on device"),
            "{args:?}: {e}"
        );
    }
}

#[test]
fn save_to_a_full_device_file_is_one_line_and_exit_2() {
    let o = Command::new(BIN)
        .args(["save", "--profile", HOST, "-o", "/dev/full"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr_line(&o).contains("/dev/full: cannot write: No space left on device"));
}

#[test]
fn a_closed_pipe_ends_quietly_with_141() {
    let d = scratch();
    let state = d.join("state.json");
    let o = Command::new(BIN)
        .args(["save", "--profile", HOST, "-o", state.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success());
    let scenarios = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios");
    for args in [
        &["sim", scenarios][..],
        &["profiles"],
        &["profiles", "--json"],
        &["regs"],
        &["regs", "--json"],
        &["check", "--state", state.to_str().unwrap(), "--to", HOST],
        &["check", "--from", HOST, "--to", HOST, "--json"],
        &["baseline", HOST, "linux-7.2.13-max"],
        &["save", "--profile", HOST],
    ] {
        // The reader is gone before armfw writes anything: every write gets EPIPE.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = Command::new(BIN)
            .args(args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(141), "{args:?}: {o:?}");
        assert!(o.stderr.is_empty(), "{args:?}: {o:?}");
    }
}

#[test]
fn save_replaces_a_file_whole_and_keeps_its_permissions() {
    let d = scratch();
    let out = d.join("state.json");
    std::fs::write(&out, "old").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o640)).unwrap();
    let o = Command::new(BIN)
        .args(["save", "--profile", HOST, "-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with('{') && text.ends_with("}\n"), "{text}");
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    assert_eq!(names(&d), ["state.json"]);
}

#[test]
fn save_into_a_missing_folder_changes_nothing() {
    let d = scratch();
    let out = d.join("no/such/state.json");
    let o = Command::new(BIN)
        .args(["save", "--profile", HOST, "-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr_line(&o).contains("state.json: cannot write"));
    assert!(names(&d).is_empty());
}

/// A real ENOSPC on a file system: a one-page tmpfs, mounted in a private mount namespace
/// (needs root and `unshare`; skipped otherwise), holding a good file that armfw is asked to
/// replace. The old file is intact, no temporary file is left, one line, exit 2.
#[test]
fn save_onto_a_full_file_system_leaves_the_old_file_intact() {
    let d = scratch();
    let mnt = d.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=4k tmpfs {m} || exit 99; \
         head -c 4000 /dev/zero | tr '\\0' x > {m}/state.json || exit 99; \
         {bin} save --profile {HOST} -o {m}/state.json; echo \"rc=$?\" >&2; \
         ls -a {m} >&2; md5sum < {m}/state.json >&2",
        m = mnt.display(),
        bin = BIN
    );
    let o = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output();
    let Ok(o) = o else {
        eprintln!("skipped: no unshare");
        return;
    };
    if o.status.code() == Some(99) || !o.status.success() {
        eprintln!("skipped: cannot mount a tmpfs here: {o:?}");
        return;
    }
    let e = String::from_utf8(o.stderr).unwrap();
    let lines: Vec<&str> = e.lines().collect();
    assert!(
        lines[0].starts_with("armfw: ")
            && lines[0].contains("state.json: cannot write: No space left on device"),
        "{e}"
    );
    assert_eq!(lines[1], "rc=2", "{e}");
    // ls -a: ".", "..", "state.json" and nothing else.
    assert_eq!(&lines[2..5], [".", "..", "state.json"], "{e}");
    let expect = Command::new("sh")
        .args(["-c", "head -c 4000 /dev/zero | tr '\\0' x | md5sum"])
        .output()
        .unwrap();
    assert_eq!(
        lines[5],
        String::from_utf8(expect.stdout).unwrap().trim_end(),
        "{e}"
    );
}

/// Binary output to a terminal is refused unless --force (a terminal from `script`; skipped
/// without it).
#[test]
fn binary_output_to_a_terminal_needs_force() {
    let run = |extra: &str| {
        Command::new("script")
            .args([
                "-qec",
                &format!("{BIN} save --profile {HOST} --binary {extra}"),
                "/dev/null",
            ])
            .stdin(Stdio::null())
            .output()
    };
    let Ok(o) = run("") else {
        eprintln!("skipped: no script");
        return;
    };
    let all = String::from_utf8_lossy(&o.stdout).into_owned();
    if all.contains("not a tty") || all.contains("No such device") {
        eprintln!("skipped: no terminal: {all}");
        return;
    }
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(all.contains("standard output is a terminal"), "{all}");
    let o = run("--force").unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
}

/// A real SIGKILL at any moment of `save -o`: the file is always either the old one or a
/// whole new state, never truncated (a kill can leave the temporary file behind).
#[test]
fn a_kill_during_save_never_leaves_a_truncated_file() {
    use std::os::unix::process::ExitStatusExt;
    let d = scratch();
    let out = d.join("state.json");
    std::fs::write(&out, "old").unwrap();
    let mut killed = 0;
    for i in 0..40u64 {
        let mut child = Command::new(BIN)
            .args([
                "save",
                "--profile",
                HOST,
                "--vcpus",
                "512",
                "-o",
                out.to_str().unwrap(),
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_micros(200 * (i % 20)));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.signal() == Some(9) {
            killed += 1;
        }
        let text = std::fs::read_to_string(&out).unwrap();
        if text != "old" {
            assert!(
                text.ends_with("}\n"),
                "truncated after kill {i}: {} bytes",
                text.len()
            );
            serde_json::from_str::<serde_json::Value>(&text).unwrap();
        }
    }
    assert!(killed > 0, "no save was killed");
}

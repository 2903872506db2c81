//! Hostile inputs: files too big, endless streams, FIFOs and devices, standard input, deep
//! nesting, duplicate keys and terminal escape sequences. Each gives exit 2 with one line on
//! stderr naming the problem (or, for escapes, a report that shows them escaped), and changes
//! no file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const HOST: &str = "linux-6.12.117-max";
const BIN: &str = env!("CARGO_BIN_EXE_armfw");
/// docs/cli.md: the input cap.
const CAP: u64 = 32 << 20;
/// [`CAP`] as a length.
const CAP_LEN: usize = 32 << 20;

fn scratch() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "armfw-limits-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run(args: &[&str], stdin: Stdio) -> Output {
    Command::new(BIN).args(args).stdin(stdin).output().unwrap()
}

/// Exit 2, nothing on stdout, one line on stderr containing every needle.
fn assert_refused(o: &Output, needles: &[&str]) {
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(o.stdout.is_empty(), "{o:?}");
    let e = String::from_utf8(o.stderr.clone()).unwrap();
    assert_eq!(e.lines().count(), 1, "{e:?}");
    assert!(e.starts_with("armfw: "), "{e:?}");
    for n in needles {
        assert!(e.contains(n), "{n:?} not in {e:?}");
    }
}

fn saved(d: &Path) -> PathBuf {
    let p = d.join("state.json");
    let o = run(&["save", "--profile", HOST, "-o", s(&p)], Stdio::null());
    assert!(o.status.success(), "{o:?}");
    p
}

/// The bytes of every file in `d`, to show nothing changed.
fn contents(d: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn files_over_the_cap_are_refused_before_reading() {
    let d = scratch();
    let huge = d.join("huge.json");
    // Sparse: 100 MB that would take 2 GB to parse; refused from its size alone.
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    let over = d.join("over.json");
    std::fs::write(&over, vec![b' '; CAP_LEN + 1]).unwrap();
    let before = contents(&d);
    for (args, name) in [
        (
            vec!["check", "--state", s(&huge), "--to", HOST],
            "huge.json",
        ),
        (
            vec!["check", "--state", s(&over), "--to", HOST],
            "over.json",
        ),
        (vec!["check", "--from", s(&huge), "--to", HOST], "huge.json"),
        (vec!["regs", "--profile", s(&huge)], "huge.json"),
        (vec!["sim", s(&huge)], "huge.json"),
        (vec!["baseline", HOST, s(&over)], "over.json"),
        (vec!["save", "--profile", s(&huge)], "huge.json"),
    ] {
        let t = Instant::now();
        let o = run(&args, Stdio::null());
        assert_refused(&o, &[name, "too big", "the limit is 33554432"]);
        assert!(t.elapsed() < Duration::from_secs(5));
    }
    assert_eq!(contents(&d), before);
}

#[test]
fn devices_and_fifos_are_refused_without_blocking() {
    let d = scratch();
    let fifo = d.join("fifo.json");
    let made = Command::new("mkfifo").arg(&fifo).status();
    let mut paths = vec![PathBuf::from("/dev/zero"), PathBuf::from("/dev/urandom")];
    if made.is_ok_and(|s| s.success()) {
        paths.push(fifo);
    }
    for p in &paths {
        for args in [
            vec!["check", "--state", s(p), "--to", HOST],
            vec!["regs", "--profile", s(p)],
            vec!["sim", s(p)],
        ] {
            let mut child = Command::new(BIN)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let t = Instant::now();
            while child.try_wait().unwrap().is_none() {
                if t.elapsed() > Duration::from_secs(10) {
                    child.kill().unwrap();
                    panic!("{args:?} blocked");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let o = child.wait_with_output().unwrap();
            assert_refused(&o, &[s(p), "not a regular file"]);
        }
    }
}

#[test]
fn standard_input_is_read_with_the_same_bound() {
    let d = scratch();
    let state = saved(&d);
    // A state, a profile and a scenario from `-`.
    let o = run(
        &["check", "--state", "-", "--to", HOST, "--json"],
        Stdio::from(std::fs::File::open(&state).unwrap()),
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let profile = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../armfw/profiles/linux-6.12.117-max.json"
    );
    let o = run(
        &["regs", "--profile", "-"],
        Stdio::from(std::fs::File::open(profile).unwrap()),
    );
    assert!(o.status.success(), "{o:?}");
    assert!(String::from_utf8(o.stdout).unwrap().starts_with(HOST));
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/psci_version_default.json"
    );
    let o = run(
        &["sim", "--profile", HOST, "-"],
        Stdio::from(std::fs::File::open(scenario).unwrap()),
    );
    assert!(o.status.success(), "{o:?}");
    // An endless standard input stops at the cap.
    let o = run(
        &["check", "--state", "-", "--to", HOST],
        Stdio::from(std::fs::File::open("/dev/zero").unwrap()),
    );
    assert_refused(&o, &["-: cannot read: too big"]);
}

/// Peak memory stays bounded: with the address space limited to 32 times the cap, an endless
/// input and a file just under the cap still end with the one-line error, not an abort
/// (`prlimit` from util-linux; skipped without it).
#[test]
fn memory_stays_within_a_small_multiple_of_the_cap() {
    let d = scratch();
    let state = saved(&d);
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    doc["source"]["profile"] = "x".repeat(CAP_LEN - 4096).into();
    let big = d.join("big.json");
    std::fs::write(&big, doc.to_string()).unwrap();
    assert!(std::fs::metadata(&big).unwrap().len() <= CAP);
    let limit = format!("--as={}", 32 * CAP);
    let Ok(probe) = Command::new("prlimit")
        .args([&limit, BIN, "profiles"])
        .output()
    else {
        eprintln!("skipped: no prlimit");
        return;
    };
    assert!(probe.status.success(), "{probe:?}");
    let o = Command::new("prlimit")
        .args([&limit, BIN, "check", "--state", s(&big), "--to", HOST])
        .output()
        .unwrap();
    assert_refused(&o, &["source.profile: must be 1 to 256 bytes"]);
    let o = Command::new("prlimit")
        .args([&limit, BIN, "check", "--state", "-", "--to", HOST])
        .stdin(Stdio::from(std::fs::File::open("/dev/zero").unwrap()))
        .output()
        .unwrap();
    assert_refused(&o, &["too big"]);
}

#[test]
fn deep_nesting_and_duplicate_keys_are_refused_with_their_path() {
    let d = scratch();
    let state = saved(&d);
    let text = std::fs::read_to_string(&state).unwrap();
    let deep = d.join("deep.json");
    std::fs::write(&deep, "[".repeat(100_000) + &"]".repeat(100_000)).unwrap();
    let dup_state = d.join("dup_state.json");
    std::fs::write(
        &dup_state,
        text.replacen("\"source\": {", "\"source\": {\n    \"profile\": \"x\",", 1),
    )
    .unwrap();
    let profile = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../armfw/profiles/linux-6.12.117-max.json"
    ))
    .unwrap();
    let dup_profile = d.join("dup_profile.json");
    std::fs::write(
        &dup_profile,
        profile.replacen(
            "\"cpu\": \"max\",",
            "\"cpu\": \"max\",\n  \"cpu\": \"max\",",
            1,
        ),
    )
    .unwrap();
    let dup_scenario = d.join("dup.json");
    std::fs::write(
        &dup_scenario,
        r#"{"name": "dup", "steps": [], "steps": []}"#,
    )
    .unwrap();
    let before = contents(&d);
    for (args, needles) in [
        (
            vec!["check", "--state", s(&deep), "--to", HOST],
            vec!["deep.json", "recursion limit"],
        ),
        (
            vec!["regs", "--profile", s(&deep)],
            vec!["deep.json", "recursion limit"],
        ),
        (vec!["sim", s(&deep)], vec!["deep.json", "recursion limit"]),
        (
            vec!["check", "--state", s(&dup_state), "--to", HOST],
            vec!["dup_state.json", "source.profile: duplicate key"],
        ),
        (
            vec!["regs", "--profile", s(&dup_profile)],
            vec!["dup_profile.json", "cpu: duplicate key"],
        ),
        (
            vec!["baseline", HOST, s(&dup_profile)],
            vec!["dup_profile.json", "cpu: duplicate key"],
        ),
        (
            vec!["sim", s(&dup_scenario)],
            vec!["dup.json", "steps: duplicate key"],
        ),
    ] {
        assert_refused(&run(&args, Stdio::null()), &needles);
    }
    assert_eq!(contents(&d), before);
}

#[test]
fn escape_sequences_in_a_state_are_shown_escaped() {
    let d = scratch();
    let state = saved(&d);
    let (mut source, vm, vcpus) = armfw::Snapshot::load(&std::fs::read(&state).unwrap())
        .unwrap()
        .into_parts();
    source.kernel = "6.12\u{1b}[2J\u{1b}[31m\r\nforged line\u{7}".to_string();
    let snapshot = armfw::Snapshot::new(source, vm, vcpus).unwrap();
    let evil = d.join("evil.json");
    let text = serde_json::to_string_pretty(&snapshot.to_json()).unwrap();
    let loaded = armfw::Snapshot::load(text.as_bytes());
    let Ok(_) = loaded else {
        // The format refuses control characters itself: nothing reaches a terminal.
        eprintln!("the snapshot format refuses control characters");
        return;
    };
    std::fs::write(&evil, &text).unwrap();
    let o = run(&["check", "--state", s(&evil), "--to", HOST], Stdio::null());
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
    let first = out.lines().next().unwrap();
    assert!(
        first.contains(r"6.12\u{1b}[2J\u{1b}[31m\r\nforged line\u{7}"),
        "{first}"
    );
    // The JSON report keeps the text as it is (JSON escapes it).
    let o = run(
        &["check", "--state", s(&evil), "--to", HOST, "--json"],
        Stdio::null(),
    );
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["source"]["kernel"], snapshot.source().kernel.as_str());
    // An error message never carries a raw escape either.
    let o = run(
        &["check", "--state", s(&evil), "--to", "nope\u{1b}[31m"],
        Stdio::null(),
    );
    assert_refused(&o, &["nope"]);
    assert!(!o.stderr.contains(&0x1b), "{o:?}");
}

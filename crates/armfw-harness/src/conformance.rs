// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The two halves of the conformance harness (`conformance/run`).
//!
//! - **In the emulated host** (`armfw-harness` as `/init`, or `armfw-harness
//!   conformance-guest` on any arm64 host with /dev/kvm): probe the host, run every scenario
//!   on real KVM and on the model with the probed profile, compare, and print one record
//!   ([`ConformanceRecord`]) per result.
//! - **On the machine that booted the hosts** (`armfw-harness conformance-report`): read
//!   each host's records, print the table, a diff for each mismatch and the count line, and
//!   optionally record the real results in the repository.
//!
//! Scenario files are grouped in sets: the folders of the scenario root, `project` first
//! (the repository's own scenarios, whose real results are recorded), then the others in
//! name order (`--scenarios DIR` of conformance/run).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use armfw::Profile;
use armfw_harness::records::{ConformanceRecord, Mismatch, ScenarioRecord, Swap};
use serde_json::Value;

use crate::error::{Context, Result, bail};

/// The set holding the repository's own scenarios.
pub const PROJECT_SET: &str = "project";

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
pub use guest::guest;

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
mod guest {
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;

    use armfw::scenario::{
        self, Backend, FirmwareMode, ModelBackend, ResultDocument, Scenario, Step, StepKind,
    };
    use armfw_harness::records::{ConformanceRecord, Mismatch, ScenarioRecord, Swap, Writer};
    use armfw_kvm::init;
    use armfw_kvm::scenario::KvmBackend;
    use serde_json::Value;

    use crate::error::{Context, Result};

    type Records = Writer<std::io::Stdout>;

    /// The scenario sets under `root`: (set name, its `*.json` files in name order), `project`
    /// first.
    pub fn scenario_sets(root: &Path) -> Result<Vec<(String, Vec<PathBuf>)>> {
        let mut sets = Vec::new();
        let rd =
            std::fs::read_dir(root).with_context(|| format!("{}: cannot read", root.display()))?;
        for e in rd.filter_map(|e| e.ok()) {
            let path = e.path();
            if !path.is_dir() {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            sets.push((name, super::json_files(&path)?));
        }
        sets.sort_by(|a, b| {
            (a.0 != super::PROJECT_SET, &a.0).cmp(&(b.0 != super::PROJECT_SET, &b.0))
        });
        Ok(sets)
    }

    /// One scenario's comparison: where the real and the model's documents differ.
    pub fn compare(kvm: &ResultDocument, model: &ResultDocument) -> Vec<Mismatch> {
        kvm.differences(model)
            .into_iter()
            .map(|m| Mismatch {
                step: m.step,
                kvm: serde_json::from_str::<Value>(&m.ours).unwrap_or(Value::Null),
                model: serde_json::from_str::<Value>(&m.theirs).unwrap_or(Value::Null),
            })
            .collect()
    }

    /// The swap test of one scenario: the same steps with armfw's userspace firmware, against
    /// `kernel` (the document of KVM's own firmware); each mismatch's `kvm` is the kernel's
    /// answer, `model` armfw's.
    fn swapped(s: &Scenario, kernel: &ResultDocument, kvm: &mut KvmBackend) -> Swap {
        let skipped = |why: &str| Swap::Skipped {
            skipped: why.to_string(),
        };
        let mut s = s.clone();
        match &mut s.vm {
            Err(_) => return skipped("malformed vm"),
            Ok(vm) if vm.firmware == FirmwareMode::Armfw => {
                return skipped("already runs with armfw's firmware");
            }
            Ok(vm) => vm.firmware = FirmwareMode::Armfw,
        }
        if s.steps.iter().any(|st| {
            matches!(
                st,
                Ok(Step {
                    kind: StepKind::SmcccFilter { .. },
                    ..
                })
            )
        }) {
            return skipped("programs the SMCCC filter itself");
        }
        let doc = scenario::run(&s, kvm as &mut dyn Backend);
        if doc.target["firmware"] != "armfw" {
            let why = &doc.target["firmware"];
            return skipped(&why.as_str().map_or_else(|| why.to_string(), str::to_string));
        }
        Swap::Ran {
            armfw: doc.to_json(),
            mismatches: compare(kernel, &doc),
        }
    }

    /// Probe this host, run every scenario set under `root` on KVM and on the model with the
    /// probed profile, and print the records. With `swap`, also run each scenario with
    /// `"firmware": "armfw"` (armfw's userspace firmware on KVM) and compare it with KVM's
    /// own firmware.
    pub fn guest(root: &Path, swap: bool) -> ExitCode {
        let mut rec = Writer::stdout();
        let ok = run(root, swap, &mut rec).unwrap_or_else(|e| {
            rec.emit(&ConformanceRecord::Error {
                error: crate::cmdline::one_line(&e.to_string()),
            });
            false
        });
        rec.end();
        if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    }

    fn run(root: &Path, swap: bool, rec: &mut Records) -> Result<bool> {
        let cpu = init::cmdline_value("armfw.cpu");
        let profile = armfw_kvm::probe::probe(cpu.as_deref(), None)?;
        rec.emit(&ConformanceRecord::Profile {
            profile: profile.to_json(),
        });
        let sets = scenario_sets(root)?;
        let mut kvm = KvmBackend::new()?;
        let mut model = ModelBackend::new(&profile);
        let mut all_pass = true;
        for (set, files) in sets {
            for f in files {
                let file = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let parsed = std::fs::read_to_string(&f)
                    .map_err(|e| format!("cannot read: {e}"))
                    .and_then(|text| {
                        let stem = f.file_stem().and_then(|s| s.to_str());
                        scenario::parse(&text, stem).map_err(|e| e.to_string())
                    });
                let mut r = ScenarioRecord {
                    set: set.clone(),
                    file,
                    error: None,
                    kvm: None,
                    model: None,
                    mismatches: Vec::new(),
                    swap: None,
                };
                let s = match parsed {
                    Ok(s) => s,
                    Err(e) => {
                        all_pass = false;
                        r.error = Some(e);
                        rec.emit(&ConformanceRecord::Scenario(Box::new(r)));
                        continue;
                    }
                };
                let real = scenario::run(&s, &mut kvm as &mut dyn Backend);
                let ours = scenario::run(&s, &mut model as &mut dyn Backend);
                r.mismatches = compare(&real, &ours);
                all_pass &= r.mismatches.is_empty();
                if swap {
                    let sw = swapped(&s, &real, &mut kvm);
                    all_pass &=
                        !matches!(&sw, Swap::Ran { mismatches, .. } if !mismatches.is_empty());
                    r.swap = Some(sw);
                }
                r.kvm = Some(real.to_json());
                r.model = Some(ours.to_json());
                rec.emit(&ConformanceRecord::Scenario(Box::new(r)));
            }
        }
        Ok(all_pass)
    }
}

/// The `*.json` files directly in `dir`, in name order.
pub fn json_files(dir: &Path) -> Result<Vec<PathBuf>> {
    crate::cmdline::json_files(dir)
        .with_context(|| format!("{}: cannot read folder", dir.display()))
}

// ------------------------------------------------------------------------------------------
// The report.

/// One host's outcome.
struct Host {
    /// The profile name (`linux-6.12.117-max`), or the label of a host that did not boot.
    name: String,
    kernel: String,
    cpu: String,
    profile: Option<Value>,
    /// Why the host gave no complete results.
    failure: Option<String>,
    /// (set, file) -> record.
    scenarios: BTreeMap<(String, String), ScenarioRecord>,
}

fn read_host(path: &Path) -> Result<Host> {
    let label = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let mut host = Host {
        name: label.clone(),
        kernel: String::new(),
        cpu: String::new(),
        profile: None,
        failure: None,
        scenarios: BTreeMap::new(),
    };
    if path.extension().is_some_and(|x| x == "failed") {
        host.failure = Some(crate::cmdline::one_line(&text));
        if let Some((kernel, cpu)) = label.split_once('_') {
            (host.kernel, host.cpu) = (kernel.to_string(), cpu.to_string());
        }
        return Ok(host);
    }
    for (i, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("{}: line {}: not JSON", path.display(), i + 1))?;
        let r: ConformanceRecord = serde_json::from_value(v)
            .with_context(|| format!("{}: line {}: unknown record", path.display(), i + 1))?;
        match r {
            ConformanceRecord::Profile { profile } => {
                let p = Profile::from_value(&profile)
                    .with_context(|| format!("{}: line {}: profile", path.display(), i + 1))?;
                host.name = p.name().to_string();
                host.kernel = p.kernel().to_string();
                host.cpu = p.cpu().to_string();
                host.profile = Some(profile);
            }
            ConformanceRecord::Scenario(s) => {
                host.scenarios.insert((s.set.clone(), s.file.clone()), *s);
            }
            ConformanceRecord::Error { error } => host.failure = Some(error),
        }
    }
    if host.profile.is_none() && host.failure.is_none() {
        host.failure = Some("no profile record".into());
    }
    Ok(host)
}

/// A scenario file's steps, to show the step a mismatch is about.
fn steps_of(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v.get("steps").and_then(Value::as_array).cloned())
        .unwrap_or_default()
}

fn pretty(v: &Value) -> Result<String> {
    Ok(serde_json::to_string_pretty(v)? + "\n")
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("{}: cannot write", path.display()))
}

/// The diff text of a record's mismatches (both kinds), or `None` if it has none.
fn diff_text(r: &ScenarioRecord, path: &Path) -> Option<String> {
    let sm: &[Mismatch] = match &r.swap {
        Some(Swap::Ran { mismatches, .. }) => mismatches,
        _ => &[],
    };
    if r.mismatches.is_empty() && sm.is_empty() {
        return None;
    }
    let steps = steps_of(path);
    let mut text = String::new();
    let labels = [
        ("", "kvm:  ", "model:"),
        (
            " (firmware swapped)",
            "kernel firmware:",
            "armfw firmware: ",
        ),
    ];
    for (list, (what, a, b)) in [(&r.mismatches[..], labels[0]), (sm, labels[1])] {
        for x in list {
            let i = x.step;
            let step = steps.get(i).map(Value::to_string).unwrap_or_default();
            text.push_str(&format!(
                "  step {i}{what}: {step}\n    {a} {}\n    {b} {}\n",
                x.kvm, x.model
            ));
        }
    }
    Some(text)
}

/// `armfw-harness conformance-report`: see the module docs.
pub fn report(
    sets: &[(String, PathBuf)],
    hosts: &[PathBuf],
    out: Option<&Path>,
    record: Option<&Path>,
) -> Result<ExitCode> {
    // The expected scenario files: every host must answer each of them.
    let mut expected: Vec<(String, String, PathBuf)> = Vec::new();
    for (set, dir) in sets {
        for f in json_files(dir)? {
            let file = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            expected.push((set.clone(), file, f));
        }
    }
    if expected.is_empty() {
        bail!("no scenario files in the sets given");
    }
    let hosts = hosts
        .iter()
        .map(|h| read_host(h))
        .collect::<Result<Vec<_>>>()?;
    if hosts.is_empty() {
        bail!("no host results given");
    }

    let (mut passed, mut failed) = (0usize, 0usize);
    let mut rows = Vec::new();
    let mut diffs = String::new();
    for h in &hosts {
        let (mut p, mut f, mut mismatched) = (0usize, 0usize, 0usize);
        // The swap test (conformance/run --firmware armfw): scenarios run both ways, and
        // the reason the first skipped one was not.
        let (mut swapped, mut served, mut skipped) = (0usize, 0u64, None::<String>);
        for (set, file, path) in &expected {
            let rec = h.scenarios.get(&(set.clone(), file.clone()));
            let problem = match rec {
                _ if h.failure.is_some() && rec.is_none() => None,
                None => Some("no result from the host".to_string()),
                Some(ScenarioRecord { error: Some(e), .. }) => Some(format!("not run: {e}")),
                Some(r) => {
                    match &r.swap {
                        Some(Swap::Ran { armfw, .. }) => {
                            swapped += 1;
                            served += armfw["target"]["calls_served_in_userspace"]
                                .as_u64()
                                .unwrap_or(0);
                        }
                        Some(Swap::Skipped { skipped: why }) => {
                            skipped.get_or_insert_with(|| crate::cmdline::one_line(why));
                        }
                        None => {}
                    }
                    match diff_text(r, path) {
                        None => {
                            p += 1;
                            continue;
                        }
                        Some(text) => {
                            mismatched += 1;
                            Some(text)
                        }
                    }
                }
            };
            f += 1;
            if let Some(text) = problem {
                diffs.push_str(&format!("--- {} {set}/{file}\n", h.name));
                diffs.push_str(&text);
                if !text.ends_with('\n') {
                    diffs.push('\n');
                }
            }
        }
        let mut status = match &h.failure {
            Some(why) => format!("FAILED: {why}"),
            None if f == 0 => "pass".to_string(),
            None if mismatched == f => "MISMATCH".to_string(),
            None if mismatched == 0 => format!("NOT RUN ({f})"),
            None => format!("MISMATCH ({mismatched}), NOT RUN ({})", f - mismatched),
        };
        if swapped > 0 {
            status.push_str(&format!(
                "; armfw firmware: {swapped} scenarios swapped, {served} calls answered in userspace"
            ));
        } else if let Some(why) = skipped {
            status.push_str(&format!("; armfw firmware: not run ({why})"));
        }
        rows.push([
            h.name.clone(),
            h.kernel.clone(),
            h.cpu.clone(),
            p.to_string(),
            f.to_string(),
            status,
        ]);
        passed += p;
        failed += f;
    }

    print_table(&rows);
    if !diffs.is_empty() {
        println!();
        print!("{diffs}");
    }

    for h in &hosts {
        let Some(profile) = &h.profile else { continue };
        if let Some(out) = out {
            let dir = out.join(&h.name);
            write(&dir.join("profile.json"), &pretty(profile)?)?;
            for ((set, file), r) in &h.scenarios {
                if let Some(doc) = &r.kvm {
                    write(&dir.join(set).join(file), &pretty(doc)?)?;
                }
            }
        }
        if let Some(root) = record {
            record_host(root, h, profile)?;
        }
    }

    println!("conformance: {passed} passed, {failed} failed");
    Ok(
        if failed == 0 && hosts.iter().all(|h| h.failure.is_none()) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

/// Writes `crates/armfw/profiles/HOST.json` and `scenarios/expected/HOST/*.json` (the project set's real
/// documents) under `root`, replacing what was recorded for HOST before. A host with a
/// failure or an incomplete project set is not recorded.
fn record_host(root: &Path, h: &Host, profile: &Value) -> Result<()> {
    if h.failure.is_some() {
        return Ok(());
    }
    let docs: Vec<(&String, &Value)> = h
        .scenarios
        .iter()
        .filter(|((set, _), _)| set == PROJECT_SET)
        .filter_map(|((_, file), r)| r.kvm.as_ref().map(|d| (file, d)))
        .collect();
    write(
        &root
            .join("crates/armfw/profiles")
            .join(format!("{}.json", h.name)),
        &pretty(profile)?,
    )?;
    let dir = root.join("scenarios").join("expected").join(&h.name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("{}: cannot clear", dir.display()))?;
    }
    for (file, doc) in docs {
        write(&dir.join(file), &pretty(doc)?)?;
    }
    Ok(())
}

fn print_table(rows: &[[String; 6]]) {
    let head = ["host", "kernel", "cpu", "passed", "failed", "status"];
    let mut w = head.map(str::len);
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 5 {
                s.push_str(c);
            } else if i == 3 || i == 4 {
                s.push_str(&format!("{c:>w$}  ", w = w[i]));
            } else {
                s.push_str(&format!("{c:<w$}  ", w = w[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(head);
    for r in rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]);
    }
}

// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The real-migration harness (`conformance/migrate`): firmware states saved on real KVM
//! hosts and restored on every host, each outcome held against armfw's prediction.
//!
//! Three boots per host, each with `armfw-harness` as `/init` and `armfw.mode=` on the
//! command line (records: [`MigrationRecord`]):
//! - `probe`: the host's profile;
//! - `save`: with the profiles of the whole pool (the `probe` records under
//!   `/armfw/pool/`), two VMs — KVM's defaults (`default`) and the pool baseline applied at
//!   creation (`baseline`) — run the guest-view calls and are saved (`state` records); and
//!   two whole VMs (format 2.0: `whole` without vCPU features, `whole-all` with every
//!   feature the host offers);
//! - `restore`: every saved firmware state (under `/armfw/states/`) is restored into a new
//!   VM under the `strict` policy (every saved register written back, as today's VMMs do)
//!   and the `armfw` policy (armfw's plan); every whole state under the three VMM policies
//!   (`first-refusal`, `write-all`, `qemu`) and armfw's whole-VM plan; each after armfw
//!   predicted the outcome with this host's probed profile (`row` records).
//!
//! `armfw-harness migrations-report` then prints the rows as a markdown table, writes them
//! as JSON, and ends with `migrations: N passed, M failed`. A row passes when the prediction
//! agrees with what KVM did (outcome, and for a failure the operation and errno) and, for a
//! success under `armfw`, the guest sees the same firmware as before the move.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use armfw_harness::records::{MigrationRecord, Row};
use serde_json::{Value, json};

use crate::error::{Context, Result, bail};

/// The row fields, in the report's order.
pub const ROW_FIELDS: [&str; 8] = [
    "from",
    "to",
    "config",
    "policy",
    "predicted",
    "real",
    "detail",
    "guest_view_same",
];

/// Whether a row passes: see the module docs.
pub fn row_passes(row: &Row) -> bool {
    if row.predicted != row.real {
        return false;
    }
    if row.real == "fail" && row.predicted_detail != row.detail {
        return false;
    }
    if row.policy == "armfw" && row.covered == Some(true) && row.real != "ok" {
        // A VM created with the pool's CPU baseline restores on every host it covers.
        return false;
    }
    !(row.real == "ok" && row.policy == "armfw" && row.guest_view_same != true)
}

/// `armfw-harness migrations-report`.
pub fn report(records: &[PathBuf], json_out: Option<&Path>) -> Result<ExitCode> {
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for path in records {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        for (i, line) in text.lines().enumerate() {
            let v: Value = serde_json::from_str(line)
                .with_context(|| format!("{}: line {}: not JSON", path.display(), i + 1))?;
            match serde_json::from_value(v) {
                Ok(MigrationRecord::Row(r)) => rows.push(r),
                Ok(MigrationRecord::Error { error }) => {
                    errors.push(format!("{}: {error}", path.display()));
                }
                Ok(MigrationRecord::Profile { .. }) => {}
                Ok(MigrationRecord::State(_)) | Err(_) => {
                    bail!("{}: line {}: unknown record", path.display(), i + 1)
                }
            }
        }
    }
    if rows.is_empty() && errors.is_empty() {
        bail!("no rows in the records given");
    }
    rows.sort_by(|a, b| {
        (&a.from, &a.to, &a.config, &a.policy).cmp(&(&b.from, &b.to, &b.config, &b.policy))
    });
    println!("| {} | pass |", ROW_FIELDS.join(" | "));
    println!("|{}", "---|".repeat(ROW_FIELDS.len() + 1));
    let (mut passed, mut failed) = (0usize, errors.len());
    let mut out = Vec::new();
    for row in &rows {
        let ok = row_passes(row);
        if ok {
            passed += 1;
        } else {
            failed += 1;
        }
        let r = serde_json::to_value(row)?;
        let cells: Vec<String> = ROW_FIELDS
            .iter()
            .map(|f| match &r[*f] {
                Value::String(s) => s.replace('|', "\\|"),
                Value::Null => "—".into(),
                v => v.to_string(),
            })
            .collect();
        println!(
            "| {} | {} |",
            cells.join(" | "),
            if ok { "yes" } else { "NO" }
        );
        let mut o = serde_json::Map::new();
        for f in ROW_FIELDS {
            o.insert(f.into(), r[f].clone());
        }
        o.insert("predicted_detail".into(), r["predicted_detail"].clone());
        if row.covered.is_some() {
            o.insert("covered".into(), r["covered"].clone());
        }
        o.insert("pass".into(), json!(ok));
        out.push(Value::Object(o));
    }
    for e in &errors {
        println!();
        println!("host failed: {}", crate::cmdline::one_line(e));
    }
    if let Some(p) = json_out {
        let doc = json!({"rows": out, "host_errors": errors});
        std::fs::write(p, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("{}: cannot write", p.display()))?;
    }
    println!();
    println!("migrations: {passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
pub use guest::guest;

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
mod guest {
    use std::path::Path;

    use armfw::Profile;
    use armfw::abi::CpuFeatures;
    use armfw::compat::{self, StrictOutcome, Verdict};
    use armfw::migrate::sequence::{VmmPolicy, Writes};
    use armfw::snapshot::{Snapshot, Source};
    use armfw_harness::records::{MigrationRecord, Row, StateRecord, Writer};
    use armfw_kvm::migrate::{self, RestoreFailure};
    use armfw_kvm::{TestVm, VmSpec};
    use serde_json::{Value, json};

    use crate::error::{Context, Error, Result};

    type Records = Writer<std::io::Stdout>;

    /// The records under `dir` (`*.jsonl`, one JSON value a line), in file-name order.
    fn records_in(dir: &Path) -> Result<Vec<MigrationRecord>> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(dir) else {
            return Ok(out);
        };
        let mut files: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).with_context(|| f.display().to_string())?;
            for line in text.lines() {
                let r: MigrationRecord =
                    serde_json::from_str(line).with_context(|| f.display().to_string())?;
                out.push(r);
            }
        }
        Ok(out)
    }

    /// The VMs saved: two vCPUs (the second powered off), PSCI 0.2 or later.
    fn spec() -> VmSpec {
        VmSpec {
            vcpus: 2,
            psci_0_2: true,
            power_off: vec![1],
            system_suspend: false,
            ..VmSpec::default()
        }
    }

    fn view_strings(view: &[[u64; 4]]) -> Vec<Vec<String>> {
        view.iter()
            .map(|x| x.iter().map(|v| format!("{v:#x}")).collect())
            .collect()
    }

    /// The harness's in-host half in `mode` (probe, save, restore) with the inputs under
    /// `root`; the records go to stdout, ending with `@@ARMFW-END`.
    pub fn guest(mode: &str, root: &Path) -> bool {
        let mut rec = Writer::stdout();
        let ok = run(mode, root, &mut rec).unwrap_or_else(|e| {
            rec.emit(&MigrationRecord::Error {
                error: crate::cmdline::one_line(&e.to_string()),
            });
            false
        });
        rec.end();
        ok
    }

    fn run(mode: &str, root: &Path, rec: &mut Records) -> Result<bool> {
        let cpu = armfw_kvm::init::cmdline_value("armfw.cpu");
        let profile = armfw_kvm::probe::probe(cpu.as_deref(), None)?;
        rec.emit(&MigrationRecord::Profile {
            profile: profile.to_json(),
        });
        match mode {
            "probe" => Ok(true),
            "save" => save(&profile, root, rec),
            "restore" => restore(&profile, root, rec),
            other => Err(Error::msg(format!("unknown armfw.mode '{other}'"))),
        }
    }

    /// The pool's profiles (the `probe` records under `root/pool/`), in file order.
    fn pool_in(root: &Path) -> Result<Vec<Profile>> {
        records_in(&root.join("pool"))?
            .iter()
            .filter_map(|r| match r {
                MigrationRecord::Profile { profile } => Some(profile),
                _ => None,
            })
            .map(|p| Profile::from_value(p).map_err(|e| Error::msg(format!("pool profile: {e}"))))
            .collect()
    }

    fn save(profile: &Profile, root: &Path, rec: &mut Records) -> Result<bool> {
        let pool = pool_in(root)?;
        let baseline =
            compat::baseline(&pool).map_err(|e| Error::msg(format!("pool baseline: {e}")))?;
        // The pool's CPU for VMs without vCPU features; a host it covers saves one more whole
        // VM, created with it.
        let cpu = compat::cpu_baseline(&pool, Some(CpuFeatures::NONE))
            .map_err(|e| Error::msg(format!("pool CPU baseline: {e}")))?;
        let covered = pool
            .iter()
            .position(|p| p.name() == profile.name())
            .is_some_and(|i| cpu.covers(i));
        let recipe = cpu.recipe(profile);
        // Whole VMs with no vCPU features and with every feature the host offers.
        let all = profile
            .vcpu()
            .map_or(CpuFeatures::NONE, armfw::profile::VcpuProfile::all_features);
        // (config, vCPU features, whole VM).
        let configs = [
            ("default", CpuFeatures::NONE, false),
            ("baseline", CpuFeatures::NONE, false),
            ("whole", CpuFeatures::NONE, true),
            ("whole-all", all, true),
            ("whole-baseline", CpuFeatures::NONE, true),
        ];
        for (config, features, whole) in configs {
            let mut spec = VmSpec { features, ..spec() };
            if config == "whole-baseline" {
                if !covered {
                    continue;
                }
                spec.sve_vls = recipe.sve_vls.clone();
                spec.writable_imp_id_regs = recipe.writable_imp_id_regs;
            }
            let mut vm = TestVm::new(&spec)?;
            match config {
                "baseline" => migrate::apply_baseline(&vm, &spec, Some(&baseline), None)?,
                "whole-baseline" => {
                    migrate::apply_baseline(&vm, &spec, Some(&baseline), Some(&recipe))?;
                }
                _ => {}
            }
            // A stolen-time structure on vCPU 0 (PV time), so that the state carries one:
            // the guest sees it as PV_TIME_FEATURES = SUCCESS.
            let ram = vm.guest_memory_range();
            vm.set_pv_time_ipa(0, ram.end - 64)?;
            let view = migrate::guest_view(&mut vm)?;
            let source = Source {
                profile: profile.name().to_string(),
                kernel: profile.kernel().to_string(),
            };
            let save = if whole {
                migrate::save_whole
            } else {
                migrate::save
            };
            let snap = save(&vm, &spec, source, true, Vec::new())?;
            vm.leak();
            rec.emit(&MigrationRecord::State(StateRecord {
                host: profile.name().to_string(),
                config: config.to_string(),
                snapshot: snap.to_json(),
                view: view_strings(&view),
            }));
        }
        Ok(true)
    }

    /// A whole-VM state restored on this host under each VMM policy and under armfw's plan,
    /// each after the model of this host predicted it; after a success the guest-view calls
    /// run again and the VM-wide registers are read back, and both must match the source
    /// (required for armfw's plan).
    fn restore_whole(
        snap: &Snapshot,
        s: &StateRecord,
        profile: &Profile,
        covered: Option<bool>,
        rec: &mut Records,
    ) {
        let plan = armfw::compat::whole::plan(snap, profile);
        let policies = VmmPolicy::ALL.map(|p| (p.name(), Writes::Vmm(p)));
        let armfw = ("armfw", plan.writes());
        for (name, writes) in policies.into_iter().chain([armfw]) {
            let predicted = match writes {
                Writes::Plan { .. } if !plan.refused.is_empty() => None,
                _ => Some(armfw::compat::whole::restore_on_model(
                    snap, profile, writes,
                )),
            };
            let (predicted_text, predicted_detail) = match &predicted {
                None => ("fail", Some("armfw refuses".to_string())),
                Some(Ok(())) => ("ok", None),
                Some(Err(stop)) => ("fail", Some(armfw::compat::whole::stop_line(stop))),
            };
            let real = if predicted.is_none() {
                // armfw refuses before touching the destination.
                Err(migrate::WholeFailure::Other("armfw refuses".into()))
            } else {
                migrate::restore_with(snap, writes)
            };
            let (real, detail, same) = match real {
                Ok(mut vm) => {
                    let ids_same = snap.machine().is_some_and(|m| {
                        m.vm_registers
                            .iter()
                            .all(|r| vm.get_one_reg(0, r.id).is_ok_and(|v| v == r.value))
                    });
                    let same = match migrate::guest_view(&mut vm) {
                        Ok(view) => json!(view_strings(&view) == s.view && ids_same),
                        Err(e) => json!(format!("guest calls failed: {e}")),
                    };
                    vm.leak();
                    ("ok", None, same)
                }
                Err(migrate::WholeFailure::Stopped(stop)) => (
                    "fail",
                    Some(armfw::compat::whole::stop_line(&stop)),
                    Value::Null,
                ),
                Err(migrate::WholeFailure::Other(e)) if e == "armfw refuses" => {
                    ("fail", Some(e), Value::Null)
                }
                Err(migrate::WholeFailure::Other(e)) => ("error", Some(e), Value::Null),
            };
            let why = match name {
                "armfw" if !plan.refused.is_empty() => Some(plan.refused.join("; ")),
                "armfw" if !plan.skipped.is_empty() => Some(
                    plan.skipped
                        .iter()
                        .map(|k| {
                            let reg = armfw::vcpu::names::reg_name(k.id);
                            format!("leave out {reg} ({} = 0)", k.field)
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                _ => None,
            };
            rec.emit(&MigrationRecord::Row(Row {
                from: s.host.clone(),
                to: profile.name().to_string(),
                config: s.config.clone(),
                policy: name.to_string(),
                predicted: predicted_text.to_string(),
                predicted_detail,
                real: real.to_string(),
                detail,
                guest_view_same: same,
                verdict: if predicted_text == "ok" {
                    "restores"
                } else {
                    "refused"
                }
                .to_string(),
                why,
                covered,
            }));
        }
    }

    fn restore(profile: &Profile, root: &Path, rec: &mut Records) -> Result<bool> {
        // Whether the pool's CPU baseline covers this host (for the `whole-baseline` states).
        let pool = pool_in(root)?;
        let covered = compat::cpu_baseline(&pool, Some(CpuFeatures::NONE))
            .ok()
            .zip(pool.iter().position(|p| p.name() == profile.name()))
            .is_some_and(|(cpu, i)| cpu.covers(i));
        let states = records_in(&root.join("states"))?
            .into_iter()
            .filter_map(|r| match r {
                MigrationRecord::State(s) => Some(s),
                _ => None,
            });
        for s in states {
            let snap =
                Snapshot::from_value(&s.snapshot).map_err(|e| Error::msg(format!("state: {e}")))?;
            if snap.machine().is_some() {
                let covered = (s.config == "whole-baseline").then_some(covered);
                restore_whole(&snap, &s, profile, covered, rec);
                continue;
            }
            // The prediction, before any restore.
            let report = compat::check(&snap, profile);
            for policy in ["strict", "armfw"] {
                let (predicted, predicted_detail) = match policy {
                    "strict" => match report.strict {
                        StrictOutcome::Ok => ("ok", None),
                        StrictOutcome::Fails { step, errno } => {
                            ("fail", Some(format!("{step}: {}", errno.name())))
                        }
                    },
                    _ if report.verdict == Verdict::Incompatible => {
                        ("fail", Some("armfw refuses".to_string()))
                    }
                    _ => ("ok", None),
                };
                let plan = (policy == "armfw").then_some(&report);
                let (real, detail, same) = match migrate::restore(&snap, plan) {
                    Ok(mut vm) => {
                        let same = match migrate::guest_view(&mut vm) {
                            Ok(view) => json!(view_strings(&view) == s.view),
                            Err(e) => json!(format!("guest calls failed: {e}")),
                        };
                        vm.leak();
                        ("ok", None, same)
                    }
                    Err(RestoreFailure::Refused { step, errno }) => (
                        "fail",
                        Some(format!("{step}: {}", errno.name())),
                        Value::Null,
                    ),
                    Err(RestoreFailure::PlanRefuses(_)) => {
                        ("fail", Some("armfw refuses".to_string()), Value::Null)
                    }
                    Err(RestoreFailure::Other(e)) => ("error", Some(e.to_string()), Value::Null),
                };
                let why = match (&report.verdict, policy) {
                    (Verdict::Incompatible, _) => report
                        .findings()
                        .find(|f| f.is_refused())
                        .map(|f| format!("{}: {}", f.subject, f.rule.name())),
                    (Verdict::CompatibleWithPlan, "armfw") => Some(
                        report
                            .findings()
                            .filter(|f| f.outcome.name() != "restore")
                            .map(|f| format!("{} {}", f.subject, f.outcome.name()))
                            .collect::<Vec<_>>()
                            .join(", "),
                    ),
                    _ => None,
                };
                rec.emit(&MigrationRecord::Row(Row {
                    from: s.host.clone(),
                    to: profile.name().to_string(),
                    config: s.config.clone(),
                    policy: policy.to_string(),
                    predicted: predicted.to_string(),
                    predicted_detail,
                    real: real.to_string(),
                    detail,
                    guest_view_same: same,
                    verdict: report.verdict.name().to_string(),
                    why,
                    covered: None,
                }));
            }
        }
        Ok(true)
    }
}

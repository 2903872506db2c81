//! `armfw save` and `armfw check`: state files and migration checks.

use crate::output::{outln, print_rows, shown};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use armfw::abi::{FwReg, PsciVersion};
use armfw::compat::{self, Finding, Outcome, Report, Verdict};
use armfw::firmware::{Firmware, VcpuFeatures};
use armfw::json::hex;
use armfw::{Profile, Snapshot};
use clap::{ArgGroup, Args};

use crate::load_profile;

/// `armfw check` exit code: armfw's plan is needed (the strict restore would fail).
pub const EXIT_PLAN: u8 = 3;
/// `armfw check` / `armfw baseline` exit code: incompatible, or some pool moves are refused.
pub const EXIT_INCOMPATIBLE: u8 = 1;

/// Arguments of `armfw save`.
#[derive(Debug, Args)]
#[command(after_help = "\
The VM is created on the model of the host, set up as asked (baseline first, then \
--psci-version, then each --set, all before the first KVM_RUN), run, and saved. The state \
file is JSON (format armfw-snapshot/1.0; with --whole, every register of the VM, \
armfw-snapshot/2.0) unless --binary is given.

A file given with -o is replaced atomically (on failure the old file stays as it was). The \
binary form is not printed to a terminal without --force.

Exit codes: 0 saved; 2 bad input (unknown profile, a value KVM refuses, a file or standard \
output that cannot be written); 141 standard output closed early.")]
pub struct SaveArgs {
    /// A built-in profile name or a profile file (default: the newest built-in kernel).
    #[arg(long)]
    profile: Option<String>,
    /// How many vCPUs (vCPU 0 runs, the others start powered off).
    #[arg(long, default_value_t = 1)]
    vcpus: usize,
    /// Apply the baseline of a pool of hosts (repeat for each host; names or files).
    #[arg(long = "baseline", value_name = "PROFILE")]
    pool: Vec<String>,
    /// Pin KVM_REG_ARM_PSCI_VERSION, e.g. 1.0 or 0x10000.
    #[arg(long, value_name = "VERSION")]
    psci_version: Option<String>,
    /// Write a firmware register before the VM runs, e.g. VENDOR_HYP_BMAP_2=0x3 (repeatable).
    /// A value KVM accepts without storing it is reported on stderr.
    #[arg(long = "set", value_name = "REG=VALUE")]
    sets: Vec<String>,
    /// Save a --psci-version or --set value that not every host of the --baseline pool
    /// offers (refused without it: the VM could not move to each host).
    #[arg(long, requires = "pool")]
    outside_baseline: bool,
    /// Save the whole VM (format armfw-snapshot/2.0): every register KVM_GET_REG_LIST
    /// names, with the vCPU features and set-up a restore repeats. Without it, the firmware
    /// state alone (format 1.0).
    #[arg(long)]
    whole: bool,
    /// With --whole: the vCPU features, comma-separated (pmu_v3, sve, ptrauth_address,
    /// ptrauth_generic; default none).
    #[arg(long, value_parser = crate::parse_features, default_value = "", requires = "whole")]
    features: armfw::abi::CpuFeatures,
    /// Write the compact binary form instead of JSON.
    #[arg(long)]
    binary: bool,
    /// Print the binary form even when standard output is a terminal.
    #[arg(long, requires = "binary")]
    force: bool,
    /// With --json, an error is also a JSON document on standard output (the state file
    /// itself is JSON unless --binary).
    #[arg(long)]
    pub json: bool,
    /// Write to this file instead of standard output (atomically: a temporary file in the
    /// same folder, fsynced and renamed over it; on failure the old file stays as it was).
    #[arg(long, short)]
    output: Option<PathBuf>,
}

/// Arguments of `armfw check`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["state", "from", "qemu_stream"])))]
#[command(after_help = "\
For each firmware register: the saved value, what the destination accepts, the rule that \
decides, the outcome (restore, keep, pin, skip, refuse) and, for a refusal, the remedy; then \
armfw's restore plan and the predicted outcome of a strict restore (every saved register \
written back in order, as today's VMMs do).

The strict prediction is one of: succeeds (KVM accepts every write and the guest's firmware \
stays the same); KVM accepts every write, but the guest's firmware changes; KVM refuses it \
(the step and errno). The plan is printed only for a verdict that has one (not incompatible).

For a whole VM (a state of format 2.0, or --from HOST --whole), also each of today's VMM \
policies' restore (first-refusal: Firecracker, Cloud Hypervisor; write-all; qemu) with every \
refused register, and armfw's whole-VM plan (registers the guest cannot observe left out, \
the implementation ids written with KVM_CAP_ARM_WRITABLE_IMP_ID_REGS on 6.15+).

With a QEMU policy (--qemu-stream, or --policy qemu-7.2|qemu-10.0|qemu-11.1): whether that \
QEMU release loads the VM on the destination, the rule and register that refuse it, the lines \
QEMU prints, and what would make it work (docs/qemu.md); exit 0 QEMU loads it, 1 it refuses \
it, 2 bad input.

Exit codes: 0 compatible (the strict restore succeeds and the guest's firmware does not \
change; for a whole VM, every VMM policy restores it too); 3 compatible only with armfw's \
plan (the strict restore fails, or succeeds but changes the guest's firmware; the plan keeps \
it); 1 incompatible; 2 bad input (missing, \
unreadable or too big file, not a snapshot, a field that fails validation, a duplicate key, \
a bad checksum, a truncated file, an unknown profile); 141 standard output closed early.")]
pub struct CheckArgs {
    /// A state file (`armfw save` output, JSON or binary), or a running VM's bundle (`armfw-vmm run --save`), of which only the snapshot is read.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Instead of a state file: a VM created with the defaults of this host (name or file).
    #[arg(long, value_name = "PROFILE")]
    pub from: Option<String>,
    /// With --from: the whole VM (every register of a fresh vCPU of the source host, run
    /// once), not its firmware state alone.
    #[arg(long, requires = "from")]
    whole: bool,
    /// With --from --whole: the vCPU features of that VM, comma-separated (default none).
    #[arg(long, value_parser = crate::parse_features, default_value = "", requires = "whole")]
    features: armfw::abi::CpuFeatures,
    /// Instead: a QEMU migration stream (`migrate "exec:cat > FILE"`), checked as QEMU will
    /// load it (--policy; default the release that wrote it).
    #[arg(long, value_name = "FILE")]
    pub qemu_stream: Option<PathBuf>,
    /// Check the move as this QEMU release loads it: qemu-7.2, qemu-10.0, qemu-11.1 (with
    /// --state, a whole-VM state; with --from, a VM created with that host's defaults).
    #[arg(long, value_name = "POLICY", value_parser = parse_policy)]
    pub policy: Option<armfw::qemu::QemuRelease>,
    /// With a QEMU policy: the destination QEMU's -cpu (host, with pmu=, sve=, pauth= on or
    /// off; each on by default where the host has it).
    #[arg(long, value_name = "CPU", default_value = "host", value_parser = armfw::qemu::HostCpu::parse)]
    pub qemu_cpu: armfw::qemu::HostCpu,
    /// The destination host (built-in profile name or profile file).
    #[arg(long, value_name = "PROFILE")]
    pub to: String,
    /// Print the report as JSON (format armfw-check/1; armfw-qemu-check/1 with a QEMU
    /// policy).
    #[arg(long)]
    pub json: bool,
}

fn parse_policy(s: &str) -> Result<armfw::qemu::QemuRelease, String> {
    armfw::qemu::QemuRelease::from_name(s).ok_or_else(|| {
        format!(
            "{s:?} is not a QEMU policy ({})",
            armfw::qemu::QemuRelease::ALL.map(|r| r.name()).join(", ")
        )
    })
}

/// `armfw save`.
pub fn save(a: SaveArgs) -> Result<ExitCode> {
    let profile = load_profile(a.profile.as_deref())?;
    if a.binary && a.output.is_none() {
        crate::output::refuse_binary_to_terminal(a.force)?;
    }
    if a.vcpus == 0 || a.vcpus > armfw::firmware::KVM_MAX_VCPUS {
        bail!("--vcpus must be 1 to {}", armfw::firmware::KVM_MAX_VCPUS);
    }
    let mut fw = Firmware::new(&profile);
    for i in 0..a.vcpus {
        fw.add_vcpu()
            .map_err(|e| anyhow!("creating vCPU {i}: {e}"))?;
        let features = VcpuFeatures {
            psci_0_2: profile.capabilities().psci_0_2,
            power_off: i > 0,
        };
        fw.init_vcpu(i, features)
            .map_err(|e| anyhow!("initialising vCPU {i}: {e}"))?;
    }
    let mut baseline = None;
    let pool = load_pool(&a.pool)?;
    if !pool.is_empty() {
        let b = compat::baseline(&pool)?;
        b.apply(&mut fw)
            .with_context(|| format!("applying the baseline to {}", profile.name()))?;
        baseline = Some(b);
    }
    // A value outside the --baseline pool's common configuration: refused, unless insisted.
    let outside = |what: String| -> Result<()> {
        if a.outside_baseline {
            crate::output::warn(&format!("{what} (saved as asked: --outside-baseline)"));
            Ok(())
        } else {
            bail!("{what}; give --outside-baseline to save it anyway")
        }
    };
    if let Some(v) = &a.psci_version {
        let value = parse_psci_version(v)?;
        if let Some(b) = &baseline {
            let offered = u32::try_from(value)
                .is_ok_and(|p| b.psci_versions.iter().any(|o| o == PsciVersion(p)));
            if !offered {
                outside(format!(
                    "--psci-version {v}: not offered by every host of the --baseline pool (they all offer {}), so the VM could not move to each of them",
                    b.psci_versions
                        .iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))?;
            }
        }
        fw.set_one_reg(0, FwReg::PsciVersion.id(), value)
            .map_err(|e| {
                anyhow!(
                    "--psci-version {v}: {profile} refuses it ({e})",
                    profile = profile.name()
                )
            })?;
    }
    for s in &a.sets {
        let (reg, value) = parse_set(s)?;
        if let Some(common) = baseline.as_ref().and_then(|b| b.bitmap(reg)) {
            if value & !common != 0 {
                outside(format!(
                    "--set {s}: bits {} are not enabled on every host of the --baseline pool ({reg} = {} there), so the VM could not move to each of them",
                    hex(value & !common),
                    hex(common)
                ))?;
            }
        }
        fw.set_one_reg(0, reg.id(), value)
            .map_err(|e| anyhow!("--set {s}: {e}"))?;
        // KVM accepts some values without storing them (a WORKAROUND level at or below the
        // host's): say so, since the state file will hold what KVM reports.
        match fw.get_one_reg(0, reg.id()) {
            Ok(stored) if stored != value => crate::output::warn(&format!(
                "--set {s}: {} accepts it but stores nothing; {reg} reads {} (the host's value), and the state file holds that",
                profile.name(),
                hex(stored)
            )),
            _ => {}
        }
    }
    let snapshot = if a.whole {
        let mut setup = armfw::migrate::sequence::MachineSetup {
            features: a.features,
            ..Default::default()
        };
        let mut recipe = None;
        if !pool.is_empty() {
            // The pool's CPU: the recipe's set-up, then its writes.
            let cpu = compat::cpu_baseline(&pool, Some(a.features)).map_err(|e| {
                anyhow!(
                    "the --baseline pool has no CPU baseline: {}",
                    e.describe(&pool)
                )
            })?;
            let left = pool
                .iter()
                .position(|p| p.name() == profile.name())
                .and_then(|i| cpu.left_out.iter().find(|l| l.host == i));
            if let Some(l) = left {
                bail!(
                    "{} is left out of the --baseline pool's CPU baseline: {}",
                    profile.name(),
                    l.reason
                );
            }
            let r = cpu.recipe(&profile);
            setup = r.setup();
            recipe = Some(r);
        }
        let mut vm = armfw::migrate::ModelVm::with_setup(fw, &setup)?;
        if let Some(r) = &recipe {
            armfw::migrate::sequence::apply_baseline(
                &mut vm,
                profile.capabilities().psci_0_2,
                None,
                Some(r),
            )
            .with_context(|| format!("applying the CPU baseline to {}", profile.name()))?;
        }
        vm.run(0).map_err(|e| anyhow!("running vCPU 0: {e}"))?;
        vm.save(setup)?
    } else {
        fw.vcpu_run(0).map_err(|e| anyhow!("running vCPU 0: {e}"))?;
        fw.save()?
    };
    let bytes = if a.binary {
        snapshot.to_bytes()
    } else {
        let mut text = serde_json::to_string_pretty(&snapshot.to_json())?;
        text.push('\n');
        text.into_bytes()
    };
    match &a.output {
        Some(path) => crate::output::write_atomic(path, &bytes)?,
        None => crate::output::write_bytes(&bytes)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `armfw check`.
pub fn check(a: CheckArgs) -> Result<ExitCode> {
    if a.qemu_stream.is_some() || a.policy.is_some() {
        return crate::qemu::check(&a);
    }
    let json = a.json;
    let dest = load_profile(Some(&a.to))?;
    let snapshot = match (&a.state, &a.from) {
        (Some(path), _) => load_state(path)?,
        (None, Some(from)) => {
            let p = load_profile(Some(from))?;
            if a.whole {
                Snapshot::created_whole_on(&p, 1, a.features, true)
                    .with_context(|| format!("a default VM on {}", p.name()))?
            } else {
                Snapshot::created_on(&p, 1)
                    .with_context(|| format!("a default VM on {}", p.name()))?
            }
        }
        (None, None) => bail!("give --state FILE or --from PROFILE"),
    };
    let report = compat::check(&snapshot, &dest);
    let doc = report.document(&snapshot, &dest);
    if json {
        outln!("{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        print_report(&report, &snapshot, &dest)?;
        if let Some(w) = &doc.whole_vm {
            print_whole(w)?;
        }
    }
    // A whole VM: 0 when today's VMMs restore it and its firmware stays the same, 3 when
    // only armfw's plan does, 1 when nothing does.
    let verdict = doc.whole_vm.as_ref().map_or(report.verdict, |w| {
        compat::whole::verdict(
            w.policies.iter().all(|p| p.result == "succeeds"),
            report.verdict,
            w.plan.result == "restores",
        )
    });
    let code = match verdict {
        Verdict::Compatible => 0,
        Verdict::CompatibleWithPlan => EXIT_PLAN,
        Verdict::Incompatible => EXIT_INCOMPATIBLE,
    };
    Ok(ExitCode::from(code))
}

pub(crate) fn load_pool(names: &[String]) -> Result<Vec<Profile>> {
    names.iter().map(|n| load_profile(Some(n))).collect()
}

/// A saved state: a snapshot in either form, or the snapshot of a VM bundle.
pub(crate) fn load_state(path: &Path) -> Result<Snapshot> {
    let bytes = crate::input::read_state(path)?;
    if bytes.starts_with(&armfw::bundle::MAGIC) {
        let header = armfw::bundle::BundleHeader::parse(&bytes)
            .with_context(|| crate::errors::InFile::new(path))?;
        return header
            .snapshot(&bytes)
            .with_context(|| crate::errors::InFile::new(path));
    }
    Snapshot::load(&bytes).with_context(|| crate::errors::InFile::new(path))
}

fn parse_number(s: &str) -> Option<u64> {
    armfw::json::parse_hex(s).or_else(|| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    })
}

fn parse_psci_version(s: &str) -> Result<u64> {
    if let Some(v) = armfw::json::parse_hex(s) {
        return Ok(v);
    }
    let parsed = s
        .split_once('.')
        .and_then(|(a, b)| Some(PsciVersion::new(a.parse().ok()?, b.parse().ok()?)));
    parsed
        .map(|v| u64::from(v.0))
        .ok_or_else(|| anyhow!("--psci-version {s:?}: expected major.minor (1.0) or 0x10000"))
}

fn parse_set(s: &str) -> Result<(FwReg, u64)> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("--set {s:?}: expected REG=VALUE"))?;
    let reg = FwReg::from_name(name)
        .or_else(|| parse_number(name).and_then(FwReg::from_id))
        .ok_or_else(|| anyhow!("--set {s:?}: {name:?} is not a firmware register"))?;
    let value = parse_number(value)
        .ok_or_else(|| anyhow!("--set {s:?}: {value:?} is not a number (decimal or 0x hex)"))?;
    Ok((reg, value))
}

/// The whole-VM section of `armfw check`: each VMM policy's outcome and its refusals.
fn print_whole(w: &compat::whole::WholeVmJson) -> Result<()> {
    outln!()?;
    outln!(
        "whole VM ({} registers per vCPU, features: {}): a restore as today's VMMs write it back",
        w.registers,
        w.features.label()
    )?;
    for p in &w.policies {
        let what = match p.result.as_str() {
            "succeeds" => "KVM accepts every write".to_string(),
            "ids_refused" => format!(
                "refused before any write: {}",
                p.ids.as_deref().unwrap_or("")
            ),
            _ => format!("{} refused", p.refusals.len()),
        };
        outln!("  {} ({}): {what}", p.policy, p.who)?;
        for r in &p.refusals {
            let saved = r
                .saved
                .as_deref()
                .map_or(String::new(), |v| format!(" = {v}"));
            outln!("    {}{saved}: {}", r.what, r.errno)?;
        }
    }
    if w.plan.result == "restores" {
        outln!(
            "  armfw's plan: restores it (the firmware plan above, the VM-wide registers first)"
        )?;
        for s in &w.plan.skipped {
            outln!(
                "    leave out {} ({}): the destination does not list it, and the VM presents {} = 0",
                s.register,
                s.id,
                s.field
            )?;
        }
    } else {
        outln!("  armfw's plan: refused")?;
        for why in &w.plan.refused {
            outln!("    {why}")?;
        }
        for f in &w.plan.findings {
            outln!(
                "    {} = {}: {}: the destination takes {}; remedy: {}",
                f.register,
                f.saved,
                f.rule,
                f.accepts,
                f.remedy
            )?;
        }
    }
    let verdict = match (
        w.policies.iter().all(|p| p.result == "succeeds"),
        w.plan.result == "restores",
    ) {
        (true, _) => "today's VMMs restore it",
        (false, true) => "compatible with armfw's plan",
        (false, false) => "incompatible",
    };
    outln!("whole VM: {verdict}")?;
    Ok(())
}

fn print_report(r: &Report, s: &Snapshot, dest: &Profile) -> Result<()> {
    outln!(
        "{} (kernel {}) -> {} (kernel {}): {}{}",
        shown(&s.source().profile),
        shown(&s.source().kernel),
        shown(dest.name()),
        shown(dest.kernel()),
        if s.machine().is_some() {
            "firmware "
        } else {
            ""
        },
        match r.verdict {
            Verdict::Compatible => "compatible",
            Verdict::CompatibleWithPlan => "compatible with armfw's plan",
            Verdict::Incompatible => "incompatible",
        }
    )?;
    outln!()?;
    let mut rows = vec![[
        "SUBJECT".to_string(),
        "SAVED".to_string(),
        "DESTINATION ACCEPTS".to_string(),
        "OUTCOME".to_string(),
        "RULE".to_string(),
    ]];
    for f in r.findings() {
        rows.push([
            f.subject.to_string(),
            f.saved_text(),
            f.accepts.to_string(),
            match f.outcome {
                Outcome::Pin(v) => format!("pin {}", hex(v)),
                o => o.name().to_string(),
            },
            f.rule.name().to_string(),
        ]);
    }
    print_rows(&rows)?;
    let notable: Vec<&Finding> = r
        .findings()
        .filter(|f| !matches!(f.outcome, Outcome::Restore | Outcome::Keep))
        .collect();
    if !notable.is_empty() {
        outln!()?;
        for f in notable {
            outln!("{}: {}", f.subject, f.rule.text())?;
            if let Some(remedy) = f.remedy {
                outln!("  remedy: {remedy}")?;
            }
        }
    }
    outln!()?;
    if r.verdict == Verdict::Incompatible {
        outln!("armfw plan: none (incompatible)")?;
    } else {
        outln!("armfw plan:")?;
        for (i, a) in r.plan().enumerate() {
            outln!("  {}. {a}", i + 1)?;
        }
    }
    let strict = match r.strict_result() {
        compat::StrictResult::Refused => format!("KVM refuses it: {}", r.strict),
        other => other.text().to_string(),
    };
    outln!("strict restore (every saved register written back, as today's VMMs do): {strict}")?;
    Ok(())
}

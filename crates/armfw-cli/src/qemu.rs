//! `armfw check` with a QEMU policy: will that QEMU release load this VM on that host?

use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use armfw::qemu::report::{QemuCheckJson, SourceJson, cpu_text};
use armfw::qemu::{Incoming, QemuRelease, predict, remedies, stream};

use crate::errors::InFile;
use crate::input::StreamFile;
use crate::load_profile;
use crate::migrate::{CheckArgs, load_state};
use crate::output::outln;

/// Exit status of a load QEMU refuses.
const EXIT_REFUSED: u8 = 1;

/// `armfw check --qemu-stream FILE | --state FILE | --from HOST, --policy qemu-X, --to HOST`.
pub fn check(a: &CheckArgs) -> Result<ExitCode> {
    let dest = load_profile(Some(&a.to))?;
    if dest.vcpu().is_none() {
        bail!(
            "{}: a version-1 profile has no vCPU registers; QEMU's load needs them (re-probe the host)",
            dest.name()
        );
    }
    let (source, incoming, written_by) = if let Some(path) = &a.qemu_stream {
        let file = StreamFile::open(path)?;
        let s = stream::read(&file).with_context(|| InFile::new(path))?;
        let incoming: Vec<Incoming> = s.vcpus.iter().map(Incoming::from).collect();
        let source = SourceJson::new(
            "stream",
            &path.display().to_string(),
            s.machine_type.clone(),
            &incoming,
        );
        (source, incoming, s.qemu_version())
    } else if let Some(path) = &a.state {
        let snap = load_state(path)?;
        let incoming = Incoming::from_snapshot(&snap).ok_or_else(|| {
            anyhow!(
                "{}: a firmware-only state; a QEMU policy needs a whole-VM state (armfw save --whole)",
                path.display()
            )
        })?;
        let source = SourceJson::new("state", &path.display().to_string(), None, &incoming);
        (source, incoming, None)
    } else if let Some(from) = &a.from {
        let p = load_profile(Some(from))?;
        let features = a.qemu_cpu.features(&p);
        let incoming = Incoming::default_vm(&p, features, 1).ok_or_else(|| {
            anyhow!(
                "{}: no vCPU registers for the features -cpu {} gives ({features}); a version-2 profile with that feature set is needed",
                p.name(),
                cpu_text(a.qemu_cpu)
            )
        })?;
        let source = SourceJson::new("host", p.name(), None, &incoming);
        (source, incoming, None)
    } else {
        bail!("give --qemu-stream FILE, --state FILE or --from PROFILE");
    };
    let release = match (a.policy, written_by) {
        (Some(r), _) => r,
        (None, Some(v)) => QemuRelease::from_version(v).ok_or_else(|| {
            anyhow!(
                "the stream was written by QEMU {}.{}, whose policy armfw does not model; give --policy ({})",
                v.0,
                v.1,
                QemuRelease::ALL.map(QemuRelease::name).join(", ")
            )
        })?,
        (None, None) => bail!(
            "the stream does not say which QEMU wrote it; give --policy ({})",
            QemuRelease::ALL.map(QemuRelease::name).join(", ")
        ),
    };
    let prediction = predict(release, &incoming, &dest, a.qemu_cpu);
    let fixes = remedies(&prediction, &incoming, &dest, a.qemu_cpu);
    let doc = QemuCheckJson::new(source, &dest, &cpu_text(a.qemu_cpu), &prediction, &fixes);
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        print(&doc)?;
    }
    Ok(if prediction.loads() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_REFUSED)
    })
}

fn print(d: &QemuCheckJson) -> Result<()> {
    let s = &d.source;
    let what = match s.kind.as_str() {
        "stream" => format!(
            "QEMU stream {}{}",
            s.name,
            s.machine_type
                .as_deref()
                .map_or(String::new(), |m| format!(" (machine {m})"))
        ),
        "state" => format!("armfw state {}", s.name),
        _ => format!("a VM with the defaults of {}", s.name),
    };
    outln!(
        "{what}: {} vCPU{}, {} cpregs",
        s.vcpus,
        if s.vcpus == 1 { "" } else { "s" },
        s.cpregs
    )?;
    let features = d.features.label();
    outln!(
        "{} loading it on {} (kernel {}), -cpu {} (vCPU features {features}, {} cpregs): {}",
        d.policy,
        d.destination.profile,
        d.destination.kernel,
        d.cpu,
        d.destination.cpregs,
        if d.result == "loads" {
            "loads, the guest goes on"
        } else {
            "refused"
        }
    )?;
    if let Some(rule) = &d.rule {
        let reg = d
            .register
            .as_ref()
            .map_or(String::new(), |r| format!(": {} ({})", r.name, r.id));
        outln!("  rule {rule}{reg}")?;
    }
    for r in &d.refused {
        outln!(
            "  refused write: {} ({}): {}",
            r.register.name,
            r.register.id,
            r.errno
        )?;
    }
    for u in &d.unmatched {
        outln!(
            "  on the {} side only: {} ({}), vCPU {}: {}",
            u.side,
            u.register.name,
            u.register.id,
            u.vcpu,
            u.handling
        )?;
    }
    if !d.messages.is_empty() {
        outln!("  QEMU prints:")?;
        for m in &d.messages {
            outln!("    {m}")?;
        }
    }
    if !d.remedies.is_empty() {
        outln!("  to make it work:")?;
        for r in &d.remedies {
            outln!("    - {r}")?;
        }
    }
    Ok(())
}

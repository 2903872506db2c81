//! `armfw baseline`: the firmware configuration and the CPU every host of a pool can present.

use std::process::ExitCode;

use anyhow::Result;
use armfw::Profile;
use armfw::abi::FwReg;
use armfw::compat;
use armfw::json::hex;
use clap::Args;

use crate::migrate::{EXIT_INCOMPATIBLE, load_pool};
use crate::output::{outln, print_rows, shown};

/// Arguments of `armfw baseline`.
#[derive(Debug, Args)]
#[command(after_help = "\
The baseline is what `armfw save --baseline` applies at VM creation: PSCI_VERSION pinned to \
the newest version every host offers, each service bitmap at the bits every host enables by \
default. The WORKAROUND levels belong to the hosts, not the VM: where they differ, `armfw \
check` refuses a move in both directions between hosts at different levels — higher to lower \
because KVM refuses it (workaround_above_host), lower to higher because KVM accepts it but the \
guest's ARCH_FEATURES answer changes (workaround_below_host) — and such pairs are listed.

Exit codes: 0 a VM created with the baseline can move between any two hosts; 1 some moves \
are refused (differing WORKAROUND levels) or the pool has no common configuration (with \
--json, a document with no_baseline saying why); 2 bad input (an unknown profile or \
unreadable file); 141 standard output closed early.")]
pub struct BaselineArgs {
    /// The hosts of the pool (built-in profile names or profile files).
    #[arg(required = true, value_name = "PROFILE")]
    profiles: Vec<String>,
    /// The vCPU features of the VMs the CPU baseline is for, comma-separated (pmu_v3, sve,
    /// ptrauth_address, ptrauth_generic; default none).
    #[arg(long, value_parser = crate::parse_features, default_value = "")]
    features: armfw::abi::CpuFeatures,
    /// Print JSON (format armfw-baseline/2), also when the pool has no baseline.
    #[arg(long)]
    pub json: bool,
}

/// `armfw baseline`.
pub fn baseline(a: BaselineArgs) -> Result<ExitCode> {
    let json = a.json;
    let pool = load_pool(&a.profiles)?;
    let cpu = compat::cpu_baseline(&pool, Some(a.features));
    let b = match compat::baseline(&pool) {
        Ok(b) => b,
        Err(e) => {
            let msg = match e {
                compat::BaselineError::NoPsci02 { host } => {
                    format!("{} lacks KVM_CAP_ARM_PSCI_0_2", name(&pool, host))
                }
                compat::BaselineError::BitmapMissing { reg, host } => format!(
                    "{} lacks {reg}, which other hosts of the pool have",
                    name(&pool, host)
                ),
                other => other.to_string(),
            };
            crate::output::warn(&format!("no baseline: {msg}"));
            if json {
                let doc = compat::BaselineJson::none(&pool, &msg).with_cpu(&pool, cpu.as_ref());
                outln!("{}", serde_json::to_string_pretty(&doc)?)?;
            }
            return Ok(ExitCode::from(EXIT_INCOMPATIBLE));
        }
    };
    let doc = b.document(&pool).with_cpu(&pool, cpu.as_ref());
    if json {
        outln!("{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        outln!("baseline of {} hosts", b.hosts)?;
        let mut rows = vec![[
            "REGISTER".to_string(),
            "VALUE".to_string(),
            "MEANING".to_string(),
        ]];
        for (reg, value) in b.registers() {
            let meaning = if reg == FwReg::PsciVersion {
                format!(
                    "PSCI {} (every host offers {})",
                    b.psci_version,
                    b.psci_versions
                        .iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                "the service bits every host enables by default".to_string()
            };
            rows.push([reg.name().to_string(), hex(value), meaning]);
        }
        print_rows(&rows)?;
        outln!()?;
        for s in &b.workarounds {
            if s.is_uniform() {
                outln!("{}: level {} on every host", s.reg, s.lowest)?;
            } else {
                outln!(
                    "{}: levels {}..{} — a VM cannot move between hosts at different levels, either way: from level {} (e.g. {}) to level {} (e.g. {}) KVM refuses it; the other way KVM accepts it but the guest's ARCH_FEATURES answer changes",
                    s.reg,
                    s.lowest,
                    s.highest,
                    s.highest,
                    name(&pool, s.highest_host),
                    s.lowest,
                    name(&pool, s.lowest_host)
                )?;
            }
        }
        outln!(
            "system suspend: {}; SMCCC filter: {}",
            if b.system_suspend {
                "every host"
            } else {
                "not every host (do not enable it)"
            },
            if b.smccc_filter {
                "every host"
            } else {
                "not every host (install no ranges)"
            }
        )?;
        outln!()?;
        print_cpu(&pool, &cpu)?;
        outln!()?;
        outln!(
            "{}",
            if doc.any_to_any {
                "a VM created with this baseline can move between any two hosts of the pool"
            } else if b.any_to_any() {
                "some hosts are left out of the CPU baseline: see above"
            } else {
                "some moves are refused: see the WORKAROUND lines"
            }
        )?;
    }
    Ok(if doc.any_to_any {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INCOMPATIBLE)
    })
}

/// The CPU part of `armfw baseline`'s table.
fn print_cpu(
    pool: &[Profile],
    cpu: &Result<compat::CpuBaseline, compat::CpuBaselineError>,
) -> Result<()> {
    let c = match cpu {
        Ok(c) => c,
        Err(e) => {
            outln!("no CPU baseline: {}", e.describe(pool))?;
            return Ok(());
        }
    };
    let covered = (0..pool.len()).filter(|&i| c.covers(i)).count();
    outln!(
        "CPU baseline (vCPU features: {}): covers {covered} of {} hosts",
        if c.features.is_empty() {
            "none".to_string()
        } else {
            c.features.to_string()
        },
        c.hosts
    )?;
    if let Some(v) = &c.sve_vls {
        outln!("SVE_VLS {}", armfw::json::hex_le_bytes(v))?;
    }
    if c.fields.is_empty() {
        outln!("the covered hosts present the same CPU: nothing to write")?;
    } else {
        let mut rows = vec![[
            "FIELD".to_string(),
            "VALUE".to_string(),
            "HOSTS".to_string(),
            "RULE".to_string(),
        ]];
        let doc = c.document(pool);
        for f in &doc.fields {
            let field = if f.field == "value" {
                f.register.clone()
            } else {
                format!("{}.{}", f.register, f.field)
            };
            let hosts = f
                .hosts
                .iter()
                .map(|h| format!("{} ({})", h.value, shown(&h.host)))
                .collect::<Vec<_>>()
                .join(", ");
            rows.push([field, f.value.clone(), hosts, f.rule.clone()]);
        }
        print_rows(&rows)?;
    }
    for l in &c.left_out {
        outln!("left out: {}: {}", name(pool, l.host), l.reason)?;
    }
    if c.implementations.len() > 1 {
        outln!(
            "{} implementations; {}:",
            c.implementations.len(),
            if c.discover_impl {
                "every covered host is 6.15+, so a VMM that serves DISCOVER_IMPL_VER/CPUS in userspace (armfw's firmware) sets VENDOR_HYP_BMAP_2 = 0x3 and a 6.15+ guest applies the errata of each"
            } else {
                "a guest cannot be told them: not every covered host has VENDOR_HYP_BMAP_2 (6.15+)"
            }
        )?;
        for i in &c.implementations {
            outln!(
                "  MIDR_EL1 {} REVIDR_EL1 {} AIDR_EL1 {}",
                hex(i.midr),
                hex(i.revidr),
                hex(i.aidr)
            )?;
        }
    }
    Ok(())
}

fn name(pool: &[Profile], i: usize) -> std::borrow::Cow<'_, str> {
    pool.get(i).map_or("?".into(), |p| shown(p.name()))
}

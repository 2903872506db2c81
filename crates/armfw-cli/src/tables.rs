//! `armfw regs` and `armfw profiles`.

use crate::output::{outln, shown};
use anyhow::Result;
use armfw::abi::{CpuFeatures, FwReg};
use armfw::json::{hex, hex_le_bytes};
use armfw::{Profile, catalog};
use serde_json::{Value, json};

/// The format name and version of `armfw regs --json` for a version-1 profile.
pub const REGS_FORMAT: &str = "armfw-regs/1";
/// The format name and version of `armfw regs --json` for a version-2 profile.
pub const REGS_FORMAT_2: &str = "armfw-regs/2";
/// The format name and version of `armfw profiles --json`.
pub const PROFILES_FORMAT: &str = "armfw-profiles/1";

pub fn regs(p: &Profile, features: CpuFeatures, as_json: bool) -> Result<()> {
    let infos = catalog::registers(p);
    let vcpu = match catalog::vcpu_registers(p, features) {
        Some(r) => Some(r.map_err(|e| anyhow::anyhow!("{}: {e}", p.name()))?),
        None if !features.is_empty() => anyhow::bail!(
            "{}: a version-1 profile has no vCPU registers (re-probe the host with `armfw probe`)",
            p.name()
        ),
        None => None,
    };
    if as_json {
        let mut v = json!({
            "format": if vcpu.is_some() { REGS_FORMAT_2 } else { REGS_FORMAT },
            "profile": p.name(),
            "kernel": p.kernel(),
            "cpu": p.cpu(),
            "registers": infos.iter().map(catalog::RegisterInfo::to_json).collect::<Vec<_>>(),
        });
        if let Some(regs) = &vcpu {
            v["features"] = serde_json::to_value(features)?;
            v["vcpu"] = regs.iter().map(catalog::VcpuRegInfo::to_json).collect();
        }
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    outln!(
        "{} (kernel {}, cpu {})",
        shown(p.name()),
        shown(p.kernel()),
        shown(p.cpu())
    )?;
    if let Some(regs) = &vcpu {
        let mut classes: Vec<&str> = Vec::new();
        for r in regs {
            let c = r.class.map_or("unknown", |c| c.name());
            if !classes.contains(&c) {
                classes.push(c);
            }
        }
        outln!(
            "vCPU with features {features}: {} registers in {} classes",
            regs.len(),
            classes.len()
        )?;
        for c in classes {
            let rows: Vec<[String; 5]> = regs
                .iter()
                .filter(|r| r.class.map_or("unknown", |k| k.name()) == c)
                .map(|r| {
                    [
                        hex(r.id),
                        r.name.clone(),
                        hex_le_bytes(&r.reset.bytes),
                        r.scope.to_string(),
                        r.rule.to_string(),
                    ]
                })
                .collect();
            outln!()?;
            outln!("{c} ({} registers)", rows.len())?;
            print_table(&["ID", "NAME", "RESET", "SCOPE", "SET RULE"], &rows)?;
        }
        outln!()?;
        outln!("firmware registers")?;
    }
    let rows: Vec<[String; 5]> = infos
        .iter()
        .map(|i| {
            [
                hex(i.reg.id()),
                i.reg.name().to_string(),
                hex(i.default),
                i.accepts_text(),
                i.meaning.to_string(),
            ]
        })
        .collect();
    print_table(&["ID", "NAME", "DEFAULT", "ACCEPTS", "MEANING"], &rows)?;
    Ok(())
}

pub fn profiles(as_json: bool) -> Result<()> {
    let all = armfw::profile::builtin();
    if as_json {
        let v = json!({
            "format": PROFILES_FORMAT,
            "default": armfw::profile::default_profile().map(|p| p.name().to_string()),
            "profiles": all.iter().map(Profile::to_json).collect::<Vec<Value>>(),
        });
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    let default = armfw::profile::default_profile().map(|p| p.name().to_string());
    let level = |p: &Profile, r: FwReg| {
        p.register(r)
            .map_or("-".to_string(), |x| x.default.to_string())
    };
    let rows: Vec<[String; 7]> = all
        .iter()
        .map(|p| {
            let mark = if default.as_deref() == Some(p.name()) {
                " (default)"
            } else {
                ""
            };
            [
                format!("{}{mark}", p.name()),
                p.kernel().to_string(),
                p.cpu().to_string(),
                p.psci_default().to_string(),
                format!(
                    "{}/{}/{}",
                    level(p, FwReg::SmcccArchWorkaround1),
                    level(p, FwReg::SmcccArchWorkaround2),
                    level(p, FwReg::SmcccArchWorkaround3)
                ),
                p.registers().len().to_string(),
                if p.capabilities().smccc_filter {
                    "yes".into()
                } else {
                    "no".into()
                },
            ]
        })
        .collect();
    print_table(
        &[
            "NAME",
            "KERNEL",
            "CPU",
            "PSCI",
            "WA1/2/3",
            "FW REGS",
            "SMCCC FILTER",
        ],
        &rows,
    )?;
    Ok(())
}

fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> Result<()> {
    let mut widths = header.map(str::len);
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == N {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        outln!("{}", s.trim_end())
    };
    line(header.to_vec())?;
    for r in rows {
        line(r.iter().map(String::as_str).collect())?;
    }
    Ok(())
}

//! The devices section: guest RAM's ranges, the vGICv3, armfw's engine and the VMM's own
//! devices, and its checks against the snapshot.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{BundleError, MAX_RAM_RANGES, PAGE};
use crate::snapshot::Snapshot;

/// One range of guest RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RamRange {
    /// Its first guest physical address (4 KiB aligned).
    pub base: u64,
    /// Its size in bytes (a multiple of 4 KiB, not 0).
    pub size: u64,
}

/// A 32-bit register of the vGIC's distributor or of one redistributor: its offset in the
/// frame (`KVM_DEV_ARM_VGIC_GRP_DIST_REGS`, `_REDIST_REGS`) or, for the SPI line levels, the
/// first interrupt of the 32 it covers (`_LEVEL_INFO`), and its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct GicReg(pub u32, pub u32);

/// A 64-bit CPU-interface system register (`KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS`): its
/// encoding (op0, op1, CRn, CRm, op2 as the attribute's low 16 bits) and its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct GicSysReg(pub u16, pub u64);

/// The vGICv3 as KVM holds it: where the VMM put it and every register a restore writes
/// back, in the order it writes them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GicState {
    /// The distributor's base address.
    pub dist_base: u64,
    /// The first redistributor's base address (one 128 KiB frame pair per vCPU).
    pub redist_base: u64,
    /// KVM_DEV_ARM_VGIC_GRP_NR_IRQS.
    pub nr_irqs: u32,
    /// The distributor's registers.
    pub dist: Vec<GicReg>,
    /// Each vCPU's redistributor registers, by vCPU index.
    pub redist: Vec<Vec<GicReg>>,
    /// Each vCPU's CPU-interface registers, by vCPU index.
    pub cpu: Vec<Vec<GicSysReg>>,
    /// The line levels of the level-triggered SPIs, 32 a word.
    pub line_levels: Vec<GicReg>,
}

/// The devices section.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Devices {
    /// `armfw-bundle-devices/1`.
    pub format: String,
    /// Guest RAM, ascending, not overlapping.
    pub ram: Vec<RamRange>,
    /// The vGICv3.
    pub gic: GicState,
    /// The userspace firmware engine's state when armfw's engine answers the guest's
    /// PSCI/SMCCC calls (a firmware snapshot in its JSON form); absent (or `null`) with KVM's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<Value>,
    /// The implementations the engine reports through DISCOVER_IMPL_CPUS
    /// ([`crate::Firmware::set_implementations`]), as `[MIDR_EL1, REVIDR_EL1, AIDR_EL1]`;
    /// only with `engine`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub implementations: Vec<[u64; 3]>,
    /// The VMM's own devices (its console, ...), as that VMM writes them.
    pub vmm: Value,
}

/// The devices section's format name.
pub const DEVICES_FORMAT: &str = "armfw-bundle-devices/1";

pub(super) fn parse_devices(bytes: &[u8]) -> Result<Devices, BundleError> {
    let text =
        std::str::from_utf8(bytes).map_err(|e| BundleError::Devices(format!("not UTF-8: {e}")))?;
    let devices: Devices =
        crate::json::from_str(text).map_err(|e| BundleError::Devices(e.to_string()))?;
    Ok(devices)
}

/// The devices against the snapshot; the engine's snapshot, if any.
pub(super) fn check_devices(d: &Devices, s: &Snapshot) -> Result<Option<Snapshot>, BundleError> {
    let bad = |m: String| BundleError::Devices(m);
    if d.format != DEVICES_FORMAT {
        return Err(bad(format!(
            "format: {:?}, this armfw reads {DEVICES_FORMAT:?}",
            d.format
        )));
    }
    if d.ram.is_empty() || d.ram.len() > MAX_RAM_RANGES {
        return Err(bad(format!(
            "ram: 1 to {MAX_RAM_RANGES} ranges, found {}",
            d.ram.len()
        )));
    }
    let mut end = 0u64;
    for (i, r) in d.ram.iter().enumerate() {
        let aligned = r.base % PAGE == 0 && r.size % PAGE == 0 && r.size != 0;
        let top = r.base.checked_add(r.size);
        if !aligned || top.is_none() || (i > 0 && r.base < end) {
            return Err(bad(format!(
                "ram[{i}]: {:#x}+{:#x} is not a 4 KiB aligned range above the one before",
                r.base, r.size
            )));
        }
        end = top.unwrap_or(u64::MAX);
    }
    let n = s.vcpus().len();
    let g = &d.gic;
    if g.redist.len() != n || g.cpu.len() != n {
        return Err(bad(format!(
            "gic: {} redistributors and {} CPU interfaces for {n} vCPUs",
            g.redist.len(),
            g.cpu.len()
        )));
    }
    if g.nr_irqs < 64 || g.nr_irqs > 1024 || g.nr_irqs % 32 != 0 {
        return Err(bad(format!(
            "gic.nr_irqs: {} (64 to 1024, a multiple of 32)",
            g.nr_irqs
        )));
    }
    if let Some(i) = g
        .line_levels
        .iter()
        .position(|l| l.0 % 32 != 0 || l.0 < 32 || l.0 >= g.nr_irqs)
    {
        return Err(bad(format!(
            "gic.line_levels[{i}]: interrupt {} is not the first of 32 SPIs below {}",
            g.line_levels[i].0, g.nr_irqs
        )));
    }
    if d.implementations.len() > crate::firmware::MAX_IMPLEMENTATIONS {
        return Err(bad(format!(
            "implementations: {}, at most {}",
            d.implementations.len(),
            crate::firmware::MAX_IMPLEMENTATIONS
        )));
    }
    if !d.implementations.is_empty() && matches!(d.engine, None | Some(Value::Null)) {
        return Err(bad("implementations without an engine".into()));
    }
    let engine = match &d.engine {
        None | Some(Value::Null) => None,
        Some(v) => {
            let e = Snapshot::from_value(v).map_err(|e| bad(format!("engine: {e}")))?;
            if e.vcpus().len() != n {
                return Err(bad(format!(
                    "engine: {} vCPUs, the snapshot {n}",
                    e.vcpus().len()
                )));
            }
            Some(e)
        }
    };
    Ok(engine)
}

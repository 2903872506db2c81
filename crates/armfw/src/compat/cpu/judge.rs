//! How the CPU baseline judges one register: its parts (the fields of the kernel's table,
//! the bits no field covers, or the whole register), whether a host presents a value (asked
//! of the model), the rule-derived value, and the rule that refuses one.

use crate::abi::vcpu_reg::sysreg_encoding;
use crate::abi::{CpuFeatures, Errno, OneRegId};
use crate::json::Wide;
use crate::profile::{FeatureSet, Profile};
use crate::register::{RegClass, ftr};
use crate::vcpu::rules::{self, SysRule};
use crate::vcpu::{VcpuModel, VcpuSetup, after_first_run};

/// The registers that describe the CPU, by the rule their SET follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Describes {
    /// A feature ID register: changes from 6.7, per field.
    Id,
    /// CTR_EL0: an ID register from 6.11.
    Ctr,
    /// MIDR_EL1, REVIDR_EL1, AIDR_EL1: writable from 6.15 with the capability.
    Imp,
    /// CLIDR_EL1 and the CCSIDR_EL1 demux: writable from 6.3.
    Cache,
}

pub(super) fn describes(id: u64) -> Option<Describes> {
    let r = OneRegId(id);
    match RegClass::from_value(r.class()) {
        Some(RegClass::Demux) => Some(Describes::Cache),
        Some(RegClass::SysReg) if r.size_bytes() == 8 => match rules::sys_rule(id) {
            SysRule::IdReg => Some(Describes::Id),
            SysRule::Ctr => Some(Describes::Ctr),
            SysRule::ImpId => Some(Describes::Imp),
            SysRule::Clidr => Some(Describes::Cache),
            _ => None,
        },
        _ => None,
    }
}

/// One part of a register the baseline decides on its own: a field of the kernel's table,
/// the bits no field covers, or the whole register.
#[derive(Clone, Copy, Debug)]
pub(super) struct Part {
    pub(super) name: &'static str,
    pub(super) mask: u64,
    pub(super) field: Option<&'static ftr::FtrField>,
}

pub(super) fn parts(id: u64, size_mask: u64) -> Vec<Part> {
    let table = match describes(id) {
        Some(Describes::Id | Describes::Ctr) => {
            let (op0, op1, crn, crm, op2) = sysreg_encoding(id);
            ftr::ftr_reg(op0, op1, crn, crm, op2)
        }
        _ => None,
    };
    let Some(table) = table else {
        return vec![Part {
            name: "value",
            mask: size_mask,
            field: None,
        }];
    };
    let mut out: Vec<Part> = table
        .fields
        .iter()
        .map(|f| Part {
            name: f.name,
            mask: ftr::field_mask(f),
            field: Some(f),
        })
        .collect();
    let covered = out.iter().fold(0, |acc, p| acc | p.mask);
    if covered != size_mask {
        out.push(Part {
            name: "other bits",
            mask: size_mask & !covered,
            field: None,
        });
    }
    out
}

/// One distinct host of the pool, as the baseline uses it.
pub(super) struct Host<'a> {
    /// Its index in the pool (the first host with these facts).
    pub(super) index: usize,
    /// Every index in the pool with the same facts.
    pub(super) members: Vec<usize>,
    pub(super) profile: &'a Profile,
    pub(super) set: &'a FeatureSet,
}

impl Host<'_> {
    /// The value a VM of this host shows for `id` after its first run, nothing written.
    pub(super) fn value(&self, id: u64) -> Option<u64> {
        let reset = self.set.reset(id).map(Wide::low_u64)?;
        Some(after_first_run(self.set, id, reset))
    }

    /// A model VM of this host with the baseline's set-up, the implementation ids writable
    /// where the host can make them so.
    pub(super) fn model(
        &self,
        features: CpuFeatures,
        sve_vls: Option<&Vec<u8>>,
    ) -> Result<VcpuModel, String> {
        let cap = self
            .profile
            .vcpu()
            .is_some_and(|v| v.capabilities.writable_imp_id_regs);
        let setup = VcpuSetup {
            vcpus: 1,
            features,
            sve_vls: sve_vls.cloned(),
            writable_imp_id_regs: cap,
        };
        match VcpuModel::new(self.profile, &setup) {
            Some(Ok(m)) => Ok(m),
            Some(Err(e)) => Err(e),
            None => Err("no vCPU registers".to_string()),
        }
    }
}

/// Why a host does not present a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// KVM_SET_ONE_REG fails.
    Errno(Errno),
    /// KVM_SET_ONE_REG succeeds but the register then reads this (KVM ignores the write).
    Ignored(u64),
}

/// Whether the model VM `m` (of the host whose probed set is `set`) presents `value` for `id`
/// once it is written before the first run: the write succeeds and, after what the first
/// run does to it, the register reads it back. A write it takes is undone, so
/// that every question starts from the fresh VM.
pub(super) fn accepts(
    m: &mut VcpuModel,
    set: &FeatureSet,
    id: u64,
    value: u64,
    host_value: u64,
) -> Result<(), Refused> {
    let size = OneRegId(id).size_bytes().min(8);
    let bytes = value.to_le_bytes();
    m.set(0, id, &bytes[..size]).map_err(Refused::Errno)?;
    let read = m
        .get(0, id)
        .map(|b| after_first_run(set, id, crate::json::le_u64(&b)))
        .map_err(Refused::Errno)?;
    let back = set
        .reset(id)
        .map_or(host_value, Wide::low_u64)
        .to_le_bytes();
    // Writing the host's own value back is always accepted before the first run.
    let _ = m.set(0, id, &back[..size]);
    if read == value {
        Ok(())
    } else {
        Err(Refused::Ignored(read))
    }
}

/// The rule-derived value of a part across `values` (one per host, inside the part's mask):
/// the field's safe value by its type as KVM judges it (`kvm_arm64_ftr_safe_value()`), the
/// first host's value for a part without a field. With the rule's name.
pub(super) fn derived(id: u64, part: &Part, values: &[u64]) -> (u64, &'static str) {
    let first = values.first().copied().unwrap_or(0);
    let Some(f) = part.field else {
        return (first, "the value of the first host that can present it");
    };
    let kind = ftr::kvm_kind(sysreg_encoding(id), f);
    let signed = |v: u64| ftr::field_value(f, v);
    let pick_min = || {
        values
            .iter()
            .copied()
            .min_by_key(|&v| signed(v))
            .unwrap_or(first)
    };
    let pick_max = || {
        values
            .iter()
            .copied()
            .max_by_key(|&v| signed(v))
            .unwrap_or(first)
    };
    match kind {
        ftr::FtrType::LowerSafe => (pick_min(), "lower-safe: the lowest host value"),
        ftr::FtrType::HigherSafe => (pick_max(), "higher-safe: the highest host value"),
        ftr::FtrType::HigherOrZeroSafe if values.contains(&0) => {
            (0, "higher-or-zero-safe: zero, which a host has")
        }
        ftr::FtrType::HigherOrZeroSafe => {
            (pick_max(), "higher-or-zero-safe: the highest host value")
        }
        ftr::FtrType::Exact => {
            let safe = u64::from_ne_bytes(f.safe.to_ne_bytes());
            (
                safe.checked_shl(u32::from(f.shift)).unwrap_or(0) & part.mask,
                "exact: the field's safe value",
            )
        }
    }
}

/// Why `host` cannot present `value` in `part` of `id`: the rule of its kernel.
pub(super) fn why_not(host: &Host<'_>, id: u64, part: &Part) -> String {
    let release = host.profile.release();
    let writable = host
        .profile
        .vcpu()
        .and_then(|v| v.writable_mask(id))
        .unwrap_or(0);
    match describes(id) {
        Some(Describes::Imp) => {
            let cap = host
                .profile
                .vcpu()
                .is_some_and(|v| v.capabilities.writable_imp_id_regs);
            if cap {
                "the value lies outside the bits the host lets userspace write".into()
            } else {
                "the implementation ids are writable only from 6.15, with KVM_CAP_ARM_WRITABLE_IMP_ID_REGS".into()
            }
        }
        Some(Describes::Id) if !release.at_least(6, 7) => {
            "before 6.7 KVM accepts no change to an ID register".into()
        }
        Some(Describes::Ctr) if !release.at_least(6, 11) => {
            "before 6.11 KVM accepts no change to CTR_EL0".into()
        }
        Some(Describes::Cache) if !release.at_least(6, 3) => {
            "before 6.3 KVM accepts no change to the cache geometry".into()
        }
        Some(Describes::Cache) => "the host's KVM refuses that cache hierarchy".into(),
        _ if part.mask & !writable != 0 => {
            "the host does not let userspace write these bits (KVM_ARM_GET_REG_WRITABLE_MASKS)"
                .into()
        }
        _ => match part.field.map(|f| ftr::kvm_kind(sysreg_encoding(id), f)) {
            Some(ftr::FtrType::LowerSafe) => {
                "lower-safe: the host presents only values up to its own".into()
            }
            Some(ftr::FtrType::HigherSafe) => {
                "higher-safe: the host presents only values from its own up".into()
            }
            Some(ftr::FtrType::HigherOrZeroSafe) => {
                "higher-or-zero-safe: the host presents only zero or values from its own up".into()
            }
            Some(ftr::FtrType::Exact) => {
                "exact: the host presents only its own value or the field's safe value".into()
            }
            None => "the host refuses the change".into(),
        },
    }
}

pub(super) fn shown(part: &Part, bits: u64) -> String {
    shown_bits(part.mask, bits)
}

/// The bits `bits` of the field `mask`, shifted down, as hex.
pub(super) fn shown_bits(mask: u64, bits: u64) -> String {
    crate::json::hex(bits.checked_shr(mask.trailing_zeros()).unwrap_or(0))
}

//! Why a destination refuses a saved register of a whole VM, judged as the CPU baseline
//! judges a field.

use super::{Describes, Host, accepts, describes, parts, shown, why_not};
use crate::abi::{CpuFeatures, OneRegId};
use crate::profile::Profile;
use crate::vcpu::names::reg_name;

/// Why a destination refuses a saved register of a whole VM, in the terms of a finding:
/// what it accepts, the rule, and the remedy. `saved` is the register's saved value (low 64
/// bits), `errno` KVM's answer to the write-all restore. For a CPU-describing register the
/// first part of it the destination cannot present is named, as the CPU baseline judges it
/// (on the model of the destination).
pub fn explain_refusal(
    dest: &Profile,
    features: CpuFeatures,
    id: u64,
    saved: u64,
    errno: crate::abi::Errno,
) -> RegisterExplanation {
    let name = reg_name(id);
    if errno == crate::abi::Errno::ENOENT {
        return RegisterExplanation {
            accepts: format!(
                "nothing: the destination does not list {name} for these vCPU features"
            ),
            rule: "register_not_listed",
            remedy: format!(
                "a destination that lists {name}; or VMs whose ID registers show its feature absent, which armfw's plan then leaves it out of"
            ),
        };
    }
    if let Some(reg) = crate::abi::FwReg::from_id(id) {
        return firmware_refusal(dest, reg, saved, errno);
    }
    let set = dest.vcpu().and_then(|v| v.feature_set(features));
    let (Some(set), Some(_)) = (set, describes(id)) else {
        return RegisterExplanation {
            accepts: format!("not this value of {name} ({errno})"),
            rule: "value_refused",
            remedy: "a destination whose KVM takes the value".to_string(),
        };
    };
    let host = Host {
        index: 0,
        members: Vec::new(),
        profile: dest,
        set,
    };
    let own = host.value(id).unwrap_or(0);
    let size = OneRegId(id).size_bytes();
    let size_mask = if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size * 8)) - 1
    };
    let remedy = format!(
        "create the VM with a CPU baseline that covers both hosts, where one does (armfw baseline SOURCE {} says)",
        dest.name()
    );
    if let Ok(mut m) = host.model(features, None) {
        for part in parts(id, size_mask) {
            if (saved ^ own) & part.mask == 0 {
                continue;
            }
            let probe = (own & !part.mask) | (saved & part.mask);
            if accepts(&mut m, set, id, probe, own).is_err() {
                let field = if part.field.is_some() || part.name == "other bits" {
                    format!("{name}.{}", part.name)
                } else {
                    name.clone()
                };
                return RegisterExplanation {
                    accepts: format!(
                        "{field} = {} (its own), not the saved {}; {}",
                        shown(&part, own & part.mask),
                        shown(&part, saved & part.mask),
                        why_not(&host, id, &part)
                    ),
                    rule: match describes(id) {
                        Some(Describes::Imp) => "implementation_id_fixed",
                        Some(Describes::Cache) => "cache_geometry_fixed",
                        _ => "id_field_not_presentable",
                    },
                    remedy,
                };
            }
        }
    }
    RegisterExplanation {
        accepts: format!("not {name} = {saved:#x} as a whole ({errno}), though each field alone"),
        rule: "id_register_refused",
        remedy,
    }
}

/// [`explain_refusal`] of a firmware register: what the register table's SET rule takes on
/// `dest`.
fn firmware_refusal(
    dest: &Profile,
    reg: crate::abi::FwReg,
    saved: u64,
    errno: crate::abi::Errno,
) -> RegisterExplanation {
    use crate::register::SetRule;
    let name = reg.name();
    let desc = crate::register::firmware(reg);
    let accepts = match desc.rule {
        SetRule::PsciVersion => format!(
            "PSCI versions {}, not the saved {}",
            dest.psci_versions()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            u32::try_from(saved).map_or_else(
                |_| format!("{saved:#x}"),
                |v| crate::abi::PsciVersion(v).to_string()
            )
        ),
        SetRule::HostLevel(_) => format!(
            "{name} up to its own level {:#x}, not the saved {saved:#x}",
            dest.register(reg).map_or(0, |r| r.default)
        ),
        SetRule::FeatureBitmap => format!(
            "{name} within its writable bits {:#x}, not the saved {saved:#x}",
            dest.register(reg).and_then(|r| r.writable).unwrap_or(0)
        ),
    };
    RegisterExplanation {
        accepts: format!("{accepts} ({errno})"),
        rule: "firmware_value_refused",
        remedy: format!(
            "create the VM with the firmware baseline of both hosts (armfw baseline SOURCE {}), or write the destination's value where the guest's view allows (armfw check --state)",
            dest.name()
        ),
    }
}

/// What [`explain_refusal`] says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterExplanation {
    /// What the destination accepts instead.
    pub accepts: String,
    /// The rule's name.
    pub rule: &'static str,
    /// What would make the move possible.
    pub remedy: String,
}

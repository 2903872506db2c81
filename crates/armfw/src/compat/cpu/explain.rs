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

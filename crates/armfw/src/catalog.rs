//! What each register of a host means and which values the host accepts, as `armfw regs`
//! shows it: the register table's facts ([`crate::register`]) applied to one profile.

use serde_json::{Value, json};

use crate::abi::{CpuFeatures, FwReg, OneRegId, PsciVersion};
use crate::json::{Wide, hex};
use crate::profile::Profile;
use crate::register::{self, RegClass, SetContext, SetRule};
use crate::release::Release;
use crate::vcpu::{self, rules};

pub use crate::register::Scope;

/// One register of one host, described.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterInfo {
    /// The register.
    pub reg: FwReg,
    /// The value a fresh VM reads.
    pub default: u64,
    /// The values SET accepts (for bitmaps: every subset of [`RegisterInfo::mask`]).
    pub accepts: Vec<u64>,
    /// Bitmaps: the bits SET accepts.
    pub mask: Option<u64>,
    /// VM-wide value or host property.
    pub scope: Scope,
    /// The first upstream release with the register.
    pub since: Release,
    /// What the register means and its rule, in one sentence.
    pub meaning: &'static str,
}

/// Every register of `profile`, described, in KVM's order.
pub fn registers(profile: &Profile) -> Vec<RegisterInfo> {
    profile
        .registers()
        .iter()
        .map(|r| {
            let desc = register::firmware(r.reg);
            let (accepts, mask) = match desc.rule {
                SetRule::PsciVersion => (
                    profile
                        .psci_versions()
                        .iter()
                        .map(|v| u64::from(v.0))
                        .collect(),
                    None,
                ),
                // The values the register's own SET rule accepts on this host.
                SetRule::HostLevel(kind) => {
                    let ctx = SetContext {
                        psci_0_2: true,
                        has_run: false,
                        current: r.default,
                        ssbs_hidden: false,
                    };
                    let accepts = kind
                        .values()
                        .iter()
                        .copied()
                        .filter(|&v| desc.rule.set(r.reg, profile, ctx, v).is_ok())
                        .collect();
                    (accepts, None)
                }
                _ => (Vec::new(), r.writable),
            };
            RegisterInfo {
                reg: r.reg,
                default: r.default,
                accepts,
                mask,
                scope: desc.scope,
                since: desc.since,
                meaning: desc.meaning,
            }
        })
        .collect()
}

impl RegisterInfo {
    /// The accepted values in words: versions by name, levels as numbers, bitmaps as a mask.
    pub fn accepts_text(&self) -> String {
        match (self.reg, self.mask) {
            (FwReg::PsciVersion, _) => {
                let v: Vec<String> = self
                    .accepts
                    .iter()
                    .map(|&a| match u32::try_from(a) {
                        Ok(v) => PsciVersion(v).to_string(),
                        Err(_) => hex(a),
                    })
                    .collect();
                format!("{} (0.1 without PSCI_0_2)", v.join(", "))
            }
            (_, Some(mask)) => format!("any subset of {}", hex(mask)),
            _ => self
                .accepts
                .iter()
                .map(|&a| hex(a))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// The JSON form.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": hex(self.reg.id()),
            "name": self.reg.name(),
            "default": hex(self.default),
        });
        match self.mask {
            Some(m) => v["accepts_mask"] = json!(hex(m)),
            None => v["accepts"] = json!(self.accepts.iter().map(|&a| hex(a)).collect::<Vec<_>>()),
        }
        v["scope"] = json!(self.scope.name());
        v["since"] = json!(format!("{}.{}", self.since.major, self.since.minor));
        v["meaning"] = json!(self.meaning);
        v
    }
}

/// One register of a vCPU of one host, described (a version-2 profile's feature set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VcpuRegInfo {
    /// The ONE_REG id.
    pub id: u64,
    /// Its name ([`crate::vcpu::names::reg_name`]).
    pub name: String,
    /// Its class, where KVM has it.
    pub class: Option<RegClass>,
    /// The value on a fresh vCPU.
    pub reset: Wide,
    /// `vcpu` (each vCPU its own value), `vm` (one value for the VM) or a firmware
    /// register's scope.
    pub scope: &'static str,
    /// KVM's SET rule in one line.
    pub rule: &'static str,
}

/// Every register a vCPU with `features` has on `profile`, in KVM's order; `None` for a
/// version-1 profile, `Err` for features KVM would refuse.
pub fn vcpu_registers(
    profile: &Profile,
    features: CpuFeatures,
) -> Option<Result<Vec<VcpuRegInfo>, String>> {
    let v = profile.vcpu()?;
    let release = profile.release();
    Some(vcpu::feature_set(v, features).map(|set| {
        set.registers
            .0
            .iter()
            .map(|(id, reset)| {
                let firmware = crate::abi::FwReg::from_id(*id).map(register::firmware);
                let scope = match (firmware, rules::sys_rule(*id)) {
                    (Some(d), _) => d.scope.name(),
                    (None, rule)
                        if rule.vm_wide() && OneRegId(*id).class() == RegClass::SysReg.value() =>
                    {
                        "vm"
                    }
                    _ => "vcpu",
                };
                VcpuRegInfo {
                    id: *id,
                    name: vcpu::names::reg_name(*id),
                    class: RegClass::from_value(OneRegId(*id).class()),
                    reset: reset.clone(),
                    scope,
                    rule: firmware.map_or_else(|| rules::describe(*id, release), |d| d.meaning),
                }
            })
            .collect()
    }))
}

impl VcpuRegInfo {
    /// The JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "id": hex(self.id),
            "name": self.name,
            "class": self.class.map_or("unknown", RegClass::name),
            "reset": self.reset,
            "scope": self.scope,
            "rule": self.rule,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workaround2_accepts_legacy_levels_only_on_a_not_required_host() {
        let p = crate::profile::builtin_named("linux-6.12.117-cortex-a53").unwrap();
        let wa2 = registers(&p)
            .into_iter()
            .find(|r| r.reg == FwReg::SmcccArchWorkaround2)
            .unwrap();
        assert_eq!(wa2.accepts, vec![0, 1, 2, 3, 0x12]);
        let p = crate::profile::builtin_named("linux-6.12.117-max").unwrap();
        let wa2 = registers(&p)
            .into_iter()
            .find(|r| r.reg == FwReg::SmcccArchWorkaround2)
            .unwrap();
        assert_eq!(wa2.accepts, vec![0, 1]);
    }

    /// The catalogue's accepted values must be exactly what the engine's SET accepts.
    #[test]
    fn catalogue_accepts_agree_with_the_engine() {
        for p in crate::profile::builtin() {
            let mut fw = crate::Firmware::new(&p);
            fw.add_vcpu().unwrap();
            fw.init_vcpu(
                0,
                crate::firmware::VcpuFeatures {
                    psci_0_2: true,
                    power_off: false,
                },
            )
            .unwrap();
            for info in registers(&p) {
                if info.mask.is_some() {
                    continue;
                }
                for v in (0..=0x20u64).chain(0x1_0000..=0x1_0004) {
                    let ok = fw.set_one_reg(0, info.reg.id(), v).is_ok();
                    assert_eq!(
                        ok,
                        info.accepts.contains(&v),
                        "{} {} {:#x}",
                        p.name(),
                        info.reg,
                        v
                    );
                }
            }
        }
    }
}

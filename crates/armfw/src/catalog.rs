//! What each firmware register means and which values a host accepts: the facts behind
//! `armfw regs`.

use serde_json::{Value, json};

use crate::abi::reg::{
    KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_AVAIL, KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_ENABLED,
    KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_NOT_REQUIRED,
};
use crate::abi::{FwReg, PsciVersion};
use crate::json::hex;
use crate::profile::Profile;

/// Where a register's value lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One value for the VM, read and written through any vCPU.
    Vm,
    /// A property of the host: GET reports it, SET only validates and stores nothing.
    Host,
}

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
    pub since: &'static str,
    /// What the register means and its rule, in one sentence.
    pub meaning: &'static str,
}

/// The release that introduced `reg`, and its meaning.
pub const fn about(reg: FwReg) -> (&'static str, &'static str) {
    match reg {
        FwReg::PsciVersion => (
            "4.17",
            "PSCI version the guest sees (major<<16|minor); VM-wide, writable at any time; 0.1 only without PSCI_0_2",
        ),
        FwReg::SmcccArchWorkaround1 => (
            "5.2",
            "host Spectre-v2 level (0 NOT_AVAIL, 1 AVAIL, 2 NOT_REQUIRED); SET accepts a level up to the host's and stores nothing",
        ),
        FwReg::SmcccArchWorkaround2 => (
            "5.2",
            "host Spectre-v4/SSB level (0 NOT_AVAIL, 3 NOT_REQUIRED; 1, 2 and bit 4 ENABLED are legacy); SET accepts levels whose mapping ({0,1}->0, {2,3}->3) is up to the host's and stores nothing",
        ),
        FwReg::SmcccArchWorkaround3 => (
            "5.17",
            "host Spectre-BHB level (0 NOT_AVAIL, 1 AVAIL, 2 NOT_REQUIRED); SET accepts a level up to the host's and stores nothing",
        ),
        FwReg::StdBmap => (
            "5.19",
            "standard services the guest may call: bit 0 TRNG 1.0; VM-wide; EBUSY for a change once the VM has run",
        ),
        FwReg::StdHypBmap => (
            "5.19",
            "standard hypervisor services: bit 0 PV time; VM-wide; EBUSY for a change once the VM has run",
        ),
        FwReg::VendorHypBmap => (
            "5.19",
            "KVM vendor services: bit 0 FEATURES and CALL_UID, bit 1 PTP; VM-wide; EBUSY for a change once the VM has run",
        ),
        FwReg::VendorHypBmap2 => (
            "6.15",
            "KVM vendor services 64..127, advertised only (bit 0 DISCOVER_IMPL_VER, bit 1 DISCOVER_IMPL_CPUS; userspace serves them); VM-wide; EBUSY for a change once the VM has run",
        ),
    }
}

/// Every register of `profile`, described, in KVM's order.
pub fn registers(profile: &Profile) -> Vec<RegisterInfo> {
    profile
        .registers
        .iter()
        .map(|r| {
            let (since, meaning) = about(r.reg);
            let (accepts, mask, scope) = match r.reg {
                FwReg::PsciVersion => (
                    profile
                        .psci_versions
                        .iter()
                        .map(|v| u64::from(v.0))
                        .collect(),
                    None,
                    Scope::Vm,
                ),
                FwReg::SmcccArchWorkaround1 | FwReg::SmcccArchWorkaround3 => {
                    ((0..=r.default).collect(), None, Scope::Host)
                }
                FwReg::SmcccArchWorkaround2 => {
                    let mut a = vec![0, 1];
                    if r.default == KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_NOT_REQUIRED {
                        a.extend([
                            KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_AVAIL,
                            KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_NOT_REQUIRED,
                            KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_AVAIL
                                | KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_ENABLED,
                        ]);
                    }
                    (a, None, Scope::Host)
                }
                _ => (Vec::new(), r.writable, Scope::Vm),
            };
            RegisterInfo {
                reg: r.reg,
                default: r.default,
                accepts,
                mask,
                scope,
                since,
                meaning,
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
                    .map(|&a| PsciVersion(a as u32).to_string())
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
        v["scope"] = json!(match self.scope {
            Scope::Vm => "vm",
            Scope::Host => "host",
        });
        v["since"] = json!(self.since);
        v["meaning"] = json!(self.meaning);
        v
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
                        p.name,
                        info.reg,
                        v
                    );
                }
            }
        }
    }
}

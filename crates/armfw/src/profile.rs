//! Host profiles: what one host's KVM offers the firmware of its guests.
//!
//! A profile is what a probe sees on a real host (`armfw probe`): the kernel release, the
//! firmware registers KVM lists with the value each reads on a fresh VM, which PSCI versions
//! `KVM_REG_ARM_PSCI_VERSION` accepts, which bits each bitmap register accepts, and the
//! capabilities that change firmware behaviour. The model ([`crate::firmware`]) answers as that
//! host would; the rules a probe cannot see come from [`crate::release::Rules`].
//!
//! # JSON form
//!
//! ```json
//! {
//!   "format": "armfw-profile/1",
//!   "name": "linux-6.12.117-cortex-a72",
//!   "kernel": "6.12.117+deb12-arm64",
//!   "cpu": "cortex-a72",
//!   "source": "probed by armfw 0.1.0",
//!   "registers": [
//!     {"name": "PSCI_VERSION", "id": "0x6030000000140000", "default": "0x10001"},
//!     {"name": "STD_BMAP", "id": "0x6030000000160000", "default": "0x1", "writable": "0x1"}
//!   ],
//!   "psci_versions": ["0x2", "0x10000", "0x10001"],
//!   "capabilities": {"psci_0_2": true, "system_suspend": true, "smccc_filter": true}
//! }
//! ```
//!
//! - `registers`: the firmware registers in KVM_GET_REG_LIST order; `default` is what GET
//!   returns on a fresh VM whose vCPUs have `KVM_ARM_VCPU_PSCI_0_2` (for the WORKAROUND
//!   registers: the host's levels); `writable` (bitmap registers only, required there) is the
//!   set of bits SET accepts. `PSCI_VERSION` is required.
//! - `psci_versions`: the values SET accepts for `PSCI_VERSION` on a vCPU with PSCI_0_2.
//! - `kernel_version` (optional): the kernel's `uname -v`, which carries the patch level where
//!   the release string does not (Debian 6.1).
//! - Numbers follow the scenario rule (integer or `0x` hex string); output uses hex strings.

use serde_json::{Value, json};

use crate::abi::{FwReg, PsciVersion};
use crate::json::{FieldError, Obj, err, hex, number};
use crate::register::{self, SetRule};
use crate::release::{Release, Rules};

/// The format tag of this profile schema.
pub const PROFILE_FORMAT: &str = "armfw-profile/1";

/// One firmware register of a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileReg {
    /// Which register.
    pub reg: FwReg,
    /// The value GET returns on a fresh VM (PSCI_0_2 vCPUs).
    pub default: u64,
    /// Bitmap registers: the bits SET accepts. `None` for the other registers.
    pub writable: Option<u64>,
}

/// Capabilities that change what the firmware does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// `KVM_CAP_ARM_PSCI_0_2`: vCPUs can have the PSCI_0_2 feature.
    pub psci_0_2: bool,
    /// `KVM_CAP_ARM_SYSTEM_SUSPEND`: the VM can enable PSCI SYSTEM_SUSPEND exits (5.19).
    pub system_suspend: bool,
    /// The SMCCC filter VM attribute (`KVM_ARM_VM_SMCCC_FILTER`, 6.4).
    pub smccc_filter: bool,
}

/// A host profile. Build one with [`Profile::from_json`]; every profile that exists has
/// passed [`Profile::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// A short unique name, e.g. `linux-6.12.117-cortex-a72`.
    pub name: String,
    /// The kernel release (`uname -r`).
    pub kernel: String,
    /// The kernel version string (`uname -v`), if known.
    pub kernel_version: Option<String>,
    /// The CPU model of the host (for emulated hosts, QEMU's `-cpu`).
    pub cpu: String,
    /// Where the profile came from.
    pub source: String,
    /// The firmware registers in KVM's list order.
    pub registers: Vec<ProfileReg>,
    /// The PSCI versions SET accepts with PSCI_0_2, ascending.
    pub psci_versions: Vec<PsciVersion>,
    /// Capabilities.
    pub capabilities: Capabilities,
}

/// Why a profile was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// The text is not JSON.
    #[error("not JSON: {0}")]
    Json(String),
    /// A field is missing, mistyped or inconsistent.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// No built-in profile has that name.
    #[error("no built-in profile named {0:?} (see `armfw profiles`)")]
    UnknownBuiltin(String),
}

impl Profile {
    /// Parse and validate a profile from its JSON text.
    pub fn from_json(text: &str) -> Result<Profile, ProfileError> {
        let v: Value = serde_json::from_str(text).map_err(|e| ProfileError::Json(e.to_string()))?;
        Ok(Self::from_value(&v)?)
    }

    /// Parse and validate a profile from a JSON value.
    pub fn from_value(v: &Value) -> Result<Profile, FieldError> {
        let mut o = Obj::new("", v)?;
        match o.string("format")? {
            Some(PROFILE_FORMAT) => {}
            Some(other) => {
                return err(
                    "format",
                    format!("expected {PROFILE_FORMAT:?}, found {other:?}"),
                );
            }
            None => return err("format", "missing"),
        }
        let name = required_string(&mut o, "name")?;
        let kernel = required_string(&mut o, "kernel")?;
        let kernel_version = o.string("kernel_version")?.map(str::to_string);
        let cpu = required_string(&mut o, "cpu")?;
        let source = o.string("source")?.unwrap_or("").to_string();
        let mut registers = Vec::new();
        let regs = o.array("registers")?.ok_or_else(|| missing("registers"))?;
        for (i, r) in regs.iter().enumerate() {
            registers.push(read_reg(&format!("registers[{i}]"), r)?);
        }
        let mut psci_versions = Vec::new();
        let vers = o
            .array("psci_versions")?
            .ok_or_else(|| missing("psci_versions"))?;
        for (i, v) in vers.iter().enumerate() {
            let path = format!("psci_versions[{i}]");
            let n = number(&path, v)?;
            let ver = u32::try_from(n)
                .ok()
                .map(PsciVersion)
                .filter(|v| v.is_kvm_version());
            match ver {
                Some(v) => psci_versions.push(v),
                None => {
                    return err(
                        &path,
                        format!("{} is not a PSCI version KVM implements", hex(n)),
                    );
                }
            }
        }
        let caps_v = o.required("capabilities")?;
        let mut c = Obj::new("capabilities", caps_v)?;
        let capabilities = Capabilities {
            psci_0_2: c.bool("psci_0_2")?.unwrap_or(true),
            system_suspend: c
                .bool("system_suspend")?
                .ok_or_else(|| missing("capabilities.system_suspend"))?,
            smccc_filter: c
                .bool("smccc_filter")?
                .ok_or_else(|| missing("capabilities.smccc_filter"))?,
        };
        c.finish()?;
        o.finish()?;
        let p = Profile {
            name,
            kernel,
            kernel_version,
            cpu,
            source,
            registers,
            psci_versions,
            capabilities,
        };
        p.validate()?;
        Ok(p)
    }

    /// Check the profile's internal consistency.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b))
        {
            return err(
                "name",
                "must be non-empty and use only letters, digits and - _ . +",
            );
        }
        if Release::parse(&self.kernel).is_none() {
            return err(
                "kernel",
                format!("{:?} does not start with major.minor", self.kernel),
            );
        }
        for (i, r) in self.registers.iter().enumerate() {
            let path = format!("registers[{i}]");
            if self.registers[..i].iter().any(|o| o.reg == r.reg) {
                return err(&path, format!("{} is listed twice", r.reg));
            }
            let rule = register::firmware(r.reg).rule;
            if matches!(rule, SetRule::FeatureBitmap) != r.writable.is_some() {
                return err(
                    &format!("{path}.writable"),
                    "required for bitmap registers and only there",
                );
            }
            if let Some(w) = r.writable {
                if r.default & !w != 0 {
                    return err(&format!("{path}.default"), "has bits outside writable");
                }
            }
            if !rule.is_host_value(r.default) {
                return err(
                    &format!("{path}.default"),
                    format!(
                        "{} is not a level KVM reports for {}",
                        hex(r.default),
                        r.reg
                    ),
                );
            }
        }
        let Some(psci) = self.register(FwReg::PsciVersion) else {
            return err(
                "registers",
                "PSCI_VERSION is missing (every kernel with firmware registers has it)",
            );
        };
        if self.psci_versions.is_empty() || self.psci_versions.contains(&PsciVersion::V0_1) {
            return err(
                "psci_versions",
                "must list the versions accepted with PSCI_0_2 (0.2 and later)",
            );
        }
        if !self.psci_versions.windows(2).all(|w| w[0] < w[1]) {
            return err("psci_versions", "must be ascending without repeats");
        }
        let accepted =
            u32::try_from(psci.default).is_ok_and(|d| self.psci_versions.contains(&PsciVersion(d)));
        if !accepted {
            return err(
                "registers",
                "the PSCI_VERSION default is not among psci_versions",
            );
        }
        Ok(())
    }

    /// The profile's entry for `reg`, if the host has it.
    pub fn register(&self, reg: FwReg) -> Option<&ProfileReg> {
        self.registers.iter().find(|r| r.reg == reg)
    }

    /// The kernel release.
    pub fn release(&self) -> Release {
        // validate() guarantees the release parses; a profile cannot exist otherwise.
        Release::parse(&self.kernel).unwrap_or(Release::new(0, 0, 0))
    }

    /// The release's behaviour rules.
    pub fn rules(&self) -> Rules {
        Rules::for_release(self.release())
    }

    /// The default PSCI version of a PSCI_0_2 vCPU (KVM_ARM_PSCI_LATEST of the kernel).
    pub fn psci_default(&self) -> PsciVersion {
        self.register(FwReg::PsciVersion)
            .and_then(|r| u32::try_from(r.default).ok())
            .map_or(PsciVersion::V0_2, PsciVersion)
    }

    /// The host's level of a WORKAROUND register, or `None` if the host lacks the register.
    pub fn workaround_level(&self, reg: FwReg) -> Option<u64> {
        debug_assert!(reg.is_workaround());
        self.register(reg).map(|r| r.default)
    }

    /// The JSON form.
    pub fn to_json(&self) -> Value {
        let regs: Vec<Value> = self
            .registers
            .iter()
            .map(|r| {
                let mut m =
                    json!({"name": r.reg.name(), "id": hex(r.reg.id()), "default": hex(r.default)});
                if let Some(w) = r.writable {
                    m["writable"] = json!(hex(w));
                }
                m
            })
            .collect();
        let mut v = json!({
            "format": PROFILE_FORMAT,
            "name": self.name,
            "kernel": self.kernel,
        });
        if let Some(kv) = &self.kernel_version {
            v["kernel_version"] = json!(kv);
        }
        v["cpu"] = json!(self.cpu);
        v["source"] = json!(self.source);
        v["registers"] = json!(regs);
        v["psci_versions"] = json!(
            self.psci_versions
                .iter()
                .map(|p| hex(p.0.into()))
                .collect::<Vec<_>>()
        );
        v["capabilities"] = json!({
            "psci_0_2": self.capabilities.psci_0_2,
            "system_suspend": self.capabilities.system_suspend,
            "smccc_filter": self.capabilities.smccc_filter,
        });
        v
    }
}

fn missing(path: &str) -> FieldError {
    FieldError {
        kind: crate::json::FieldErrorKind::MissingField,
        path: path.to_string(),
        message: "missing".to_string(),
    }
}

fn required_string(o: &mut Obj<'_>, key: &'static str) -> Result<String, FieldError> {
    o.string(key)?
        .map(str::to_string)
        .ok_or_else(|| missing(key))
}

fn read_reg(path: &str, v: &Value) -> Result<ProfileReg, FieldError> {
    let mut o = Obj::new(path, v)?;
    let name_path = o.path("name");
    let name = o.string("name")?.ok_or_else(|| missing(&name_path))?;
    let Some(reg) = FwReg::from_name(name) else {
        return err(
            &name_path,
            format!("{name:?} is not a firmware register name"),
        );
    };
    let id_path = o.path("id");
    if let Some(id) = o.number("id")? {
        if id != reg.id() {
            return err(
                &id_path,
                format!("{} is not the id of {} ({})", hex(id), reg, hex(reg.id())),
            );
        }
    }
    let default_path = o.path("default");
    let default = o.number("default")?.ok_or_else(|| missing(&default_path))?;
    let writable = o.number("writable")?;
    o.finish()?;
    Ok(ProfileReg {
        reg,
        default,
        writable,
    })
}

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_profiles.rs"));
}

/// The built-in profiles: the hosts whose profiles are committed under `profiles/`, in name
/// order.
pub fn builtin() -> Vec<Profile> {
    builtin::PROFILES
        .iter()
        .filter_map(|(_, text)| Profile::from_json(text).ok())
        .collect()
}

/// The built-in profile with this name.
pub fn builtin_named(name: &str) -> Result<Profile, ProfileError> {
    builtin::PROFILES
        .iter()
        .find(|(file, _)| *file == name)
        .map(|(_, text)| Profile::from_json(text))
        .unwrap_or_else(|| Err(ProfileError::UnknownBuiltin(name.to_string())))
}

/// The profile used when none is named: the built-in profile of the newest kernel, ties broken
/// by name.
pub fn default_profile() -> Option<Profile> {
    builtin()
        .into_iter()
        .max_by(|a, b| a.release().cmp(&b.release()).then(b.name.cmp(&a.name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "format": "armfw-profile/1",
            "name": "t",
            "kernel": "6.12.117+deb12-arm64",
            "cpu": "max",
            "registers": [
                {"name": "PSCI_VERSION", "default": "0x10001"},
                {"name": "SMCCC_ARCH_WORKAROUND_1", "default": "0x2"},
                {"name": "STD_BMAP", "default": "0x1", "writable": "0x1"}
            ],
            "psci_versions": ["0x2", "0x10000", "0x10001"],
            "capabilities": {"system_suspend": true, "smccc_filter": true}
        })
    }

    #[test]
    fn profile_round_trips_through_json() {
        let p = Profile::from_value(&sample()).unwrap();
        let again = Profile::from_value(&p.to_json()).unwrap();
        assert_eq!(p, again);
        assert_eq!(p.psci_default(), PsciVersion::V1_1);
    }

    #[test]
    fn profile_with_wrong_register_id_names_the_field() {
        let mut v = sample();
        v["registers"][1]["id"] = json!("0x6030000000140002");
        let e = Profile::from_value(&v).unwrap_err();
        assert_eq!(e.path, "registers[1].id");
    }

    #[test]
    fn profile_with_default_psci_not_accepted_is_refused() {
        let mut v = sample();
        v["registers"][0]["default"] = json!("0x10003");
        assert_eq!(Profile::from_value(&v).unwrap_err().path, "registers");
    }

    #[test]
    fn profile_with_unknown_key_is_refused() {
        let mut v = sample();
        v["capabilities"]["smccc_fliter"] = json!(true);
        assert_eq!(
            Profile::from_value(&v).unwrap_err().path,
            "capabilities.smccc_fliter"
        );
    }

    #[test]
    fn profile_bitmap_without_writable_is_refused() {
        let mut v = sample();
        v["registers"][2]
            .as_object_mut()
            .unwrap()
            .remove("writable");
        assert_eq!(
            Profile::from_value(&v).unwrap_err().path,
            "registers[2].writable"
        );
    }

    #[test]
    fn profile_workaround2_level_must_be_one_kvm_reports() {
        let mut v = sample();
        v["registers"][1] = json!({"name": "SMCCC_ARCH_WORKAROUND_2", "default": "0x2"});
        assert_eq!(
            Profile::from_value(&v).unwrap_err().path,
            "registers[1].default"
        );
    }

    #[test]
    fn every_builtin_profile_is_valid_and_named_after_its_file() {
        assert!(!builtin::PROFILES.is_empty());
        for (file, text) in builtin::PROFILES {
            let p = Profile::from_json(text).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(&p.name, file);
        }
    }
}

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

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::abi::{FwReg, PsciVersion};
use crate::json::{self, FieldError, FieldErrorKind, err, hex};
use crate::register::{self, SetRule};
use crate::release::{Release, Rules};

mod file;
mod vcpu;

use file::{ProfileFile, RegFile};

pub use vcpu::{FeatureSet, IdMap, VcpuCapabilities, VcpuProfile};

/// The format tag of a version-1 profile (firmware registers only).
pub const PROFILE_FORMAT: &str = "armfw-profile/1";
/// The format tag of a version-2 profile (version 1 plus the whole vCPU: the `vcpu` key).
pub const PROFILE_FORMAT_2: &str = "armfw-profile/2";

/// One firmware register of a host.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "RegFile", into = "RegFile")]
pub struct ProfileReg {
    /// Which register.
    pub reg: FwReg,
    /// The value GET returns on a fresh VM (PSCI_0_2 vCPUs).
    pub default: u64,
    /// Bitmap registers: the bits SET accepts. `None` for the other registers.
    pub writable: Option<u64>,
}

/// Capabilities that change what the firmware does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// `KVM_CAP_ARM_PSCI_0_2`: vCPUs can have the PSCI_0_2 feature (absent in a file: true).
    #[serde(default = "yes")]
    pub psci_0_2: bool,
    /// `KVM_CAP_ARM_SYSTEM_SUSPEND`: the VM can enable PSCI SYSTEM_SUSPEND exits (5.19).
    pub system_suspend: bool,
    /// The SMCCC filter VM attribute (`KVM_ARM_VM_SMCCC_FILTER`, 6.4).
    pub smccc_filter: bool,
}

/// The parts of a [`Profile`], unchecked: what [`Profile::new`] validates and
/// [`Profile::into_parts`] gives back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileParts {
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
    /// Version 2: the whole vCPU as the probe saw it; `None` in a version-1 profile.
    pub vcpu: Option<VcpuProfile>,
}

/// A host profile. Build one with [`Profile::from_json`], [`Profile::from_value`] or
/// [`Profile::new`]; every profile that exists has passed [`Profile::validate`], and its
/// fields are read through the accessors.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "ProfileFile", into = "ProfileFile")]
pub struct Profile {
    /// Shared: a profile is cloned into every VM made from it (the whole-vCPU part holds
    /// every register of every feature set), and never changes once made.
    parts: std::sync::Arc<ProfileParts>,
}

/// Why a profile was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The text is not JSON.
    #[error("not JSON: {0}")]
    Json(String),
    /// A field is missing, mistyped, duplicated or inconsistent.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// No built-in profile has that name.
    #[error("no built-in profile named {0:?} (see `armfw profiles`)")]
    UnknownBuiltin(String),
}

impl Profile {
    /// Parse and validate a profile from its JSON text (the strict reading of
    /// [`crate::json::from_str`]: unknown and duplicate keys are errors).
    pub fn from_json(text: &str) -> Result<Profile, ProfileError> {
        json::from_str(text).map_err(|e| match e.kind {
            FieldErrorKind::Syntax => ProfileError::Json(e.message),
            _ => ProfileError::Field(e),
        })
    }

    /// Parse and validate a profile from a JSON value.
    pub fn from_value(v: &Value) -> Result<Profile, FieldError> {
        json::from_value(v)
    }

    /// A profile from its parts, if they pass [`Profile::validate`].
    pub fn new(parts: ProfileParts) -> Result<Profile, FieldError> {
        parts.validate()?;
        Ok(Profile {
            parts: std::sync::Arc::new(parts),
        })
    }

    /// Whether `other` is a clone of this profile (the same shared facts): a cheap test
    /// before comparing field by field.
    pub fn shares_facts_with(&self, other: &Profile) -> bool {
        std::sync::Arc::ptr_eq(&self.parts, &other.parts)
    }

    /// The parts, to edit and build again with [`Profile::new`].
    pub fn into_parts(self) -> ProfileParts {
        std::sync::Arc::unwrap_or_clone(self.parts)
    }

    /// The parts, to edit in place without validation: for the crate's tests that need an
    /// invalid or edited profile.
    #[cfg(test)]
    pub(crate) fn parts_mut(&mut self) -> &mut ProfileParts {
        std::sync::Arc::make_mut(&mut self.parts)
    }

    /// A short unique name, e.g. `linux-6.12.117-cortex-a72`.
    pub fn name(&self) -> &str {
        &self.parts.name
    }

    /// The kernel release (`uname -r`).
    pub fn kernel(&self) -> &str {
        &self.parts.kernel
    }

    /// The kernel version string (`uname -v`), if known.
    pub fn kernel_version(&self) -> Option<&str> {
        self.parts.kernel_version.as_deref()
    }

    /// The CPU model of the host (for emulated hosts, QEMU's `-cpu`).
    pub fn cpu(&self) -> &str {
        &self.parts.cpu
    }

    /// Where the profile came from.
    pub fn source(&self) -> &str {
        &self.parts.source
    }

    /// The firmware registers in KVM's list order.
    pub fn registers(&self) -> &[ProfileReg] {
        &self.parts.registers
    }

    /// The PSCI versions SET accepts with PSCI_0_2, ascending.
    pub fn psci_versions(&self) -> &[PsciVersion] {
        &self.parts.psci_versions
    }

    /// Capabilities.
    pub fn capabilities(&self) -> &Capabilities {
        &self.parts.capabilities
    }

    /// Check the profile's internal consistency, and that it is what a real host reports and
    /// what a state file saved from it can hold: the name's characters; the name and kernel at
    /// most [`crate::snapshot::MAX_TEXT`] bytes; the release; `psci_0_2` (every kernel with
    /// firmware registers has it); system suspend only from 5.19 and the SMCCC filter only
    /// from 6.4; each register once, in KVM's register-list order (ascending ids), with
    /// `writable` for bitmaps only and host-reportable defaults; `PSCI_VERSION` present and its
    /// default among the ascending `psci_versions` (0.2 and later).
    pub fn validate(&self) -> Result<(), FieldError> {
        self.parts.validate()
    }

    /// The whole-vCPU part (a version-2 profile), if the profile has it.
    pub fn vcpu(&self) -> Option<&VcpuProfile> {
        self.parts.vcpu.as_ref()
    }

    /// The profile's entry for `reg`, if the host has it.
    pub fn register(&self, reg: FwReg) -> Option<&ProfileReg> {
        self.registers().iter().find(|r| r.reg == reg)
    }

    /// The kernel release.
    pub fn release(&self) -> Release {
        // validate() guarantees the release parses; a profile cannot exist otherwise.
        Release::parse(self.kernel()).unwrap_or(Release::new(0, 0, 0))
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
        // A profile is plain data: its file form always serialises.
        serde_json::to_value(ProfileFile::from(self.clone())).unwrap_or(Value::Null)
    }
}

const fn yes() -> bool {
    true
}

impl ProfileParts {
    /// The checks of [`Profile::validate`].
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
        // What `armfw save` writes from a profile, `armfw check` must read: a snapshot's
        // texts are at most MAX_TEXT bytes.
        for (path, text) in [("name", &self.name), ("kernel", &self.kernel)] {
            if text.len() > crate::snapshot::MAX_TEXT {
                return err(
                    path,
                    format!(
                        "longer than {} bytes (a state file could not name it)",
                        crate::snapshot::MAX_TEXT
                    ),
                );
            }
        }
        let Some(release) = Release::parse(&self.kernel) else {
            return err(
                "kernel",
                format!("{:?} does not start with major.minor", self.kernel),
            );
        };
        // No real host reports these (each capability's first release, Linux's
        // Documentation/virt/kvm/api.rst).
        if !self.capabilities.psci_0_2 {
            return err(
                "capabilities.psci_0_2",
                "false, but every kernel with firmware registers (4.17 and later) has KVM_CAP_ARM_PSCI_0_2 (3.16), and psci_versions lists versions only PSCI_0_2 vCPUs can have",
            );
        }
        if self.capabilities.system_suspend && !release.at_least(5, 19) {
            return err(
                "capabilities.system_suspend",
                format!("KVM_CAP_ARM_SYSTEM_SUSPEND is new in 5.19; {release} cannot have it"),
            );
        }
        if self.capabilities.smccc_filter && !release.at_least(6, 4) {
            return err(
                "capabilities.smccc_filter",
                format!("the SMCCC filter is new in 6.4; {release} cannot have it"),
            );
        }
        for (i, r) in self.registers.iter().enumerate() {
            let path = format!("registers[{i}]");
            if self.registers[..i].iter().any(|o| o.reg == r.reg) {
                return err(&path, format!("{} is listed twice", r.reg));
            }
            if i > 0 && self.registers[i - 1].reg.id() > r.reg.id() {
                return err(
                    &path,
                    format!(
                        "{} comes after {}: registers are listed in KVM's register-list order (ascending ids), as a state file holds them",
                        r.reg,
                        self.registers[i - 1].reg
                    ),
                );
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
        let Some(psci) = self.registers.iter().find(|r| r.reg == FwReg::PsciVersion) else {
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
        if let Some(v) = &self.vcpu {
            v.validate()?;
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
}

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_profiles.rs"));
}

/// The built-in profiles: the hosts whose profiles are committed under `crates/armfw/profiles/`
/// (embedded at build time), in name order.
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
        .max_by(|a, b| a.release().cmp(&b.release()).then(b.name().cmp(a.name())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    /// The committed files are what the probe wrote: writing them again gives the same bytes.
    #[test]
    fn every_builtin_profile_writes_back_byte_for_byte() {
        for (file, text) in builtin::PROFILES {
            let p = Profile::from_json(text).unwrap();
            let again = serde_json::to_string_pretty(&p.to_json()).unwrap();
            assert_eq!(again.trim_end(), text.trim_end(), "{file}");
        }
    }

    #[test]
    fn profile_with_a_duplicate_key_is_refused_with_its_path() {
        let text =
            sample()
                .to_string()
                .replacen("\"cpu\":\"max\"", "\"cpu\":\"max\",\"cpu\":\"a72\"", 1);
        let ProfileError::Field(e) = Profile::from_json(&text).unwrap_err() else {
            panic!("a field error")
        };
        assert_eq!(
            (e.kind, e.path.as_str()),
            (FieldErrorKind::DuplicateKey, "cpu")
        );
    }

    #[test]
    fn every_builtin_profile_is_valid_and_named_after_its_file() {
        assert!(!builtin::PROFILES.is_empty());
        for (file, text) in builtin::PROFILES {
            let p = Profile::from_json(text).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(&p.name(), file);
        }
    }
}

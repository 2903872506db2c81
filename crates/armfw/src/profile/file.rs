//! The profile file's schema ([`ProfileFile`]): what a profile file holds, key by key, and
//! its conversions to and from [`Profile`], which validate.

use serde::{Deserialize, Serialize};

use super::{
    Capabilities, PROFILE_FORMAT, PROFILE_FORMAT_2, Profile, ProfileParts, ProfileReg, VcpuProfile,
};
use crate::abi::{FwReg, PsciVersion};
use crate::json::{FieldError, Invalid, Number, hex};

/// The format tag: [`PROFILE_FORMAT`] or [`PROFILE_FORMAT_2`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
enum FormatTag {
    V1,
    V2,
}

impl TryFrom<String> for FormatTag {
    type Error = Invalid;

    fn try_from(s: String) -> Result<FormatTag, Invalid> {
        match s.as_str() {
            PROFILE_FORMAT => Ok(FormatTag::V1),
            PROFILE_FORMAT_2 => Ok(FormatTag::V2),
            _ => Err(FieldError::bad_value(
                "",
                format!("expected {PROFILE_FORMAT:?} or {PROFILE_FORMAT_2:?}, found {s:?}"),
            )
            .into()),
        }
    }
}

impl From<FormatTag> for String {
    fn from(t: FormatTag) -> String {
        match t {
            FormatTag::V1 => PROFILE_FORMAT,
            FormatTag::V2 => PROFILE_FORMAT_2,
        }
        .to_string()
    }
}

/// The profile file's schema; [`Profile`] is read and written through it.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProfileFile {
    format: FormatTag,
    name: String,
    kernel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kernel_version: Option<String>,
    cpu: String,
    #[serde(default)]
    source: String,
    registers: Vec<ProfileReg>,
    psci_versions: Vec<KvmPsciVersion>,
    capabilities: Capabilities,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vcpu: Option<VcpuProfile>,
}

/// One register in a profile file.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RegFile {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<Number>,
    default: Number,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    writable: Option<Number>,
}

/// A PSCI version KVM implements, as a number.
#[derive(Clone, Copy, Deserialize, Serialize)]
#[serde(try_from = "Number", into = "Number")]
pub(super) struct KvmPsciVersion(PsciVersion);

impl TryFrom<Number> for KvmPsciVersion {
    type Error = Invalid;

    fn try_from(n: Number) -> Result<KvmPsciVersion, Invalid> {
        u32::try_from(n.0)
            .ok()
            .map(PsciVersion)
            .filter(|v| v.is_kvm_version())
            .map(KvmPsciVersion)
            .ok_or_else(|| {
                FieldError::bad_value(
                    "",
                    format!("{} is not a PSCI version KVM implements", hex(n.0)),
                )
                .into()
            })
    }
}

impl From<KvmPsciVersion> for Number {
    fn from(v: KvmPsciVersion) -> Number {
        Number(u64::from(v.0.0))
    }
}

impl TryFrom<RegFile> for ProfileReg {
    type Error = Invalid;

    fn try_from(r: RegFile) -> Result<ProfileReg, Invalid> {
        let Some(reg) = FwReg::from_name(&r.name) else {
            return Err(FieldError::bad_value(
                "name",
                format!("{:?} is not a firmware register name", r.name),
            )
            .into());
        };
        if let Some(id) = r.id {
            if id.0 != reg.id() {
                return Err(FieldError::bad_value(
                    "id",
                    format!("{} is not the id of {} ({})", hex(id.0), reg, hex(reg.id())),
                )
                .into());
            }
        }
        Ok(ProfileReg {
            reg,
            default: r.default.0,
            writable: r.writable.map(u64::from),
        })
    }
}

impl From<ProfileReg> for RegFile {
    fn from(r: ProfileReg) -> RegFile {
        RegFile {
            name: r.reg.name().to_string(),
            id: Some(Number(r.reg.id())),
            default: Number(r.default),
            writable: r.writable.map(Number),
        }
    }
}

impl TryFrom<ProfileFile> for Profile {
    type Error = Invalid;

    fn try_from(f: ProfileFile) -> Result<Profile, Invalid> {
        match (f.format, f.vcpu.is_some()) {
            (FormatTag::V1, true) => {
                return Err(FieldError::bad_value(
                    "vcpu",
                    format!("is a version-2 key; the format is {PROFILE_FORMAT:?}"),
                )
                .into());
            }
            (FormatTag::V2, false) => {
                return Err(FieldError::missing("vcpu").into());
            }
            _ => {}
        }
        let p = ProfileParts {
            name: f.name,
            kernel: f.kernel,
            kernel_version: f.kernel_version,
            cpu: f.cpu,
            source: f.source,
            registers: f.registers,
            psci_versions: f.psci_versions.into_iter().map(|v| v.0).collect(),
            capabilities: f.capabilities,
            vcpu: f.vcpu,
        };
        Ok(Profile::new(p)?)
    }
}

impl From<Profile> for ProfileFile {
    fn from(p: Profile) -> ProfileFile {
        let p = p.into_parts();
        ProfileFile {
            format: if p.vcpu.is_some() {
                FormatTag::V2
            } else {
                FormatTag::V1
            },
            name: p.name,
            kernel: p.kernel,
            kernel_version: p.kernel_version,
            cpu: p.cpu,
            source: p.source,
            registers: p.registers,
            psci_versions: p.psci_versions.into_iter().map(KvmPsciVersion).collect(),
            capabilities: p.capabilities,
            vcpu: p.vcpu,
        }
    }
}

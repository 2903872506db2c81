//! The JSON form of a snapshot as serde types: one schema, read and written (the binary form
//! is [`super::codec`]'s canonical body; `DESIGN.md` says why it stays hand-written).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::machine::MachineFile;
use super::{
    Error, FORMAT_1_0, FORMAT_NAME, FORMAT_VERSION, FilterRange, FormatVersion, MAX_FILTER_RANGES,
    MAX_REGISTERS, MAX_TEXT, PendingStart, SavedReg, Snapshot, Source, VcpuState, VmState,
};
use crate::abi::FwReg;
use crate::firmware::{FilterAction, KVM_MAX_VCPUS, MpState, mp_state_from_name};
use crate::json::{self, FieldError, Invalid, Number, hex, parse_hex};

/// The whole file.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SnapshotFile {
    format: String,
    source: SourceFile,
    vm: VmFile,
    vcpus: Vec<VcpuFile>,
    /// The whole-vCPU part: in 2.0 files only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    machine: Option<MachineFile>,
    checksum: String,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SourceFile {
    profile: Text,
    kernel: Text,
}

/// A text of 1 to [`MAX_TEXT`] bytes.
#[derive(Deserialize, Serialize)]
#[serde(try_from = "String")]
struct Text(String);

impl TryFrom<String> for Text {
    type Error = Invalid;

    fn try_from(s: String) -> Result<Text, Invalid> {
        if s.is_empty() || s.len() > MAX_TEXT {
            return Err(FieldError::bad_value("", format!("must be 1 to {MAX_TEXT} bytes")).into());
        }
        Ok(Text(s))
    }
}

#[derive(Deserialize, Serialize)]
#[serde(try_from = "VmFields")]
struct VmFile(VmFields);

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct VmFields {
    psci_0_2: bool,
    has_run: bool,
    system_suspend: bool,
    #[serde(default)]
    smccc_filter: Vec<RangeFile>,
    registers: Vec<RegFile>,
}

impl TryFrom<VmFields> for VmFile {
    type Error = Invalid;

    fn try_from(v: VmFields) -> Result<VmFile, Invalid> {
        if v.smccc_filter.len() > MAX_FILTER_RANGES {
            return Err(FieldError::bad_value(
                "smccc_filter",
                format!("more than {MAX_FILTER_RANGES} ranges"),
            )
            .into());
        }
        if v.registers.len() > MAX_REGISTERS {
            return Err(FieldError::bad_value(
                "registers",
                format!("more than {MAX_REGISTERS} registers"),
            )
            .into());
        }
        Ok(VmFile(v))
    }
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RangeFile {
    base: U32,
    nr_functions: U32,
    action: ActionName,
}

/// A number below 2^32.
#[derive(Clone, Copy, Deserialize, Serialize)]
#[serde(try_from = "Number", into = "Number")]
struct U32(u32);

impl TryFrom<Number> for U32 {
    type Error = Invalid;

    fn try_from(n: Number) -> Result<U32, Invalid> {
        u32::try_from(n.0).map(U32).map_err(|_| {
            FieldError::bad_value("", format!("{} does not fit 32 bits", hex(n.0))).into()
        })
    }
}

impl From<U32> for Number {
    fn from(n: U32) -> Number {
        Number(n.0.into())
    }
}

/// An SMCCC filter action by its KVM name.
#[derive(Clone, Copy, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
struct ActionName(FilterAction);

const ACTIONS: [(FilterAction, &str); 3] = [
    (FilterAction::Handle, "HANDLE"),
    (FilterAction::Deny, "DENY"),
    (FilterAction::Forward, "FWD_TO_USER"),
];

impl TryFrom<String> for ActionName {
    type Error = Invalid;

    fn try_from(s: String) -> Result<ActionName, Invalid> {
        ACTIONS
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(a, _)| ActionName(*a))
            .ok_or_else(|| {
                FieldError::bad_value("", format!("{s:?} is not HANDLE, DENY or FWD_TO_USER"))
                    .into()
            })
    }
}

impl From<ActionName> for String {
    fn from(a: ActionName) -> String {
        ACTIONS
            .iter()
            .find(|(x, _)| *x == a.0)
            .map_or("", |(_, n)| n)
            .to_string()
    }
}

#[derive(Clone, Deserialize, Serialize)]
#[serde(try_from = "RegFields", into = "RegFields")]
struct RegFile(SavedReg);

#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RegFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    id: Number,
    value: Number,
}

impl TryFrom<RegFields> for RegFile {
    type Error = Invalid;

    fn try_from(r: RegFields) -> Result<RegFile, Invalid> {
        if let Some(name) = &r.name {
            match FwReg::from_name(name) {
                Some(reg) if reg.id() == r.id.0 => {}
                Some(reg) => {
                    return Err(FieldError::bad_value(
                        "name",
                        format!("{name} has id {}, not {}", hex(reg.id()), hex(r.id.0)),
                    )
                    .into());
                }
                None => {
                    return Err(FieldError::bad_value(
                        "name",
                        format!("{name:?} is not a firmware register name"),
                    )
                    .into());
                }
            }
        }
        Ok(RegFile(SavedReg {
            id: r.id.0,
            value: r.value.0,
        }))
    }
}

impl From<RegFile> for RegFields {
    fn from(r: RegFile) -> RegFields {
        RegFields {
            name: r.0.reg().map(|reg| reg.name().to_string()),
            id: Number(r.0.id),
            value: Number(r.0.value),
        }
    }
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct VcpuFile {
    mp_state: MpStateName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending_start: Option<PendingFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pv_time_ipa: Option<Number>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct PendingFile {
    entry: Number,
    context_id: Number,
}

/// An arm64 MP state by its KVM name (`KVM_MP_STATE_NAMES`).
#[derive(Clone, Copy, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
struct MpStateName(MpState);

/// The `KVM_MP_STATE_*` name of an arm64 MP state.
pub(super) fn mp_state_name(s: MpState) -> &'static str {
    crate::firmware::mp_state_name(s.kvm_value()).unwrap_or("")
}

impl TryFrom<String> for MpStateName {
    type Error = Invalid;

    fn try_from(s: String) -> Result<MpStateName, Invalid> {
        mp_state_from_name(&s)
            .and_then(MpState::from_kvm_value)
            .map(MpStateName)
            .ok_or_else(|| {
                FieldError::bad_value("", format!("{s:?} is not RUNNABLE, STOPPED or SUSPENDED"))
                    .into()
            })
    }
}

impl From<MpStateName> for String {
    fn from(m: MpStateName) -> String {
        mp_state_name(m.0).to_string()
    }
}

impl Snapshot {
    /// The JSON form (see `docs/migration.md`), with its checksum.
    pub fn to_json(&self) -> Value {
        let file = SnapshotFile {
            format: format!("{FORMAT_NAME}/{}", self.format_version()),
            source: SourceFile {
                profile: Text(self.source.profile.clone()),
                kernel: Text(self.source.kernel.clone()),
            },
            vm: VmFile(VmFields {
                psci_0_2: self.vm.psci_0_2,
                has_run: self.vm.has_run,
                system_suspend: self.vm.system_suspend,
                smccc_filter: self
                    .vm
                    .smccc_filter
                    .iter()
                    .map(|f| RangeFile {
                        base: U32(f.base),
                        nr_functions: U32(f.nr_functions),
                        action: ActionName(f.action),
                    })
                    .collect(),
                registers: self.vm.registers.iter().map(|r| RegFile(*r)).collect(),
            }),
            vcpus: self
                .vcpus
                .iter()
                .map(|v| VcpuFile {
                    mp_state: MpStateName(v.mp_state),
                    pending_start: v.pending_start.map(|p| PendingFile {
                        entry: Number(p.entry),
                        context_id: Number(p.context_id),
                    }),
                    pv_time_ipa: v.pv_time_ipa.map(Number),
                })
                .collect(),
            machine: self.machine.as_ref().map(MachineFile::from),
            checksum: format!("crc32:{:#010x}", self.checksum()),
        };
        // Plain data: the file form always serialises.
        serde_json::to_value(file).unwrap_or(Value::Null)
    }

    /// Load the JSON form from untrusted text: format and version rule, every field (strict:
    /// unknown and duplicate keys are errors), the checksum, then [`Snapshot::validate`].
    pub fn from_json(text: &str) -> Result<Snapshot, Error> {
        let v = json::parse_value(text).map_err(|e| match e.kind {
            json::FieldErrorKind::Syntax => Error::Json(e.message),
            _ => Error::Field(e),
        })?;
        Self::from_value(&v)
    }

    /// Load the JSON form from a parsed value (see [`Snapshot::from_json`]).
    pub fn from_value(v: &Value) -> Result<Snapshot, Error> {
        let Value::Object(map) = v else {
            return Err(Error::NotASnapshot(format!(
                "expected a JSON object, found {}",
                json::kind(v)
            )));
        };
        let format = match map.get("format") {
            Some(Value::String(s)) => s.as_str(),
            Some(other) => {
                return Err(FieldError::bad_value(
                    "format",
                    format!("expected a string, found {}", json::kind(other)),
                )
                .into());
            }
            None => return Err(Error::NotASnapshot("no \"format\" field".to_string())),
        };
        let found = parse_format(format)?;
        if !found.is_readable() {
            return Err(Error::UnsupportedVersion { found });
        }
        let file: SnapshotFile = json::from_value(v)?;
        if file.vcpus.len() > KVM_MAX_VCPUS {
            return Err(
                FieldError::bad_value("vcpus", format!("more than {KVM_MAX_VCPUS} vCPUs")).into(),
            );
        }
        let stored = file
            .checksum
            .strip_prefix("crc32:")
            .and_then(parse_hex)
            .and_then(|c| u32::try_from(c).ok())
            .ok_or_else(|| {
                FieldError::bad_value(
                    "checksum",
                    format!(
                        "expected crc32:0x followed by 1 to 8 hex digits, found {:?}",
                        file.checksum
                    ),
                )
            })?;
        let machine = match (file.machine, found == FORMAT_1_0) {
            (Some(_), true) => {
                return Err(FieldError::bad_value(
                    "machine",
                    format!("the whole-vCPU part needs format {FORMAT_VERSION}"),
                )
                .into());
            }
            (None, false) => {
                return Err(FieldError::bad_value(
                    "machine",
                    format!("is required in format {found}"),
                )
                .into());
            }
            (m, _) => m.map(MachineFile::into_machine).transpose()?,
        };
        let vm = file.vm.0;
        let s = Snapshot {
            machine,
            source: Source {
                profile: file.source.profile.0,
                kernel: file.source.kernel.0,
            },
            vm: VmState {
                psci_0_2: vm.psci_0_2,
                has_run: vm.has_run,
                system_suspend: vm.system_suspend,
                smccc_filter: vm
                    .smccc_filter
                    .into_iter()
                    .map(|f| FilterRange {
                        base: f.base.0,
                        nr_functions: f.nr_functions.0,
                        action: f.action.0,
                    })
                    .collect(),
                registers: vm.registers.into_iter().map(|r| r.0).collect(),
            },
            vcpus: file
                .vcpus
                .into_iter()
                .map(|v| VcpuState {
                    mp_state: v.mp_state.0,
                    pending_start: v.pending_start.map(|p| PendingStart {
                        entry: p.entry.0,
                        context_id: p.context_id.0,
                    }),
                    pv_time_ipa: v.pv_time_ipa.map(u64::from),
                })
                .collect(),
        };
        let computed = s.checksum();
        if stored != computed {
            return Err(Error::Checksum { stored, computed });
        }
        s.validate()?;
        Ok(s)
    }
}

fn parse_format(format: &str) -> Result<FormatVersion, Error> {
    let Some(version) = format
        .strip_prefix(FORMAT_NAME)
        .and_then(|r| r.strip_prefix('/'))
    else {
        return Err(Error::NotASnapshot(format!(
            "format is {format:?}, expected \"{FORMAT_NAME}/{FORMAT_VERSION}\""
        )));
    };
    let parsed = version.split_once('.').and_then(|(a, b)| {
        let ok = |s: &str| !s.is_empty() && s.len() <= 5 && s.bytes().all(|c| c.is_ascii_digit());
        if ok(a) && ok(b) {
            Some(FormatVersion {
                major: a.parse().ok()?,
                minor: b.parse().ok()?,
            })
        } else {
            None
        }
    });
    parsed.ok_or_else(|| {
        FieldError::bad_value(
            "format",
            format!("{format:?}: the version must be major.minor, e.g. {FORMAT_VERSION}"),
        )
        .into()
    })
}

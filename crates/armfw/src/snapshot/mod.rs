//! Firmware state snapshots: save a VM's firmware state, load it back from untrusted bytes,
//! restore it atomically.
//!
//! A [`Snapshot`] holds what the guest-visible firmware of one VM is made of:
//!
//! - VM-wide: the firmware registers as `(id, value)` pairs in KVM_GET_REG_LIST order (the
//!   PSCI version selection is `KVM_REG_ARM_PSCI_VERSION`), whether the vCPUs have
//!   `KVM_ARM_VCPU_PSCI_0_2`, whether the VM has run (the guest has seen its firmware),
//!   whether `KVM_CAP_ARM_SYSTEM_SUSPEND` is enabled, and the SMCCC filter ranges the VMM
//!   installed (KVM cannot read those back, so the VMM records them).
//! - per vCPU: the MP state, a CPU_ON start the VMM has not applied yet, the stolen-time IPA.
//! - where it came from: the source profile's name and kernel release.
//!
//! Firmware registers are VM-wide values or host properties (Linux
//! `Documentation/virt/kvm/arm/fw-pseudo-registers.rst`), so they are stored once for the VM,
//! as a vCPU with the VM's features reads them. Every vCPU of a snapshot has the same PSCI
//! family (all with PSCI_0_2 or all without).
//!
//! # File format
//!
//! Two forms with one content. The JSON form (`"format": "armfw-snapshot/1.0"`) is the
//! interchange form; the binary form is the canonical encoding the checksum covers, framed:
//!
//! ```text
//! +----------+-------+-------+----------+----------------------+-------+
//! | ARMFWSNP | major | minor | body len | body (canonical)     | CRC32 |
//! | 8 bytes  | u16   | u16   | u32      | body len bytes       | u32   |
//! +----------+-------+-------+----------+----------------------+-------+
//! ```
//!
//! All integers are little-endian. The JSON form carries `"checksum": "crc32:0x…"`, the CRC32
//! (IEEE 802.3, as zlib) of the same canonical body, so a JSON file whose values were edited by
//! hand is refused unless its checksum is recomputed (`armfw save` does it). See
//! `docs/migration.md` for the body layout.
//!
//! # Version rule
//!
//! The format version is `major.minor` ([`FORMAT_VERSION`]). A new minor version may only add
//! information; a new major version may change meaning. A reader accepts its own major version
//! at its own minor version or an older one, and refuses any other with
//! [`Error::UnsupportedVersion`], which names both versions: a newer minor is refused too,
//! because the checksum covers information this reader cannot see.
//!
//! # Loading never panics
//!
//! [`Snapshot::from_json`] and [`Snapshot::from_bytes`] take untrusted input: every count is
//! bounded before anything is allocated, every field is validated ([`Snapshot::validate`]),
//! and every error names the field (`vcpus[2].mp_state`).

mod codec;
mod file;
pub mod machine;
mod step;

pub use codec::crc32;
pub use machine::{Machine, RegValue};
pub use step::Step;

use crate::abi::reg::{KVM_REG_SIZE_MASK, KVM_REG_SIZE_U64};
use crate::abi::{FwReg, OneRegId, PsciVersion};
use crate::firmware::{FilterAction, KVM_MAX_VCPUS, MpState};
use crate::json::{FieldError, err, hex};
use crate::release::Release;

/// The format name, before `/major.minor` in the JSON `format` field.
pub const FORMAT_NAME: &str = "armfw-snapshot";

/// The format version of a snapshot with the whole-vCPU part ([`Machine`]), and the newest
/// this crate reads.
pub const FORMAT_VERSION: FormatVersion = FormatVersion { major: 2, minor: 0 };

/// The format version of a firmware-only snapshot: one without [`Machine`] is written as
/// 1.0, so that every reader of 1.0 keeps reading it.
pub const FORMAT_1_0: FormatVersion = FormatVersion { major: 1, minor: 0 };

/// The most ids a saved register list may hold (KVM lists 240 to 400 on the hosts the
/// project boots; room for nested virtualization's EL2 registers).
pub const MAX_REG_LIST: usize = 4096;

/// The first eight bytes of the binary form.
pub const MAGIC: [u8; 8] = *b"ARMFWSNP";

/// The most firmware registers a snapshot may hold (KVM has 8; room for future ones).
pub const MAX_REGISTERS: usize = 16;

/// The most SMCCC filter ranges a snapshot may hold.
pub const MAX_FILTER_RANGES: usize = 1024;

/// The longest source profile name or kernel release, in bytes.
pub const MAX_TEXT: usize = 256;

/// A snapshot format version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FormatVersion {
    /// Changes meaning when it changes.
    pub major: u16,
    /// Adds information when it changes.
    pub minor: u16,
}

impl FormatVersion {
    /// Whether this crate reads snapshots of version `self`: 1.0, or 2.x with x not newer
    /// than [`FORMAT_VERSION`]'s.
    pub const fn is_readable(self) -> bool {
        // `minor <= FORMAT_VERSION.minor`, written so that it stays meaningful at minor 0.
        (self.major == FORMAT_1_0.major && self.minor == FORMAT_1_0.minor)
            || (self.major == FORMAT_VERSION.major
                && FORMAT_VERSION.minor.checked_sub(self.minor).is_some())
    }
}

impl std::fmt::Display for FormatVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Why a snapshot was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The checksum stored in the file does not match its content.
    #[error(
        "checksum: the file says crc32:{stored:#010x}, its content gives crc32:{computed:#010x}"
    )]
    Checksum {
        /// The checksum in the file.
        stored: u32,
        /// The checksum of the content read.
        computed: u32,
    },
    /// A field is missing, mistyped, out of range or inconsistent.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// The text is not JSON.
    #[error("not JSON: {0}")]
    Json(String),
    /// The input is not an armfw snapshot at all (no magic, no `format`).
    #[error("not an armfw snapshot: {0}")]
    NotASnapshot(String),
    /// The binary form ends early.
    #[error("truncated: {what} needs {needed} bytes at offset {offset}, {available} left")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Where.
        offset: usize,
        /// How many bytes it needs.
        needed: usize,
        /// How many bytes were left.
        available: usize,
    },
    /// Bytes follow the end of the binary form.
    #[error("{0} bytes after the end of the snapshot")]
    TrailingBytes(usize),
    /// A format version this crate does not read.
    #[error(
        "format version {found} is not readable: this armfw reads {FORMAT_NAME} {FORMAT_1_0} and {}.0 to {}",
        FORMAT_VERSION.major,
        FORMAT_VERSION
    )]
    UnsupportedVersion {
        /// The version in the input.
        found: FormatVersion,
    },
}

/// Where a snapshot was taken.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Source {
    /// The source host's profile name.
    pub profile: String,
    /// The source host's kernel release (`uname -r`).
    pub kernel: String,
}

/// One saved firmware register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SavedReg {
    /// The ONE_REG id: a 64-bit id of class 0x14 or 0x16 (possibly one armfw does not know).
    pub id: u64,
    /// The value GET returned.
    pub value: u64,
}

impl SavedReg {
    /// The register, if armfw knows the id.
    pub fn reg(&self) -> Option<FwReg> {
        FwReg::from_id(self.id)
    }
}

/// One SMCCC filter range the VMM installed (`struct kvm_smccc_filter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FilterRange {
    /// The first function id.
    pub base: u32,
    /// How many ids.
    pub nr_functions: u32,
    /// What KVM does with them.
    pub action: FilterAction,
}

/// A CPU_ON start the VMM received from the engine and has not applied yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PendingStart {
    /// The entry point (PC after the reset).
    pub entry: u64,
    /// The context id (x0 after the reset).
    pub context_id: u64,
}

/// The VM-wide part of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VmState {
    /// Whether the vCPUs have `KVM_ARM_VCPU_PSCI_0_2` (all of them, or none).
    pub psci_0_2: bool,
    /// Whether any vCPU has run: the guest may have seen every value below.
    pub has_run: bool,
    /// Whether `KVM_CAP_ARM_SYSTEM_SUSPEND` is enabled.
    pub system_suspend: bool,
    /// The SMCCC filter ranges, in the order the VMM installed them (the reserved ranges KVM
    /// adds itself are not listed).
    pub smccc_filter: Vec<FilterRange>,
    /// The firmware registers in KVM_GET_REG_LIST order (ascending ids).
    pub registers: Vec<SavedReg>,
}

/// The per-vCPU part of a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VcpuState {
    /// KVM_GET_MP_STATE.
    pub mp_state: MpState,
    /// A CPU_ON start not yet applied (the vCPU is then RUNNABLE).
    pub pending_start: Option<PendingStart>,
    /// The stolen-time structure's IPA (KVM_ARM_VCPU_PVTIME_IPA), if set.
    pub pv_time_ipa: Option<u64>,
}

/// The firmware state of one VM. See the [module documentation](self).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Snapshot {
    /// Where it was taken.
    pub(crate) source: Source,
    /// VM-wide state.
    pub(crate) vm: VmState,
    /// Per-vCPU state, by vCPU index.
    pub(crate) vcpus: Vec<VcpuState>,
    /// The whole-vCPU part (format 2.0), if the state has it.
    pub(crate) machine: Option<Machine>,
}

impl Snapshot {
    /// A snapshot from its parts, if they pass [`Snapshot::validate`]. Snapshots are otherwise
    /// made by [`crate::migrate::sequence::save_from`] or read with [`Snapshot::from_json`],
    /// [`Snapshot::from_value`] and [`Snapshot::from_bytes`].
    pub fn new(source: Source, vm: VmState, vcpus: Vec<VcpuState>) -> Result<Snapshot, FieldError> {
        let s = Snapshot {
            source,
            vm,
            vcpus,
            machine: None,
        };
        s.validate()?;
        Ok(s)
    }

    /// This snapshot with the whole-vCPU part `machine`, if the result passes
    /// [`Snapshot::validate`].
    pub fn with_machine(self, machine: Machine) -> Result<Snapshot, FieldError> {
        let s = Snapshot {
            machine: Some(machine),
            ..self
        };
        s.validate()?;
        Ok(s)
    }

    /// The whole-vCPU part, if the snapshot has it (format 2.0).
    pub fn machine(&self) -> Option<&Machine> {
        self.machine.as_ref()
    }

    /// The format version the snapshot is written in: [`FORMAT_VERSION`] with the
    /// whole-vCPU part, [`FORMAT_1_0`] without.
    pub fn format_version(&self) -> FormatVersion {
        if self.machine.is_some() {
            FORMAT_VERSION
        } else {
            FORMAT_1_0
        }
    }

    /// A snapshot from its parts without [`Snapshot::validate`]: not part of the API, only for
    /// tests that need an invalid or edited snapshot (every consumer of a snapshot must still
    /// refuse an invalid one without panicking).
    #[doc(hidden)]
    pub fn from_parts_unchecked(source: Source, vm: VmState, vcpus: Vec<VcpuState>) -> Snapshot {
        Snapshot {
            source,
            vm,
            vcpus,
            machine: None,
        }
    }

    /// The parts, to edit and build again with [`Snapshot::new`].
    pub fn into_parts(self) -> (Source, VmState, Vec<VcpuState>) {
        (self.source, self.vm, self.vcpus)
    }

    /// Where it was taken.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// VM-wide state.
    pub fn vm(&self) -> &VmState {
        &self.vm
    }

    /// Per-vCPU state, by vCPU index.
    pub fn vcpus(&self) -> &[VcpuState] {
        &self.vcpus
    }

    /// The saved value of `reg`, if the snapshot has it.
    pub fn register(&self, reg: FwReg) -> Option<u64> {
        let id = reg.id();
        self.vm
            .registers
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.value)
    }

    /// The PSCI version the guest sees (a PSCI_0_2 VM's `PSCI_VERSION`, or 0.1).
    pub fn psci_version(&self) -> Option<PsciVersion> {
        self.register(FwReg::PsciVersion)
            .and_then(|v| u32::try_from(v).ok())
            .map(PsciVersion)
    }

    /// Check every invariant a loaded snapshot must hold. The errors name the field.
    ///
    /// - `source.profile` and `source.kernel` are non-empty and at most [`MAX_TEXT`] bytes;
    ///   the kernel release starts with `major.minor`.
    /// - `vm.registers`: 1 to [`MAX_REGISTERS`] ids, strictly ascending (KVM's list order),
    ///   each a 64-bit id of the firmware classes 0x14/0x16; `PSCI_VERSION` is present and
    ///   holds 0.1 without PSCI_0_2, a later KVM version with it; the WORKAROUND levels are
    ///   values KVM's GET can report (WORKAROUND_1/3: 0–2; WORKAROUND_2: 0–3, or AVAIL with
    ///   ENABLED, reported by 5.2–5.9).
    /// - `vm.smccc_filter`: at most [`MAX_FILTER_RANGES`] ranges that KVM would accept in
    ///   order (non-zero count, no wrap, no overlap with each other or the reserved ranges).
    /// - `vcpus`: 1 to [`KVM_MAX_VCPUS`]; a pending start only on a RUNNABLE vCPU; a stolen-
    ///   time IPA 64-byte aligned.
    /// - `machine`, where present: the features KVM can initialise together; SVE_VLS exactly
    ///   with the sve feature; a register list of 1 to [`MAX_REG_LIST`] distinct arm64 ids
    ///   whose firmware ids are those of `vm.registers`; `vm_registers` exactly its VM-wide
    ///   ids and each vCPU's registers exactly the others (firmware ids aside), in list
    ///   order, each value the size of its id; one entry per vCPU.
    pub fn validate(&self) -> Result<(), FieldError> {
        for (path, text) in [
            ("source.profile", &self.source.profile),
            ("source.kernel", &self.source.kernel),
        ] {
            if text.is_empty() || text.len() > MAX_TEXT {
                return err(path, format!("must be 1 to {MAX_TEXT} bytes"));
            }
        }
        if Release::parse(&self.source.kernel).is_none() {
            return err(
                "source.kernel",
                format!("{:?} does not start with major.minor", self.source.kernel),
            );
        }
        self.validate_registers()?;
        if self.vm.smccc_filter.len() > MAX_FILTER_RANGES {
            return err(
                "vm.smccc_filter",
                format!("more than {MAX_FILTER_RANGES} ranges"),
            );
        }
        let mut filter = crate::firmware::SmcccFilter::default();
        for (i, r) in self.vm.smccc_filter.iter().enumerate() {
            if let Err(e) =
                filter.insert(r.base, r.nr_functions, r.action.kvm_value(), [0; 15], false)
            {
                return err(
                    &format!("vm.smccc_filter[{i}]"),
                    format!("KVM would refuse this range ({e})"),
                );
            }
        }
        if self.vcpus.is_empty() || self.vcpus.len() > KVM_MAX_VCPUS {
            return err("vcpus", format!("must hold 1 to {KVM_MAX_VCPUS} vCPUs"));
        }
        for (i, v) in self.vcpus.iter().enumerate() {
            if v.pending_start.is_some() && v.mp_state != MpState::Runnable {
                return err(
                    &format!("vcpus[{i}].pending_start"),
                    "only a RUNNABLE vCPU can have a pending start",
                );
            }
            if v.pv_time_ipa.is_some_and(|ipa| ipa % 64 != 0) {
                return err(
                    &format!("vcpus[{i}].pv_time_ipa"),
                    "must be 64-byte aligned",
                );
            }
        }
        if let Some(m) = &self.machine {
            let firmware: Vec<u64> = self.vm.registers.iter().map(|r| r.id).collect();
            m.validate(&firmware, self.vcpus.len())?;
        }
        Ok(())
    }

    fn validate_registers(&self) -> Result<(), FieldError> {
        let regs = &self.vm.registers;
        if regs.is_empty() || regs.len() > MAX_REGISTERS {
            return err(
                "vm.registers",
                format!("must hold 1 to {MAX_REGISTERS} registers"),
            );
        }
        let mut previous: Option<u64> = None;
        for (i, r) in regs.iter().enumerate() {
            let path = format!("vm.registers[{i}]");
            let id = OneRegId(r.id);
            if !id.is_arm64()
                || !id.is_firmware_class()
                || r.id & KVM_REG_SIZE_MASK != KVM_REG_SIZE_U64
                || r.id & 0xffff_ffff & !0x0fff_ffff != 0
            {
                return err(
                    &format!("{path}.id"),
                    format!("{} is not a 64-bit firmware register id", hex(r.id)),
                );
            }
            if previous.is_some_and(|p| p >= r.id) {
                return err(
                    &format!("{path}.id"),
                    "ids must be strictly ascending (KVM's register-list order)",
                );
            }
            previous = Some(r.id);
            // An id armfw does not know is kept as saved: compat refuses it with a finding.
            let ok = crate::register::lookup(r.id)
                .is_none_or(|d| d.rule.reportable(r.value, self.vm.psci_0_2));
            if !ok {
                let family = if self.vm.psci_0_2 {
                    "with PSCI_0_2"
                } else {
                    "without PSCI_0_2"
                };
                let name = FwReg::from_id(r.id).map_or("register", FwReg::name);
                return err(
                    &format!("{path}.value"),
                    format!(
                        "{} is not a value KVM reports for {name} {family}",
                        hex(r.value)
                    ),
                );
            }
        }
        if self.register(FwReg::PsciVersion).is_none() {
            return err(
                "vm.registers",
                "PSCI_VERSION is missing (every kernel with firmware registers has it)",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

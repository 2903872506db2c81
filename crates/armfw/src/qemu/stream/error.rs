//! Why a stream cannot be read: one line, with where and which QEMU.

use thiserror::Error;

use super::{VERSION, machine_version};

/// Why a stream cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StreamErrorKind {
    /// The first four bytes are not `QEVM`.
    #[error("not a QEMU migration stream (it does not start with QEVM)")]
    NotAStream,
    /// A stream version other than 3.
    #[error("QEMU migration stream version {0}: this armfw reads version {VERSION}")]
    Version(u32),
    /// The stream ends early.
    #[error("truncated: the {what} needs {needed} bytes, the stream has {left} left")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes left.
        left: u64,
    },
    /// No device description at the end.
    #[error(
        "no device description at the end of the stream (QEMU leaves it out with -machine suppress-vmdesc=on, or the stream is cut short)"
    )]
    NoDescription,
    /// The description is not what QEMU writes.
    #[error("the device description is not readable: {0}")]
    Description(String),
    /// A section type QEMU does not write.
    #[error("unknown section type {0:#04x}")]
    SectionType(u8),
    /// A full section the description does not list at this place.
    #[error(
        "section {found:?} instance {instance} is not the next device of the description ({expected})"
    )]
    Device {
        /// The section's id string.
        found: String,
        /// Its instance id.
        instance: u32,
        /// What the description lists next.
        expected: String,
    },
    /// An iterative section other than guest RAM.
    #[error("iterative section {0:?}: only guest RAM (\"ram\") is read")]
    Iterative(String),
    /// A part of a section that was not started.
    #[error("section id {0} continues a section that did not start")]
    UnknownSectionId(u32),
    /// A RAM record this reader does not take.
    #[error("RAM record with flags {0:#x}: {1}")]
    RamRecord(u64, &'static str),
    /// A RAM record names a block the stream did not declare.
    #[error("RAM record for block {0:?}, which the stream did not declare")]
    RamBlock(String),
    /// A section's footer names another section.
    #[error("section footer of section id {found}, expected {expected}")]
    Footer {
        /// The id in the footer.
        found: u32,
        /// The section's id.
        expected: u32,
    },
    /// A field took other bytes than the description says.
    #[error("{device}: field {field:?} took {read} bytes, the description says {described}")]
    FieldSize {
        /// The device.
        device: String,
        /// The field.
        field: String,
        /// Bytes the description gives.
        described: u64,
        /// Bytes read.
        read: u64,
    },
    /// The description's subsection is not the stream's.
    #[error("{device}: expected subsection {expected:?}, found {found}")]
    Subsection {
        /// The device.
        device: String,
        /// What the description lists.
        expected: String,
        /// What the stream has there.
        found: String,
    },
    /// The sections end elsewhere than right before the description.
    #[error("the sections end at byte {end}, the description starts at byte {description}")]
    End {
        /// Where the end marker was found.
        end: u64,
        /// Where the description starts.
        description: u64,
    },
    /// The description lists devices the stream does not hold.
    #[error("the description lists {described} devices, the stream holds {found}")]
    MissingDevices {
        /// Devices described.
        described: usize,
        /// Full sections read.
        found: usize,
    },
    /// A vCPU section's fields are not QEMU's arm CPU state.
    #[error("vCPU {vcpu}: {why}")]
    Cpu {
        /// The instance id.
        vcpu: u32,
        /// What is wrong.
        why: String,
    },
    /// The stream holds no vCPU.
    #[error("the stream holds no vCPU section (\"cpu\")")]
    NoVcpu,
    /// A limit of this reader.
    #[error("more than {max} {what}")]
    Limit {
        /// What.
        what: &'static str,
        /// The limit.
        max: u64,
    },
    /// A migration capability whose stream this reader does not take.
    #[error("the stream was written with capability {0:?}, which this reader does not take")]
    Capability(String),
    /// Reading the source failed.
    #[error("read error: {0}")]
    Io(String),
}

/// Why a stream cannot be read, where, and which QEMU wrote it if that is known.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{kind}{}{}", at(*.offset), by(.machine_type.as_deref()))]
#[non_exhaustive]
pub struct StreamError {
    /// What is wrong.
    pub kind: StreamErrorKind,
    /// The byte where it was found.
    pub offset: Option<u64>,
    /// The machine type in the stream's configuration, if it was read.
    pub machine_type: Option<String>,
}

fn at(offset: Option<u64>) -> String {
    offset.map_or_else(String::new, |o| format!(" (at byte {o})"))
}

fn by(machine: Option<&str>) -> String {
    match machine {
        Some(m) => match machine_version(m) {
            Some((a, b)) => format!("; written by QEMU {a}.{b} (machine type {m})"),
            None => format!("; machine type {m}"),
        },
        None => String::new(),
    }
}

//! A running VM in one file: its whole-VM [`Snapshot`], the state KVM keeps outside the
//! vCPUs' registers (the vGICv3), the VMM's own devices, and guest RAM.
//!
//! A VMM pauses every vCPU, saves this, and a VMM on another host validates the whole file
//! before it creates anything there, then restores it. The format (`armfw-bundle` 1.0):
//!
//! ```text
//! offset  size  field
//!      0     8  magic "ARMFWVMB"
//!      8     2  major version (1), little-endian like every integer here
//!     10     2  minor version (0)
//!     12     4  snapshot length S
//!     16     4  devices length D
//!     20     8  memory length M
//!     28     4  CRC-32 of bytes 0..28
//!     32     S  the snapshot, in its binary form (format 2.0, with its own CRC)
//!   32+S     D  the devices, JSON (UTF-8): RAM ranges, vGIC, engine, VMM devices
//! 32+S+D     M  guest RAM: runs of [guest address u64][length u64][bytes], ascending,
//!               4 KiB aligned, inside the RAM ranges; pages not in a run are zero
//!  end-4     4  CRC-32 of every byte from offset 32 to here
//! ```
//!
//! The snapshot comes first so that a reader that only checks a move
//! ([`BundleHeader::parse`], then [`Snapshot::from_bytes`] of the next S bytes) reads a few
//! kilobytes of a file of tens of megabytes. [`Bundle::parse`] checks everything: both
//! checksums, the snapshot, the devices against the snapshot (vCPU count, RAM layout) and
//! every memory run, so that a restore that starts has nothing left to refuse in the file.
//!
//! The version rule is the snapshot's: a reader takes its own major version at its own or
//! an older minor version and refuses every other one, naming both.

use thiserror::Error;

use crate::snapshot::{FormatVersion, Snapshot, crc32};

mod devices;

pub use devices::{DEVICES_FORMAT, Devices, GicReg, GicState, GicSysReg, RamRange};
use devices::{check_devices, parse_devices};

/// The first eight bytes of a bundle.
pub const MAGIC: [u8; 8] = *b"ARMFWVMB";
/// The format version this crate writes.
pub const FORMAT_VERSION: FormatVersion = FormatVersion { major: 1, minor: 0 };
/// The fixed header's length.
pub const HEADER_LEN: usize = 32;
/// The page size of the memory runs.
pub const PAGE: u64 = 0x1000;
/// [`PAGE`] as a length.
const PAGE_BYTES: usize = 0x1000;
/// The most bytes the snapshot and the devices may each take.
pub const MAX_SECTION: u32 = 16 << 20;
/// The most RAM ranges a bundle may declare.
pub const MAX_RAM_RANGES: usize = 16;

/// Why a bundle cannot be read. Each message is one line.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BundleError {
    /// The input does not start with [`MAGIC`].
    #[error("not an armfw VM bundle (it does not start with ARMFWVMB)")]
    NotABundle,
    /// A version this reader does not take.
    #[error(
        "bundle format version {found} is not readable: this armfw reads armfw-bundle {FORMAT_VERSION}"
    )]
    UnsupportedVersion {
        /// The version in the file.
        found: FormatVersion,
    },
    /// The file ends early.
    #[error("truncated: {what} needs {needed} bytes at offset {offset}, the file has {len}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Where it starts.
        offset: u64,
        /// Its length.
        needed: u64,
        /// The file's length.
        len: u64,
    },
    /// Bytes follow the end.
    #[error("{0} bytes after the end of the bundle")]
    TrailingBytes(u64),
    /// A checksum does not match.
    #[error(
        "checksum of the {what}: the file says crc32:{stored:#010x}, its content gives crc32:{computed:#010x}"
    )]
    Checksum {
        /// `header` or `body`.
        what: &'static str,
        /// Stored.
        stored: u32,
        /// Computed.
        computed: u32,
    },
    /// A section is larger than the format allows.
    #[error("the {what} is {len} bytes, more than the {max} a bundle may have")]
    TooLarge {
        /// Which section.
        what: &'static str,
        /// Its length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The snapshot section is not a whole-VM snapshot.
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// The devices section is wrong.
    #[error("devices: {0}")]
    Devices(String),
    /// A memory run is wrong.
    #[error("memory run {index} at offset {offset}: {why}")]
    Memory {
        /// Which run (from 0).
        index: usize,
        /// Its offset in the file.
        offset: u64,
        /// What is wrong.
        why: String,
    },
}

/// The fixed header: the section lengths, once its checksum and version were checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BundleHeader {
    /// The file's format version.
    pub version: FormatVersion,
    /// The snapshot section's length.
    pub snapshot_len: u32,
    /// The devices section's length.
    pub devices_len: u32,
    /// The memory section's length.
    pub memory_len: u64,
}

impl BundleHeader {
    /// Reads the header from the first [`HEADER_LEN`] bytes of a file (or fewer: then it is
    /// truncated).
    pub fn parse(bytes: &[u8]) -> Result<BundleHeader, BundleError> {
        if !bytes.starts_with(&MAGIC) {
            return Err(if MAGIC.starts_with(bytes) && !bytes.is_empty() {
                truncated("the header", 0, HEADER_LEN as u64, bytes.len() as u64)
            } else {
                BundleError::NotABundle
            });
        }
        let Some(h) = bytes.get(..HEADER_LEN) else {
            return Err(truncated(
                "the header",
                0,
                HEADER_LEN as u64,
                bytes.len() as u64,
            ));
        };
        let stored = le32(&h[28..32]);
        let computed = crc32(&h[..28]);
        if stored != computed {
            return Err(BundleError::Checksum {
                what: "header",
                stored,
                computed,
            });
        }
        let version = FormatVersion {
            major: u16::from_le_bytes([h[8], h[9]]),
            minor: u16::from_le_bytes([h[10], h[11]]),
        };
        let readable = version.major == FORMAT_VERSION.major
            && FORMAT_VERSION.minor.checked_sub(version.minor).is_some();
        if !readable {
            return Err(BundleError::UnsupportedVersion { found: version });
        }
        let header = BundleHeader {
            version,
            snapshot_len: le32(&h[12..16]),
            devices_len: le32(&h[16..20]),
            memory_len: le64(&h[20..28]),
        };
        for (what, len) in [
            ("snapshot", header.snapshot_len),
            ("devices section", header.devices_len),
        ] {
            if len > MAX_SECTION {
                return Err(BundleError::TooLarge {
                    what,
                    len: u64::from(len),
                    max: u64::from(MAX_SECTION),
                });
            }
        }
        Ok(header)
    }

    /// Where the snapshot section ends: [`HEADER_LEN`] + its length.
    pub fn snapshot_end(&self) -> usize {
        HEADER_LEN + self.snapshot_len as usize
    }

    /// The whole file's length.
    pub fn file_len(&self) -> u64 {
        self.snapshot_end() as u64 + u64::from(self.devices_len) + self.memory_len + 4
    }

    /// The snapshot, from the first [`BundleHeader::snapshot_end`] bytes of the file (the
    /// snapshot's own checksum covers it; the body's is checked by [`Bundle::parse`]).
    pub fn snapshot(&self, prefix: &[u8]) -> Result<Snapshot, BundleError> {
        let end = self.snapshot_end();
        let bytes = prefix.get(HEADER_LEN..end).ok_or_else(|| {
            truncated(
                "the snapshot",
                HEADER_LEN as u64,
                u64::from(self.snapshot_len),
                prefix.len() as u64,
            )
        })?;
        let s = Snapshot::from_bytes(bytes).map_err(|e| BundleError::Snapshot(e.to_string()))?;
        if s.machine().is_none() {
            return Err(BundleError::Snapshot(
                "a firmware-only snapshot (format 1.0): a bundle holds the whole VM".into(),
            ));
        }
        Ok(s)
    }
}

/// One run of guest RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRun<'a> {
    /// Its guest physical address.
    pub gpa: u64,
    /// Its bytes.
    pub data: &'a [u8],
}

/// A bundle read and checked whole.
#[derive(Clone, Debug, PartialEq)]
pub struct Bundle<'a> {
    /// The header.
    pub header: BundleHeader,
    /// The whole-VM snapshot.
    pub snapshot: Snapshot,
    /// The devices.
    pub devices: Devices,
    /// The engine's snapshot, when [`Devices::engine`] has one.
    pub engine: Option<Snapshot>,
    /// Guest RAM's non-zero runs.
    pub memory: Vec<MemoryRun<'a>>,
}

impl<'a> Bundle<'a> {
    /// Reads and checks a whole bundle from untrusted bytes (see the module's text for what is
    /// checked). Never panics; allocates in proportion to what the header declares only after
    /// the file was found to be that long.
    pub fn parse(bytes: &'a [u8]) -> Result<Bundle<'a>, BundleError> {
        let header = BundleHeader::parse(bytes)?;
        let len = bytes.len() as u64;
        let file_len = header.file_len();
        if len < file_len {
            return Err(truncated(
                "the body",
                HEADER_LEN as u64,
                file_len - HEADER_LEN as u64,
                len,
            ));
        }
        if len > file_len {
            return Err(BundleError::TrailingBytes(len - file_len));
        }
        let body_end = bytes.len() - 4;
        let stored = le32(&bytes[body_end..]);
        let computed = crc32(&bytes[HEADER_LEN..body_end]);
        if stored != computed {
            return Err(BundleError::Checksum {
                what: "body",
                stored,
                computed,
            });
        }
        let snapshot = header.snapshot(bytes)?;
        let dev_end = header.snapshot_end() + header.devices_len as usize;
        let devices = parse_devices(&bytes[header.snapshot_end()..dev_end])?;
        let engine = check_devices(&devices, &snapshot)?;
        let memory = parse_memory(&bytes[dev_end..body_end], dev_end as u64, &devices.ram)?;
        Ok(Bundle {
            header,
            snapshot,
            devices,
            engine,
            memory,
        })
    }

    /// The bytes of a bundle: `snapshot` (a whole-VM one), `devices` and the RAM runs
    /// `memory` (ascending, 4 KiB aligned, inside [`Devices::ram`]). What this writes,
    /// [`Bundle::parse`] reads back; an input it would refuse is refused here, with the same
    /// error, so no bundle is written that cannot be restored.
    pub fn encode(
        snapshot: &Snapshot,
        devices: &Devices,
        memory: &[MemoryRun<'_>],
    ) -> Result<Vec<u8>, BundleError> {
        if snapshot.machine().is_none() {
            return Err(BundleError::Snapshot(
                "a firmware-only snapshot (format 1.0): a bundle holds the whole VM".into(),
            ));
        }
        check_devices(devices, snapshot)?;
        let snap = snapshot.to_bytes();
        let dev = serde_json::to_vec(devices).map_err(|e| BundleError::Devices(e.to_string()))?;
        let memory_len: u64 = memory.iter().map(|r| 16 + r.data.len() as u64).sum();
        let mut out = Vec::with_capacity(
            HEADER_LEN + snap.len() + dev.len() + usize::try_from(memory_len).unwrap_or(0) + 4,
        );
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.major.to_le_bytes());
        out.extend_from_slice(&FORMAT_VERSION.minor.to_le_bytes());
        for (what, len) in [("snapshot", snap.len()), ("devices section", dev.len())] {
            let len32 = u32::try_from(len)
                .ok()
                .filter(|&l| l <= MAX_SECTION)
                .ok_or(BundleError::TooLarge {
                    what,
                    len: len as u64,
                    max: u64::from(MAX_SECTION),
                })?;
            out.extend_from_slice(&len32.to_le_bytes());
        }
        out.extend_from_slice(&memory_len.to_le_bytes());
        let crc = crc32(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&snap);
        out.extend_from_slice(&dev);
        let mem_start = out.len();
        for r in memory {
            out.extend_from_slice(&r.gpa.to_le_bytes());
            out.extend_from_slice(&(r.data.len() as u64).to_le_bytes());
            out.extend_from_slice(r.data);
        }
        // The same checks as the reader's, on what was written.
        parse_memory(&out[mem_start..], mem_start as u64, &devices.ram)?;
        let crc = crc32(&out[HEADER_LEN..]);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// The engine's implementations ([`Devices::implementations`]).
    pub fn implementations(&self) -> Vec<crate::firmware::Implementation> {
        self.devices
            .implementations
            .iter()
            .map(|&[midr, revidr, aidr]| crate::firmware::Implementation { midr, revidr, aidr })
            .collect()
    }

    /// The guest RAM the runs hold, in bytes (the rest is zero).
    pub fn memory_bytes(&self) -> u64 {
        self.memory.iter().map(|r| r.data.len() as u64).sum()
    }
}

/// The non-zero runs of a RAM range `data` that starts at `base`: consecutive 4 KiB pages
/// with any non-zero byte, as [`Bundle::encode`] takes them.
pub fn nonzero_runs(base: u64, data: &[u8]) -> Vec<MemoryRun<'_>> {
    let mut runs = Vec::new();
    let mut start: Option<usize> = None;
    let page = PAGE_BYTES;
    for (i, chunk) in data.chunks(page).enumerate() {
        let zero = chunk.iter().all(|&b| b == 0);
        match (zero, start) {
            (false, None) => start = Some(i * page),
            (true, Some(s)) => {
                runs.push(MemoryRun {
                    gpa: base + s as u64,
                    data: &data[s..i * page],
                });
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        runs.push(MemoryRun {
            gpa: base + s as u64,
            data: &data[s..],
        });
    }
    runs
}

fn parse_memory<'a>(
    bytes: &'a [u8],
    at: u64,
    ram: &[RamRange],
) -> Result<Vec<MemoryRun<'a>>, BundleError> {
    let mut runs = Vec::new();
    let mut pos = 0usize;
    let mut floor = 0u64;
    while pos < bytes.len() {
        let index = runs.len();
        let offset = at + pos as u64;
        let fail = |why: String| BundleError::Memory { index, offset, why };
        let head = bytes
            .get(pos..pos + 16)
            .ok_or_else(|| fail("the run's header is cut off".into()))?;
        let (gpa, len) = (le64(&head[..8]), le64(&head[8..]));
        let data = usize::try_from(len)
            .ok()
            .and_then(|l| bytes.get(pos + 16..pos + 16 + l))
            .ok_or_else(|| {
                fail(format!(
                    "{len} bytes of data, the section has {} left",
                    bytes.len() - pos - 16
                ))
            })?;
        let end = gpa.checked_add(len);
        let inside = end.is_some_and(|e| ram.iter().any(|r| gpa >= r.base && e <= r.base + r.size));
        if gpa % PAGE != 0 || len % PAGE != 0 || len == 0 || gpa < floor || !inside {
            return Err(fail(format!(
                "{gpa:#x}+{len:#x} is not 4 KiB aligned, above the run before and inside guest RAM"
            )));
        }
        floor = end.unwrap_or(u64::MAX);
        runs.push(MemoryRun { gpa, data });
        pos += 16 + data.len();
    }
    Ok(runs)
}

fn truncated(what: &'static str, offset: u64, needed: u64, len: u64) -> BundleError {
    BundleError::Truncated {
        what,
        offset,
        needed,
        len,
    }
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests;

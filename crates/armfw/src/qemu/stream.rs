//! QEMU's migration stream (`QEVM`, version 3), read for what a migration check needs: each
//! vCPU's cpreg ids and values, its PC and PSTATE, and which state subsections it carries.
//!
//! The stream (QEMU `migration/savevm.c`, `migration/ram.c`, `migration/vmstate.c`) is
//! big-endian:
//!
//! ```text
//! u32 magic "QEVM", u32 version 3
//! [0x07 configuration: u32 len, machine type name, subsections]
//! sections, each a type byte:
//!   0x01 start / 0x04 full: u32 section id, u8 len + id string, u32 instance, u32 version,
//!                           content, [0x7e u32 section id]   (the footer)
//!   0x02 part  / 0x03 end:  u32 section id, content, [footer]
//!   0x08 command:           u16 command, u16 len, len bytes
//! 0x00 end of the sections
//! 0x06 u32 len, the device description: JSON naming every field of every full section
//! ```
//!
//! Guest RAM is the iterative section `ram`: records of a big-endian u64 holding a page
//! address and flags, with a page of data, a fill byte or a block list. The reader walks the
//! records without reading the pages (a stream is tens of megabytes, nearly all RAM). The
//! full sections are read the way QEMU's `scripts/analyze-migration.py` reads them: through
//! the device description QEMU appends, which gives every field's type, the bytes it took
//! and its array length, and which subsections follow. A stream without it
//! (`-machine suppress-vmdesc=on`) is refused.
//!
//! [`read`] takes the stream from a [`ByteSource`], checks every section against the
//! description, and refuses anything it cannot account for with one [`StreamError`] line.
//! Memory and time are bounded by the description's size ([`MAX_DESCRIPTION`]) and the
//! stream's length.

use std::ops::Range;

use cursor::{Cursor, read_at};
pub use error::{StreamError, StreamErrorKind};
use vmsd::{Description, Vmsd};

/// The stream's first four bytes, `QEVM`.
pub const MAGIC: u32 = 0x5145_564d;
/// The only stream version QEMU writes since 2.x (`QEMU_VM_FILE_VERSION`).
pub const VERSION: u32 = 3;
/// The largest device description read.
pub const MAX_DESCRIPTION: u64 = 16 << 20;
/// The most vCPUs read.
pub const MAX_VCPUS: usize = 4096;
/// The most cpreg entries of one vCPU read (KVM lists a few hundred).
pub const MAX_CPREGS: usize = 16384;
/// The most RAM blocks a stream may declare.
pub const MAX_RAM_BLOCKS: usize = 1024;
/// The most sections (parts of the iterative ones included) read.
pub const MAX_SECTIONS: usize = 1 << 20;
/// The read-ahead window. Anything bigger that is skipped is not read.
const WINDOW: usize = 512;

/// Section types (`QEMU_VM_*`).
mod section {
    pub const EOF: u8 = 0x00;
    pub const START: u8 = 0x01;
    pub const PART: u8 = 0x02;
    pub const END: u8 = 0x03;
    pub const FULL: u8 = 0x04;
    pub const SUBSECTION: u8 = 0x05;
    pub const VMDESCRIPTION: u8 = 0x06;
    pub const CONFIGURATION: u8 = 0x07;
    pub const COMMAND: u8 = 0x08;
    pub const FOOTER: u8 = 0x7e;
}

/// RAM record flags (`RAM_SAVE_FLAG_*`, `migration/ram.c`).
mod ram {
    pub const ZERO: u64 = 0x02;
    pub const MEM_SIZE: u64 = 0x04;
    pub const PAGE: u64 = 0x08;
    pub const EOS: u64 = 0x10;
    pub const CONTINUE: u64 = 0x20;
    pub const XBZRLE: u64 = 0x40;
    pub const HOOK: u64 = 0x80;
    pub const COMPRESS_PAGE: u64 = 0x100;
    pub const MULTIFD_FLUSH: u64 = 0x200;
    /// `ENCODING_FLAG_XBZRLE`.
    pub const XBZRLE_ENCODING: u8 = 0x01;
}

/// Where a stream's bytes come from. The reader asks only for ranges inside
/// [`ByteSource::len`], a few bytes at a time, and skips guest RAM without asking for it.
pub trait ByteSource {
    /// The stream's length in bytes.
    fn len(&self) -> u64;
    /// Whether the stream is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Fill `buf` with the bytes starting at `offset` (`offset + buf.len() <= len()`).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

impl ByteSource for [u8] {
    fn len(&self) -> u64 {
        self.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| std::io::ErrorKind::UnexpectedEof)?;
        let bytes = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
}

impl<T: ByteSource + ?Sized> ByteSource for &T {
    fn len(&self) -> u64 {
        (**self).len()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        (**self).read_at(offset, buf)
    }
}

/// What was read of a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stream {
    /// The machine type in the configuration section (`virt-10.0`), if the stream has one.
    pub machine_type: Option<String>,
    /// The target page size (the description's `page_size`).
    pub page_size: u64,
    /// The RAM blocks: id and length in bytes.
    pub ram_blocks: Vec<(String, u64)>,
    /// Every full section, in stream order: id string, instance id, version.
    pub devices: Vec<(String, u32, u32)>,
    /// Each vCPU (a full section `cpu`), in stream order.
    pub vcpus: Vec<QemuVcpu>,
    /// The byte ranges of the RAM records between each RAM section's header (and block list)
    /// and its end-of-section record: what a copy of the stream without guest RAM leaves out
    /// ([`without_ram`]).
    pub ram_records: Vec<Range<u64>>,
    /// The stream's length.
    pub len: u64,
}

impl Stream {
    /// The QEMU release that wrote the stream, as `(major, minor)`, from a versioned machine
    /// type such as `virt-10.0` (what `-M virt` means in that release).
    pub fn qemu_version(&self) -> Option<(u32, u32)> {
        self.machine_type.as_deref().and_then(machine_version)
    }

    /// Guest RAM in bytes, every block.
    pub fn ram_bytes(&self) -> u64 {
        self.ram_blocks.iter().map(|(_, n)| n).sum()
    }
}

/// The `(major, minor)` of a versioned machine type (`virt-7.2` → `(7, 2)`).
pub fn machine_version(name: &str) -> Option<(u32, u32)> {
    let (_, version) = name.rsplit_once('-')?;
    let (major, minor) = version.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// One vCPU of a stream: what QEMU's `vmstate_arm_cpu` carries that a migration check needs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QemuVcpu {
    /// The section's instance id (the vCPU index).
    pub instance_id: u32,
    /// `env.pc`.
    pub pc: u64,
    /// The `cpsr` field: PSTATE for an AArch64 vCPU.
    pub pstate: u32,
    /// `cpreg_vmstate_indexes` with `cpreg_vmstate_values`: (KVM ONE_REG id, value), in
    /// stream order (QEMU sorts them by id).
    pub cpregs: Vec<(u64, u64)>,
    /// The subsections the vCPU's section carries (`cpu/vfp`, `cpu/sve`, ...), in order.
    pub subsections: Vec<String>,
}

impl QemuVcpu {
    /// Whether the vCPU carries SVE state (subsection `cpu/sve`).
    pub fn has_sve(&self) -> bool {
        self.subsections.iter().any(|s| s == "cpu/sve")
    }
}

/// Read a stream: every section, checked against the device description; the vCPUs' state.
pub fn read<S: ByteSource + ?Sized>(src: &S) -> Result<Stream, StreamError> {
    let mut r = Reader {
        cur: Cursor::new(src, 0),
        machine_type: None,
        block_named: false,
    };
    match r.stream() {
        Ok(s) => Ok(s),
        Err(kind) => Err(StreamError {
            kind,
            offset: Some(r.cur.pos.min(r.cur.len)),
            machine_type: r.machine_type,
        }),
    }
}

struct Reader<'s, S: ?Sized> {
    cur: Cursor<'s, S>,
    machine_type: Option<String>,
    /// A RAM record has named a block: later ones may continue it, in any RAM section
    /// (QEMU keeps the last block across sections).
    block_named: bool,
}

/// Where the description starts, and the description.
fn description<S: ByteSource + ?Sized>(src: &S) -> Result<(u64, Description), StreamErrorKind> {
    let len = src.len();
    // The tail: ... 0x00 (end) 0x06 u32 n, n bytes of JSON starting with '{'. JSON text holds
    // no 0x06 byte, so the last position that fits is the description.
    let mut span = 64 * 1024u64;
    loop {
        let take = span.min(len).min(MAX_DESCRIPTION + 6);
        let start = len - take;
        let mut tail = vec![0; usize::try_from(take).unwrap_or(0)];
        read_at(src, start, &mut tail)?;
        let found = (0..tail.len().saturating_sub(5)).rev().find(|&p| {
            let n = u32::from_be_bytes([tail[p + 1], tail[p + 2], tail[p + 3], tail[p + 4]]);
            tail[p] == section::VMDESCRIPTION
                && u64::from(n) == take - p as u64 - 5
                && tail.get(p + 5) == Some(&b'{')
        });
        if let Some(p) = found {
            let text = &tail[p + 5..];
            let desc: Description = serde_json::from_slice(text)
                .map_err(|e| StreamErrorKind::Description(e.to_string()))?;
            return Ok((start + p as u64, desc));
        }
        if take == len || take > MAX_DESCRIPTION {
            return Err(StreamErrorKind::NoDescription);
        }
        span *= 4;
    }
}

impl<S: ByteSource + ?Sized> Reader<'_, S> {
    fn stream(&mut self) -> Result<Stream, StreamErrorKind> {
        let len = self.cur.len;
        if len < 8 {
            return Err(StreamErrorKind::Truncated {
                what: "stream header",
                needed: 8,
                left: len,
            });
        }
        if self.cur.be32("magic")? != MAGIC {
            return Err(StreamErrorKind::NotAStream);
        }
        let version = self.cur.be32("version")?;
        if version != VERSION {
            return Err(StreamErrorKind::Version(version));
        }
        let at = self.cur.pos;
        let (desc_at, desc) = description(self.cur.src)?;
        self.cur.pos = at;
        let page_size = desc.page_size.ok_or_else(|| {
            StreamErrorKind::Description("no page_size (not a QEMU device description)".into())
        })?;
        if !page_size.is_power_of_two() || !(1024..=65536).contains(&page_size) {
            return Err(StreamErrorKind::Description(format!(
                "page_size {page_size} is not a target page size"
            )));
        }
        let mut out = Stream {
            machine_type: None,
            page_size,
            ram_blocks: Vec::new(),
            devices: Vec::new(),
            vcpus: Vec::new(),
            ram_records: Vec::new(),
            len,
        };
        let mut devices = desc.devices.iter();
        let mut ram_section = None;
        let mut sections = 0usize;
        loop {
            sections += 1;
            if sections > MAX_SECTIONS {
                return Err(limit("sections", MAX_SECTIONS));
            }
            let ty = self.cur.u8("section type")?;
            match ty {
                section::EOF => {
                    if self.cur.pos != desc_at {
                        return Err(StreamErrorKind::End {
                            end: self.cur.pos - 1,
                            description: desc_at,
                        });
                    }
                    break;
                }
                section::CONFIGURATION if sections == 1 => {
                    self.configuration(desc.configuration.as_ref())?;
                    out.machine_type.clone_from(&self.machine_type);
                }
                section::START | section::FULL => {
                    let id = self.cur.be32("section id")?;
                    let name = self.cur.idstr("section name")?;
                    let instance = self.cur.be32("instance id")?;
                    let version = self.cur.be32("version id")?;
                    if ty == section::START {
                        if name != "ram" || ram_section.is_some() {
                            return Err(StreamErrorKind::Iterative(name));
                        }
                        ram_section = Some(id);
                        self.ram(&mut out, true)?;
                    } else {
                        let Some(dev) = devices.next() else {
                            return Err(StreamErrorKind::Device {
                                found: name,
                                instance,
                                expected: "it lists no more".into(),
                            });
                        };
                        if dev.name != name || dev.instance_id != instance {
                            return Err(StreamErrorKind::Device {
                                found: name,
                                instance,
                                expected: format!("{:?} instance {}", dev.name, dev.instance_id),
                            });
                        }
                        self.device(&mut out, dev, version)?;
                    }
                    self.footer(id)?;
                }
                section::PART | section::END => {
                    let id = self.cur.be32("section id")?;
                    if ram_section != Some(id) {
                        return Err(StreamErrorKind::UnknownSectionId(id));
                    }
                    self.ram(&mut out, false)?;
                    self.footer(id)?;
                }
                section::COMMAND => {
                    let _command = self.cur.be16("command")?;
                    let n = self.cur.be16("command length")?;
                    self.cur.skip("command", u64::from(n))?;
                }
                other => return Err(StreamErrorKind::SectionType(other)),
            }
        }
        if devices.next().is_some() {
            return Err(StreamErrorKind::MissingDevices {
                described: desc.devices.len(),
                found: out.devices.len(),
            });
        }
        if out.vcpus.is_empty() {
            return Err(StreamErrorKind::NoVcpu);
        }
        Ok(out)
    }

    /// The configuration section: the machine type, then its subsections (described in the
    /// description since QEMU 8.2; before that, the three QEMU has: target-page-bits,
    /// capabilities, uuid).
    fn configuration(&mut self, desc: Option<&Vmsd>) -> Result<(), StreamErrorKind> {
        let n = self.cur.be32("machine type length")?;
        if n > 255 {
            return Err(StreamErrorKind::Description(format!(
                "machine type name of {n} bytes"
            )));
        }
        let name = self
            .cur
            .string("machine type", usize::try_from(n).unwrap_or(0))?;
        self.machine_type = Some(name);
        if let Some(desc) = desc {
            // The description's fields are `len` and `name`, already read.
            return self.subsections("configuration", desc, 0);
        }
        while self.cur.peek_u8()? == Some(section::SUBSECTION) {
            self.cur.skip("subsection", 1)?;
            let name = self.cur.idstr("subsection name")?;
            let _version = self.cur.be32("subsection version")?;
            match name.as_str() {
                "configuration/target-page-bits" => self.cur.skip("target page bits", 4)?,
                "configuration/uuid" => self.cur.skip("uuid", 16)?,
                "configuration/capabilities" => self.capabilities()?,
                _ => {
                    return Err(StreamErrorKind::Subsection {
                        device: "configuration".into(),
                        expected: "a configuration subsection".into(),
                        found: format!("{name:?}"),
                    });
                }
            }
        }
        Ok(())
    }

    fn footer(&mut self, id: u32) -> Result<(), StreamErrorKind> {
        if self.cur.peek_u8()? == Some(section::FOOTER) {
            self.cur.skip("footer", 1)?;
            let found = self.cur.be32("footer")?;
            if found != id {
                return Err(StreamErrorKind::Footer {
                    found,
                    expected: id,
                });
            }
        }
        Ok(())
    }

    /// RAM records up to the end-of-section record; the first part starts with the block
    /// list.
    fn ram(&mut self, out: &mut Stream, start: bool) -> Result<(), StreamErrorKind> {
        let mask = out.page_size - 1;
        let mut first = true;
        let mut records_from = self.cur.pos;
        loop {
            let at = self.cur.pos;
            let word = self.cur.be64("RAM record")?;
            let flags = word & mask;
            let kind = flags & !ram::CONTINUE;
            match kind {
                ram::MEM_SIZE if start && first => {
                    let mut total = word & !mask;
                    while total > 0 {
                        if out.ram_blocks.len() >= MAX_RAM_BLOCKS {
                            return Err(limit("RAM blocks", MAX_RAM_BLOCKS));
                        }
                        let id = self.cur.idstr("RAM block id")?;
                        let used = self.cur.be64("RAM block length")?;
                        if used == 0 || used > total {
                            return Err(StreamErrorKind::RamRecord(
                                flags,
                                "a block longer than the RAM left to declare",
                            ));
                        }
                        total -= used;
                        out.ram_blocks.push((id, used));
                    }
                    records_from = self.cur.pos;
                }
                ram::ZERO | ram::PAGE | ram::XBZRLE => {
                    if flags & ram::CONTINUE == 0 {
                        let id = self.cur.idstr("RAM block id")?;
                        if !out.ram_blocks.iter().any(|(b, _)| *b == id) {
                            return Err(StreamErrorKind::RamBlock(id));
                        }
                        self.block_named = true;
                    } else if !self.block_named {
                        return Err(StreamErrorKind::RamRecord(
                            flags,
                            "continues a block before any was named",
                        ));
                    }
                    match kind {
                        ram::ZERO => self.cur.skip("zero page", 1)?,
                        ram::PAGE => self.cur.skip("page", out.page_size)?,
                        _ => {
                            if self.cur.u8("XBZRLE flags")? != ram::XBZRLE_ENCODING {
                                return Err(StreamErrorKind::RamRecord(
                                    flags,
                                    "XBZRLE page without its encoding flag",
                                ));
                            }
                            let n = self.cur.be16("XBZRLE length")?;
                            self.cur.skip("XBZRLE page", u64::from(n))?;
                        }
                    }
                }
                ram::MULTIFD_FLUSH => {}
                ram::EOS => {
                    out.ram_records.push(records_from..at);
                    return Ok(());
                }
                ram::COMPRESS_PAGE => {
                    return Err(StreamErrorKind::RamRecord(flags, "compressed pages"));
                }
                ram::HOOK => {
                    return Err(StreamErrorKind::RamRecord(flags, "RDMA records"));
                }
                _ => {
                    self.cur.pos = at;
                    return Err(StreamErrorKind::RamRecord(
                        flags,
                        "not a combination QEMU writes",
                    ));
                }
            }
            first = false;
        }
    }
}

fn limit(what: &'static str, max: impl TryInto<u64>) -> StreamErrorKind {
    StreamErrorKind::Limit {
        what,
        max: max.try_into().unwrap_or(u64::MAX),
    }
}

/// A copy of the stream without guest RAM: every RAM record between a RAM section's block
/// list and its end-of-section record left out, everything else as it was. QEMU loads such a
/// stream (the guest's memory is then zero); its vCPU state is the original's. For small test
/// streams made from real ones.
pub fn without_ram<S: ByteSource + ?Sized>(src: &S, stream: &Stream) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut from = 0u64;
    let copy = |a: u64, b: u64, out: &mut Vec<u8>| -> std::io::Result<()> {
        let mut buf = vec![0u8; usize::try_from(b - a).map_err(std::io::Error::other)?];
        src.read_at(a, &mut buf)?;
        out.extend_from_slice(&buf);
        Ok(())
    };
    for r in &stream.ram_records {
        copy(from, r.start, &mut out)?;
        from = r.end;
    }
    copy(from, stream.len, &mut out)?;
    Ok(out)
}

mod cursor;
mod error;
mod vmsd;

#[cfg(test)]
mod tests;

//! The binary form of a snapshot: the canonical body (which the checksum covers in both forms)
//! and its framed file.
//!
//! A 1.0 body is the firmware part in the hand-written layout below. A 2.0 body is that same
//! firmware part as a byte string followed by the whole-vCPU part, both in postcard's wire
//! format, from the serde types the JSON form uses ([`super::machine`]): one definition, two
//! encodings.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::machine::MachineFile;
use super::{
    Error, FORMAT_1_0, FilterRange, FormatVersion, MAGIC, MAX_FILTER_RANGES, MAX_REGISTERS,
    MAX_TEXT, PendingStart, SavedReg, Snapshot, Source, VcpuState, VmState,
};
use crate::firmware::{FilterAction, KVM_MAX_VCPUS, MpState};
use crate::json::FieldError;

/// CRC-32 (IEEE 802.3 polynomial, reflected, initial and final XOR all ones: the CRC of zlib,
/// gzip and PNG) of `bytes`, computed by crc32fast.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

const FLAG_PSCI_0_2: u8 = 1 << 0;
const FLAG_HAS_RUN: u8 = 1 << 1;
const FLAG_SYSTEM_SUSPEND: u8 = 1 << 2;
const VCPU_PENDING: u8 = 1 << 0;
const VCPU_PV_TIME: u8 = 1 << 1;

/// The size of the binary frame around the body: magic, version, body length, CRC.
const FRAME: usize = 8 + 2 + 2 + 4 + 4;

impl Snapshot {
    /// The canonical encoding of the content (the binary form's body; the checksum's input).
    /// Counts and lengths beyond the format's limits are saturated, so a snapshot that fails
    /// [`Snapshot::validate`] encodes to bytes that fail to load.
    pub fn canonical_body(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(
            64 + self.vm.registers.len() * 16
                + self.vm.smccc_filter.len() * 9
                + self.vcpus.len() * 26,
        );
        for text in [&self.source.profile, &self.source.kernel] {
            let len = text.len().min(usize::from(u16::MAX));
            put_u16(&mut b, len);
            b.extend_from_slice(text.as_bytes().get(..len).unwrap_or_default());
        }
        let mut flags = 0;
        if self.vm.psci_0_2 {
            flags |= FLAG_PSCI_0_2;
        }
        if self.vm.has_run {
            flags |= FLAG_HAS_RUN;
        }
        if self.vm.system_suspend {
            flags |= FLAG_SYSTEM_SUSPEND;
        }
        b.push(flags);
        b.push(u8::try_from(self.vm.registers.len()).unwrap_or(u8::MAX));
        for r in self.vm.registers.iter().take(usize::from(u8::MAX)) {
            b.extend_from_slice(&r.id.to_le_bytes());
            b.extend_from_slice(&r.value.to_le_bytes());
        }
        put_u16(&mut b, self.vm.smccc_filter.len());
        for f in self.vm.smccc_filter.iter().take(usize::from(u16::MAX)) {
            b.extend_from_slice(&f.base.to_le_bytes());
            b.extend_from_slice(&f.nr_functions.to_le_bytes());
            b.push(f.action.kvm_value());
        }
        put_u16(&mut b, self.vcpus.len());
        for v in self.vcpus.iter().take(usize::from(u16::MAX)) {
            #[expect(
                clippy::cast_possible_truncation,
                reason = "the arm64 states are 0, 5 and 10: they fit a byte"
            )]
            b.push(v.mp_state.kvm_value() as u8);
            let mut flags = 0;
            if v.pending_start.is_some() {
                flags |= VCPU_PENDING;
            }
            if v.pv_time_ipa.is_some() {
                flags |= VCPU_PV_TIME;
            }
            b.push(flags);
            if let Some(p) = v.pending_start {
                b.extend_from_slice(&p.entry.to_le_bytes());
                b.extend_from_slice(&p.context_id.to_le_bytes());
            }
            if let Some(ipa) = v.pv_time_ipa {
                b.extend_from_slice(&ipa.to_le_bytes());
            }
        }
        b
    }

    /// The body of the snapshot's format version ([`Snapshot::format_version`]): the
    /// canonical body alone (1.0), or with the whole-vCPU part (2.0).
    pub fn body(&self) -> Vec<u8> {
        match &self.machine {
            None => self.canonical_body(),
            Some(m) => {
                let body = Body2 {
                    firmware: Bytes(self.canonical_body()),
                    machine: MachineFile::from(m),
                };
                // Plain data with known lengths: postcard encodes it.
                postcard::to_allocvec(&body).unwrap_or_default()
            }
        }
    }

    /// The CRC-32 of [`Snapshot::body`].
    pub fn checksum(&self) -> u32 {
        crc32(&self.body())
    }

    /// The binary form: magic, version, body length, body, CRC-32 of the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let body = self.body();
        let version = self.format_version();
        let mut out = Vec::with_capacity(body.len() + FRAME);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&version.major.to_le_bytes());
        out.extend_from_slice(&version.minor.to_le_bytes());
        out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_le_bytes());
        out
    }

    /// Load the binary form from untrusted bytes: magic, version rule, length, checksum, then
    /// every field ([`Snapshot::validate`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Snapshot, Error> {
        let mut r = Reader { buf: bytes, pos: 0 };
        if bytes.get(..MAGIC.len()) != Some(&MAGIC[..]) {
            return Err(Error::NotASnapshot(
                "the binary form starts with ARMFWSNP".to_string(),
            ));
        }
        r.pos = MAGIC.len();
        let found = FormatVersion {
            major: r.u16("version")?,
            minor: r.u16("version")?,
        };
        if !found.is_readable() {
            return Err(Error::UnsupportedVersion { found });
        }
        let len = r.u32("body length")? as usize;
        let body = r.take(len, "body")?;
        let stored = r.u32("checksum")?;
        if r.pos != bytes.len() {
            return Err(Error::TrailingBytes(bytes.len() - r.pos));
        }
        let computed = crc32(body);
        if stored != computed {
            return Err(Error::Checksum { stored, computed });
        }
        let s = if found == FORMAT_1_0 {
            decode_body(body)?
        } else {
            decode_body_2(body)?
        };
        s.validate()?;
        Ok(s)
    }

    /// Load either form: bytes starting with [`MAGIC`] are the binary form, anything else must
    /// be the JSON form in UTF-8.
    pub fn load(bytes: &[u8]) -> Result<Snapshot, Error> {
        if bytes.starts_with(&MAGIC) {
            return Self::from_bytes(bytes);
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            Error::NotASnapshot(format!("neither the binary form nor UTF-8 JSON ({e})"))
        })?;
        Self::from_json(text)
    }
}

fn field(path: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        kind: crate::json::FieldErrorKind::BadValue,
        path: path.to_string(),
        message: message.into(),
    }
}

/// The 2.0 body.
#[derive(Deserialize, Serialize)]
struct Body2 {
    firmware: Bytes,
    machine: MachineFile,
}

/// A byte string (postcard: a length and the bytes).
struct Bytes(Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(b.to_vec()))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// A 2.0 body: postcard reads from the body slice, so what it allocates is bounded by the
/// body's length (a length prefix longer than the bytes left fails before the allocation).
fn decode_body_2(body: &[u8]) -> Result<Snapshot, Error> {
    let parsed: Body2 = postcard::from_bytes(body)
        .map_err(|e| Error::from(field("machine", format!("not a 2.0 body ({e})"))))?;
    let mut s = decode_body(&parsed.firmware.0)?;
    s.machine = Some(parsed.machine.into_machine()?);
    Ok(s)
}

fn decode_body(body: &[u8]) -> Result<Snapshot, Error> {
    let mut r = Reader { buf: body, pos: 0 };
    let profile = r.text("source.profile")?;
    let kernel = r.text("source.kernel")?;
    let flags = r.u8("vm flags")?;
    if flags & !(FLAG_PSCI_0_2 | FLAG_HAS_RUN | FLAG_SYSTEM_SUSPEND) != 0 {
        return Err(field("vm", format!("unknown flag bits {flags:#04x}")).into());
    }
    let nregs = usize::from(r.u8("vm.registers count")?);
    if nregs > MAX_REGISTERS {
        return Err(field(
            "vm.registers",
            format!("more than {MAX_REGISTERS} registers"),
        )
        .into());
    }
    let mut registers = Vec::with_capacity(nregs);
    for _ in 0..nregs {
        let id = r.u64("vm.registers[].id")?;
        let value = r.u64("vm.registers[].value")?;
        registers.push(SavedReg { id, value });
    }
    let nranges = usize::from(r.u16("vm.smccc_filter count")?);
    if nranges > MAX_FILTER_RANGES {
        return Err(field(
            "vm.smccc_filter",
            format!("more than {MAX_FILTER_RANGES} ranges"),
        )
        .into());
    }
    let mut smccc_filter = Vec::with_capacity(nranges);
    for i in 0..nranges {
        let base = r.u32("vm.smccc_filter[].base")?;
        let nr_functions = r.u32("vm.smccc_filter[].nr_functions")?;
        let a = r.u8("vm.smccc_filter[].action")?;
        let action = FilterAction::from_kvm_value(a).ok_or_else(|| {
            field(
                &format!("vm.smccc_filter[{i}].action"),
                format!("{a} is not a KVM_SMCCC_FILTER_* action"),
            )
        })?;
        smccc_filter.push(FilterRange {
            base,
            nr_functions,
            action,
        });
    }
    let nvcpus = usize::from(r.u16("vcpus count")?);
    if nvcpus > KVM_MAX_VCPUS {
        return Err(field("vcpus", format!("more than {KVM_MAX_VCPUS} vCPUs")).into());
    }
    let mut vcpus = Vec::with_capacity(nvcpus);
    for i in 0..nvcpus {
        let m = r.u8("vcpus[].mp_state")?;
        let mp_state = MpState::from_kvm_value(m.into()).ok_or_else(|| {
            field(
                &format!("vcpus[{i}].mp_state"),
                format!("{m} is not RUNNABLE, STOPPED or SUSPENDED"),
            )
        })?;
        let f = r.u8("vcpus[] flags")?;
        if f & !(VCPU_PENDING | VCPU_PV_TIME) != 0 {
            return Err(field(
                &format!("vcpus[{i}]"),
                format!("unknown flag bits {f:#04x}"),
            )
            .into());
        }
        let pending_start = if f & VCPU_PENDING != 0 {
            Some(PendingStart {
                entry: r.u64("vcpus[].pending_start.entry")?,
                context_id: r.u64("vcpus[].pending_start.context_id")?,
            })
        } else {
            None
        };
        let pv_time_ipa = if f & VCPU_PV_TIME != 0 {
            Some(r.u64("vcpus[].pv_time_ipa")?)
        } else {
            None
        };
        vcpus.push(VcpuState {
            mp_state,
            pending_start,
            pv_time_ipa,
        });
    }
    if r.pos != body.len() {
        return Err(Error::TrailingBytes(body.len() - r.pos));
    }
    Ok(Snapshot {
        machine: None,
        source: Source { profile, kernel },
        vm: VmState {
            psci_0_2: flags & FLAG_PSCI_0_2 != 0,
            has_run: flags & FLAG_HAS_RUN != 0,
            system_suspend: flags & FLAG_SYSTEM_SUSPEND != 0,
            smccc_filter,
            registers,
        },
        vcpus,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Error> {
        let available = self.buf.len().saturating_sub(self.pos);
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end.and_then(|e| self.buf.get(self.pos..e)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(Error::Truncated {
                what,
                offset: self.pos,
                needed: n,
                available,
            }),
        }
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Error> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, Error> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, Error> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn text(&mut self, what: &'static str) -> Result<String, Error> {
        let len = usize::from(self.u16(what)?);
        if len == 0 || len > MAX_TEXT {
            return Err(field(what, format!("must be 1 to {MAX_TEXT} bytes")).into());
        }
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| field(what, "is not UTF-8").into())
    }
}

fn put_u16(b: &mut Vec<u8>, n: usize) {
    let n = u16::try_from(n).unwrap_or(u16::MAX);
    b.extend_from_slice(&n.to_le_bytes());
}

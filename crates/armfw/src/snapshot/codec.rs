//! The two forms of a snapshot: the canonical binary body (which the checksum covers), its
//! framed binary file, and the JSON form.

use serde_json::{Value, json};

use super::{
    Error, FORMAT_NAME, FORMAT_VERSION, FilterRange, FormatVersion, MAGIC, MAX_FILTER_RANGES,
    MAX_REGISTERS, MAX_TEXT, PendingStart, SavedReg, Snapshot, Source, VcpuState, VmState,
    filter_action_value,
};
use crate::abi::FwReg;
use crate::firmware::{FilterAction, KVM_MAX_VCPUS, MpState};
use crate::json::{FieldError, Obj, hex, kind, parse_hex};

/// CRC-32 (IEEE 802.3 polynomial, reflected, initial and final XOR all ones: the CRC of zlib,
/// gzip and PNG) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc = CRC_TABLE[usize::from((crc as u8) ^ b)] ^ (crc >> 8);
    }
    !crc
}

const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
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
            b.push(filter_action_value(f.action));
        }
        put_u16(&mut b, self.vcpus.len());
        for v in self.vcpus.iter().take(usize::from(u16::MAX)) {
            // 0, 5 and 10 fit a byte.
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

    /// The CRC-32 of [`Snapshot::canonical_body`].
    pub fn checksum(&self) -> u32 {
        crc32(&self.canonical_body())
    }

    /// The binary form: magic, version, body length, canonical body, CRC-32 of the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let body = self.canonical_body();
        let mut out = Vec::with_capacity(body.len() + FRAME);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.major.to_le_bytes());
        out.extend_from_slice(&FORMAT_VERSION.minor.to_le_bytes());
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
        let s = decode_body(body)?;
        s.validate()?;
        Ok(s)
    }

    /// The JSON form (see `docs/migration.md`), with its checksum.
    pub fn to_json(&self) -> Value {
        let registers: Vec<Value> = self
            .vm
            .registers
            .iter()
            .map(|r| match r.reg() {
                Some(reg) => json!({"name": reg.name(), "id": hex(r.id), "value": hex(r.value)}),
                None => json!({"id": hex(r.id), "value": hex(r.value)}),
            })
            .collect();
        let filter: Vec<Value> = self
            .vm
            .smccc_filter
            .iter()
            .map(|f| {
                json!({
                    "base": hex(f.base.into()),
                    "nr_functions": hex(f.nr_functions.into()),
                    "action": action_name(f.action),
                })
            })
            .collect();
        let vcpus: Vec<Value> = self
            .vcpus
            .iter()
            .map(|v| {
                let mut o = json!({"mp_state": mp_state_name(v.mp_state)});
                if let Some(p) = v.pending_start {
                    o["pending_start"] =
                        json!({"entry": hex(p.entry), "context_id": hex(p.context_id)});
                }
                if let Some(ipa) = v.pv_time_ipa {
                    o["pv_time_ipa"] = json!(hex(ipa));
                }
                o
            })
            .collect();
        json!({
            "format": format!("{FORMAT_NAME}/{FORMAT_VERSION}"),
            "source": {"profile": self.source.profile, "kernel": self.source.kernel},
            "vm": {
                "psci_0_2": self.vm.psci_0_2,
                "has_run": self.vm.has_run,
                "system_suspend": self.vm.system_suspend,
                "smccc_filter": filter,
                "registers": registers,
            },
            "vcpus": vcpus,
            "checksum": format!("crc32:{:#010x}", self.checksum()),
        })
    }

    /// Load the JSON form from untrusted text: format and version rule, every field, the
    /// checksum, then [`Snapshot::validate`].
    pub fn from_json(text: &str) -> Result<Snapshot, Error> {
        let v: Value = serde_json::from_str(text).map_err(|e| Error::Json(e.to_string()))?;
        Self::from_value(&v)
    }

    /// Load the JSON form from a parsed value (see [`Snapshot::from_json`]).
    pub fn from_value(v: &Value) -> Result<Snapshot, Error> {
        let Value::Object(map) = v else {
            return Err(Error::NotASnapshot(format!(
                "expected a JSON object, found {}",
                kind(v)
            )));
        };
        let format = match map.get("format") {
            Some(Value::String(s)) => s.as_str(),
            Some(other) => {
                return Err(FieldError {
                    kind: crate::json::FieldErrorKind::BadValue,
                    path: "format".into(),
                    message: format!("expected a string, found {}", kind(other)),
                }
                .into());
            }
            None => return Err(Error::NotASnapshot("no \"format\" field".to_string())),
        };
        let found = parse_format(format)?;
        if !found.is_readable() {
            return Err(Error::UnsupportedVersion { found });
        }
        let mut o = Obj::new("", v)?;
        o.get("format");
        let source = read_source(o.required("source")?)?;
        let vm = read_vm(o.required("vm")?)?;
        let vcpus = read_vcpus(o.array("vcpus")?.ok_or_else(|| missing("vcpus"))?)?;
        let stored = match o.string("checksum")? {
            Some(s) => s
                .strip_prefix("crc32:")
                .and_then(parse_hex)
                .and_then(|c| u32::try_from(c).ok())
                .ok_or_else(|| FieldError {
                    kind: crate::json::FieldErrorKind::BadValue,
                    path: "checksum".into(),
                    message: format!(
                        "expected crc32:0x followed by 1 to 8 hex digits, found {s:?}"
                    ),
                })?,
            None => return Err(missing("checksum").into()),
        };
        o.finish()?;
        let s = Snapshot { source, vm, vcpus };
        let computed = s.checksum();
        if stored != computed {
            return Err(Error::Checksum { stored, computed });
        }
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
        FieldError {
            kind: crate::json::FieldErrorKind::BadValue,
            path: "format".into(),
            message: format!("{format:?}: the version must be major.minor, e.g. {FORMAT_VERSION}"),
        }
        .into()
    })
}

fn missing(path: &str) -> FieldError {
    FieldError {
        kind: crate::json::FieldErrorKind::MissingField,
        path: path.to_string(),
        message: "missing".to_string(),
    }
}

fn field(path: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        kind: crate::json::FieldErrorKind::BadValue,
        path: path.to_string(),
        message: message.into(),
    }
}

fn required_bool(o: &mut Obj<'_>, key: &'static str) -> Result<bool, FieldError> {
    let path = o.path(key);
    o.bool(key)?.ok_or_else(|| missing(&path))
}

fn required_text(o: &mut Obj<'_>, key: &'static str) -> Result<String, FieldError> {
    let path = o.path(key);
    let s = o.string(key)?.ok_or_else(|| missing(&path))?;
    if s.is_empty() || s.len() > MAX_TEXT {
        return Err(field(&path, format!("must be 1 to {MAX_TEXT} bytes")));
    }
    Ok(s.to_string())
}

fn required_number(o: &mut Obj<'_>, key: &'static str) -> Result<u64, FieldError> {
    let path = o.path(key);
    o.number(key)?.ok_or_else(|| missing(&path))
}

fn u32_field(o: &mut Obj<'_>, key: &'static str) -> Result<u32, FieldError> {
    let path = o.path(key);
    let n = required_number(o, key)?;
    u32::try_from(n).map_err(|_| field(&path, format!("{} does not fit 32 bits", hex(n))))
}

fn read_source(v: &Value) -> Result<Source, FieldError> {
    let mut o = Obj::new("source", v)?;
    let profile = required_text(&mut o, "profile")?;
    let kernel = required_text(&mut o, "kernel")?;
    o.finish()?;
    Ok(Source { profile, kernel })
}

fn read_vm(v: &Value) -> Result<VmState, FieldError> {
    let mut o = Obj::new("vm", v)?;
    let psci_0_2 = required_bool(&mut o, "psci_0_2")?;
    let has_run = required_bool(&mut o, "has_run")?;
    let system_suspend = required_bool(&mut o, "system_suspend")?;
    let ranges = o.array("smccc_filter")?.unwrap_or_default();
    if ranges.len() > MAX_FILTER_RANGES {
        return Err(field(
            "vm.smccc_filter",
            format!("more than {MAX_FILTER_RANGES} ranges"),
        ));
    }
    let mut smccc_filter = Vec::with_capacity(ranges.len());
    for (i, r) in ranges.iter().enumerate() {
        let path = format!("vm.smccc_filter[{i}]");
        let mut f = Obj::new(&path, r)?;
        let base = u32_field(&mut f, "base")?;
        let nr_functions = u32_field(&mut f, "nr_functions")?;
        let action_path = f.path("action");
        let action = match f.string("action")? {
            Some(name) => action_from_name(name).ok_or_else(|| {
                field(
                    &action_path,
                    format!("{name:?} is not HANDLE, DENY or FWD_TO_USER"),
                )
            })?,
            None => return Err(missing(&action_path)),
        };
        f.finish()?;
        smccc_filter.push(FilterRange {
            base,
            nr_functions,
            action,
        });
    }
    let regs = o
        .array("registers")?
        .ok_or_else(|| missing("vm.registers"))?;
    if regs.len() > MAX_REGISTERS {
        return Err(field(
            "vm.registers",
            format!("more than {MAX_REGISTERS} registers"),
        ));
    }
    let mut registers = Vec::with_capacity(regs.len());
    for (i, r) in regs.iter().enumerate() {
        let path = format!("vm.registers[{i}]");
        let mut ro = Obj::new(&path, r)?;
        let name_path = ro.path("name");
        let name = ro.string("name")?;
        let id = required_number(&mut ro, "id")?;
        let value = required_number(&mut ro, "value")?;
        ro.finish()?;
        if let Some(name) = name {
            match FwReg::from_name(name) {
                Some(reg) if reg.id() == id => {}
                Some(reg) => {
                    return Err(field(
                        &name_path,
                        format!("{name} has id {}, not {}", hex(reg.id()), hex(id)),
                    ));
                }
                None => {
                    return Err(field(
                        &name_path,
                        format!("{name:?} is not a firmware register name"),
                    ));
                }
            }
        }
        registers.push(SavedReg { id, value });
    }
    o.finish()?;
    Ok(VmState {
        psci_0_2,
        has_run,
        system_suspend,
        smccc_filter,
        registers,
    })
}

fn read_vcpus(list: &[Value]) -> Result<Vec<VcpuState>, FieldError> {
    if list.len() > KVM_MAX_VCPUS {
        return Err(field("vcpus", format!("more than {KVM_MAX_VCPUS} vCPUs")));
    }
    let mut vcpus = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        let path = format!("vcpus[{i}]");
        let mut o = Obj::new(&path, v)?;
        let mp_path = o.path("mp_state");
        let mp_state = match o.string("mp_state")? {
            Some(name) => mp_state_from_name(name).ok_or_else(|| {
                field(
                    &mp_path,
                    format!("{name:?} is not RUNNABLE, STOPPED or SUSPENDED"),
                )
            })?,
            None => return Err(missing(&mp_path)),
        };
        let pending_start = match o.get("pending_start") {
            None => None,
            Some(p) => {
                let mut po = Obj::new(&format!("{path}.pending_start"), p)?;
                let entry = required_number(&mut po, "entry")?;
                let context_id = required_number(&mut po, "context_id")?;
                po.finish()?;
                Some(PendingStart { entry, context_id })
            }
        };
        let pv_time_ipa = o.number("pv_time_ipa")?;
        o.finish()?;
        vcpus.push(VcpuState {
            mp_state,
            pending_start,
            pv_time_ipa,
        });
    }
    Ok(vcpus)
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

pub(super) fn mp_state_name(s: MpState) -> &'static str {
    match s {
        MpState::Runnable => "RUNNABLE",
        MpState::Stopped => "STOPPED",
        MpState::Suspended => "SUSPENDED",
    }
}

fn mp_state_from_name(name: &str) -> Option<MpState> {
    [MpState::Runnable, MpState::Stopped, MpState::Suspended]
        .into_iter()
        .find(|s| mp_state_name(*s) == name)
}

fn action_name(a: FilterAction) -> &'static str {
    match a {
        FilterAction::Handle => "HANDLE",
        FilterAction::Deny => "DENY",
        FilterAction::Forward => "FWD_TO_USER",
    }
}

fn action_from_name(name: &str) -> Option<FilterAction> {
    [
        FilterAction::Handle,
        FilterAction::Deny,
        FilterAction::Forward,
    ]
    .into_iter()
    .find(|a| action_name(*a) == name)
}

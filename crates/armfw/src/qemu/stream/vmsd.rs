//! The device description QEMU appends, and the full sections walked through it.

use serde::Deserialize;

use super::{
    ByteSource, MAX_CPREGS, MAX_VCPUS, QemuVcpu, Reader, Stream, StreamErrorKind, limit, read_at,
    section,
};

/// The device description's JSON (`qemu_savevm_state_complete_precopy_non_iterable()`).
#[derive(Debug, Deserialize)]
pub(super) struct Description {
    pub(super) page_size: Option<u64>,
    #[serde(default)]
    pub(super) devices: Vec<Device>,
    pub(super) configuration: Option<Vmsd>,
}

/// One full section's description.
#[derive(Debug, Deserialize)]
pub(super) struct Device {
    pub(super) name: String,
    pub(super) instance_id: u32,
    #[serde(flatten)]
    pub(super) vmsd: Vmsd,
}

/// A VMState description: its fields and the subsections that follow them.
#[derive(Debug, Deserialize)]
pub(super) struct Vmsd {
    #[serde(default)]
    pub(super) vmsd_name: String,
    #[serde(default)]
    pub(super) version: Option<u32>,
    #[serde(default)]
    pub(super) fields: Vec<Field>,
    #[serde(default)]
    pub(super) subsections: Vec<Vmsd>,
}

/// One field: its wire size per element (`size`), element count (`array_len`), and for a
/// structure its own description.
#[derive(Debug, Deserialize)]
pub(super) struct Field {
    pub(super) name: String,
    #[serde(rename = "type", default)]
    pub(super) ty: String,
    pub(super) size: u64,
    pub(super) array_len: Option<u64>,
    #[serde(rename = "struct")]
    pub(super) inner: Option<Vmsd>,
}

/// A top-level field of a full section, where it is in the stream.
pub(super) struct Leaf<'d> {
    pub(super) name: &'d str,
    pub(super) ty: &'d str,
    pub(super) offset: u64,
    pub(super) size: u64,
    pub(super) count: u64,
}

impl<S: ByteSource + ?Sized> Reader<'_, S> {
    /// A full section, walked through its description; a `cpu` section's state is kept.
    pub(super) fn device(
        &mut self,
        out: &mut Stream,
        dev: &Device,
        version: u32,
    ) -> Result<(), StreamErrorKind> {
        out.devices
            .push((dev.name.clone(), dev.instance_id, version));
        let cpu = dev.name == "cpu";
        if cpu && out.vcpus.len() >= MAX_VCPUS {
            return Err(limit("vCPUs", MAX_VCPUS));
        }
        let mut leaves = Vec::new();
        self.fields(&dev.name, &dev.vmsd, 0, cpu.then_some(&mut leaves))?;
        let subsections = dev
            .vmsd
            .subsections
            .iter()
            .map(|s| s.vmsd_name.clone())
            .collect();
        self.subsections(&dev.name, &dev.vmsd, 0)?;
        if cpu {
            let vcpu = self.vcpu(dev.instance_id, &leaves, subsections)?;
            out.vcpus.push(vcpu);
        }
        Ok(())
    }

    /// The fields of `vmsd` (not its subsections); with `leaves`, where each top-level one is.
    fn fields<'d>(
        &mut self,
        device: &str,
        vmsd: &'d Vmsd,
        depth: usize,
        mut leaves: Option<&mut Vec<Leaf<'d>>>,
    ) -> Result<(), StreamErrorKind> {
        if depth > 64 {
            return Err(limit("nested structures", 64));
        }
        for field in &vmsd.fields {
            let start = self.cur.pos;
            if let Some(inner) = &field.inner {
                // A structure, or an array of them described once (`array_len`): each
                // element takes `size` bytes, so the stream must hold them all (and elements
                // of no bytes are walked once).
                let count = field.array_len.unwrap_or(1);
                let bytes = field
                    .size
                    .checked_mul(count)
                    .ok_or(limit("field bytes", u64::MAX))?;
                self.cur.need("structure", bytes)?;
                let walks = if field.size == 0 { count.min(1) } else { count };
                for _ in 0..walks {
                    let element = self.cur.pos;
                    self.fields(device, inner, depth + 1, None)?;
                    self.subsections(device, inner, depth + 1)?;
                    let read = self.cur.pos - element;
                    if read != field.size {
                        return Err(StreamErrorKind::FieldSize {
                            device: device.into(),
                            field: field.name.clone(),
                            described: field.size,
                            read,
                        });
                    }
                }
            } else {
                let count = field.array_len.unwrap_or(1);
                let bytes = field
                    .size
                    .checked_mul(count)
                    .ok_or(limit("field bytes", u64::MAX))?;
                self.cur.skip("field", bytes)?;
                if let Some(l) = leaves.as_deref_mut() {
                    l.push(Leaf {
                        name: &field.name,
                        ty: &field.ty,
                        offset: start,
                        size: field.size,
                        count,
                    });
                }
            }
        }
        Ok(())
    }

    /// The subsections of `vmsd`, each checked against the stream's marker, name and version.
    pub(super) fn subsections(
        &mut self,
        device: &str,
        vmsd: &Vmsd,
        depth: usize,
    ) -> Result<(), StreamErrorKind> {
        for sub in &vmsd.subsections {
            let marker = self.cur.u8("subsection")?;
            if marker != section::SUBSECTION {
                self.cur.pos -= 1;
                return Err(StreamErrorKind::Subsection {
                    device: device.into(),
                    expected: sub.vmsd_name.clone(),
                    found: format!("byte {marker:#04x}"),
                });
            }
            let name = self.cur.idstr("subsection name")?;
            let version = self.cur.be32("subsection version")?;
            if name != sub.vmsd_name || sub.version.is_some_and(|v| v != version) {
                return Err(StreamErrorKind::Subsection {
                    device: device.into(),
                    expected: sub.vmsd_name.clone(),
                    found: format!("{name:?} version {version}"),
                });
            }
            if name == "configuration/capabilities" {
                self.capabilities()?;
                continue;
            }
            self.fields(device, sub, depth + 1, None)?;
            self.subsections(device, sub, depth + 1)?;
        }
        Ok(())
    }

    /// The configuration's capability list (described as `caps_count` and `capabilities`).
    pub(super) fn capabilities(&mut self) -> Result<(), StreamErrorKind> {
        let count = self.cur.be32("capability count")?;
        for _ in 0..count {
            let cap = self.cur.idstr("capability")?;
            refuse_capability(&cap)?;
        }
        Ok(())
    }

    /// A vCPU's state from its section's top-level fields (QEMU `target/arm/machine.c`,
    /// `vmstate_arm_cpu`).
    fn vcpu(
        &mut self,
        instance_id: u32,
        leaves: &[Leaf<'_>],
        subsections: Vec<String>,
    ) -> Result<QemuVcpu, StreamErrorKind> {
        let bad = |why: String| StreamErrorKind::Cpu {
            vcpu: instance_id,
            why,
        };
        let find = |name: &str| leaves.iter().find(|l| l.name == name);
        let scalar = |this: &mut Self, name: &str, size: u64| -> Result<u64, StreamErrorKind> {
            let leaf = find(name).ok_or_else(|| bad(format!("no field {name:?}")))?;
            if leaf.size != size || leaf.count != 1 {
                return Err(bad(format!(
                    "field {name:?} ({}) is {} x {} bytes, not {size}",
                    leaf.ty, leaf.count, leaf.size
                )));
            }
            this.value(leaf.offset, size)
        };
        let pc = scalar(self, "env.pc", 8)?;
        let pstate = u32::try_from(scalar(self, "cpsr", 4)?).unwrap_or(0);
        let len = scalar(self, "cpreg_vmstate_array_len", 4)?;
        let len = i32::from_be_bytes(u32::try_from(len).unwrap_or(0).to_be_bytes());
        let n =
            usize::try_from(len).map_err(|_| bad(format!("cpreg_vmstate_array_len is {len}")))?;
        if n > MAX_CPREGS {
            return Err(limit("cpreg entries", MAX_CPREGS));
        }
        let array = |name: &str| -> Result<Option<&Leaf<'_>>, StreamErrorKind> {
            let Some(leaf) = find(name) else {
                return Ok(None);
            };
            if leaf.size != 8 || leaf.count != n as u64 {
                return Err(bad(format!(
                    "{name} is {} x {} bytes, cpreg_vmstate_array_len says {n} x 8",
                    leaf.count, leaf.size
                )));
            }
            Ok(Some(leaf))
        };
        let ids = array("cpreg_vmstate_indexes")?;
        let values = array("cpreg_vmstate_values")?;
        let cpregs = match (ids, values) {
            (Some(i), Some(v)) => {
                let ids = self.u64s(i.offset, n)?;
                let values = self.u64s(v.offset, n)?;
                ids.into_iter().zip(values).collect()
            }
            (None, None) if n == 0 => Vec::new(),
            _ => return Err(bad("the cpreg id and value arrays do not pair".into())),
        };
        Ok(QemuVcpu {
            instance_id,
            pc,
            pstate,
            cpregs,
            subsections,
        })
    }

    /// A big-endian value of `size` bytes (at most 8) at `offset`.
    fn value(&mut self, offset: u64, size: u64) -> Result<u64, StreamErrorKind> {
        let mut b = [0u8; 8];
        let n = usize::try_from(size).unwrap_or(8).min(8);
        read_at(self.cur.src, offset, &mut b[8 - n..])?;
        Ok(u64::from_be_bytes(b))
    }

    fn u64s(&mut self, offset: u64, n: usize) -> Result<Vec<u64>, StreamErrorKind> {
        let mut bytes = vec![0u8; n * 8];
        read_at(self.cur.src, offset, &mut bytes)?;
        Ok(bytes
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect())
    }
}

/// Capabilities whose RAM records carry fields this reader does not walk (`x-ignore-shared`
/// adds a block address, `mapped-ram` places pages elsewhere). Only capabilities that change
/// the stream are in the configuration's list.
fn refuse_capability(cap: &str) -> Result<(), StreamErrorKind> {
    Err(StreamErrorKind::Capability(cap.to_owned()))
}

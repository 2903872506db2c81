//! The whole-vCPU part of a snapshot (format 2.0): everything KVM_GET_REG_LIST names besides
//! the firmware registers, with the set-up a restore must repeat before writing them.
//!
//! - VM-wide, once: the vCPU features every vCPU was initialised with, the SVE_VLS value
//!   written before finalizing, whether KVM_CAP_ARM_WRITABLE_IMP_ID_REGS was enabled, the
//!   value given to KVM_ARM_SET_COUNTER_OFFSET (if the VMM used it), the register list in
//!   KVM's order (every vCPU of a VM with one feature set lists the same ids), and the values
//!   of the VM-wide registers (the ID registers, MIDR/REVIDR/AIDR and CTR_EL0: KVM keeps one
//!   value per VM, [`rules::SysRule::vm_wide`]).
//! - Per vCPU: the value of every other listed register that is not a firmware register
//!   (those are the 1.0 part's), in list order.
//!
//! Values are register buffers of the id's size, little-endian; JSON shows them as one
//! number, as the scenario format does.

use serde::{Deserialize, Serialize};

use super::MAX_REG_LIST;
use crate::abi::feature::CpuFeatures;
use crate::abi::{CpuFeature, OneRegId};
use crate::json::{FieldError, Number, Wide, err, hex};
use crate::vcpu::rules;

/// The SVE_VLS buffer size (512 bits).
const SVE_VLS_BYTES: usize = 64;

/// One saved register of any size.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RegValue {
    /// The ONE_REG id.
    pub id: u64,
    /// The buffer GET filled: the id's size, little-endian.
    pub value: Vec<u8>,
}

impl RegValue {
    /// The low 64 bits of the value.
    pub fn low_u64(&self) -> u64 {
        crate::json::le_u64(&self.value)
    }
}

/// The whole-vCPU part of a snapshot. See the [module documentation](self).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Machine {
    /// The vCPU features of every vCPU (KVM_ARM_VCPU_INIT), besides PSCI_0_2 and POWER_OFF.
    pub features: CpuFeatures,
    /// With SVE: the SVE_VLS value (64 bytes) in force when the vCPUs were finalized.
    pub sve_vls: Option<Vec<u8>>,
    /// KVM_CAP_ARM_WRITABLE_IMP_ID_REGS was enabled on the VM.
    pub writable_imp_id_regs: bool,
    /// The value the VMM gave KVM_ARM_SET_COUNTER_OFFSET, if it used it (then the counters'
    /// saved values are not what a restore writes: KVM ignores counter writes after it).
    pub counter_offset: Option<u64>,
    /// KVM_GET_REG_LIST of the vCPUs, in KVM's order, firmware ids included.
    pub reg_list: Vec<u64>,
    /// The VM-wide registers' values, in list order.
    pub vm_registers: Vec<RegValue>,
    /// Per vCPU, the values of the other listed registers but the firmware ones, in list
    /// order.
    pub vcpus: Vec<Vec<RegValue>>,
}

/// Whether KVM keeps one value of `id` for the whole VM (an ID register, an implementation
/// id, CTR_EL0): such a register is saved once, in [`Machine::vm_registers`].
pub fn is_vm_wide(id: u64) -> bool {
    let reg = OneRegId(id);
    reg.is_arm64() && reg.class() == 0x13 && rules::sys_rule(id).vm_wide()
}

impl Machine {
    /// The saved value of `id` on `vcpu`: the VM's for a VM-wide register.
    pub fn value(&self, vcpu: usize, id: u64) -> Option<&RegValue> {
        if is_vm_wide(id) {
            self.vm_registers.iter().find(|r| r.id == id)
        } else {
            self.vcpus.get(vcpu)?.iter().find(|r| r.id == id)
        }
    }

    /// Check the part against itself and the snapshot's firmware ids (`firmware`, ascending)
    /// and vCPU count. The errors name the field under `machine`.
    pub(crate) fn validate(&self, firmware: &[u64], vcpus: usize) -> Result<(), FieldError> {
        if !self.features.is_initable() {
            return err(
                "machine.features",
                "ptrauth_address and ptrauth_generic go together (KVM refuses either alone)",
            );
        }
        match (&self.sve_vls, self.features.has(CpuFeature::Sve)) {
            (Some(v), true) if v.len() == SVE_VLS_BYTES && v.iter().any(|&b| b != 0) => {}
            (Some(_), true) => {
                return err(
                    "machine.sve_vls",
                    "must be a non-empty set of vector lengths (512 bits)",
                );
            }
            (None, true) => {
                return err(
                    "machine.sve_vls",
                    "is 0, and the sve feature needs vector lengths",
                );
            }
            (Some(_), false) => return err("machine.sve_vls", "must be 0 without the sve feature"),
            (None, false) => {}
        }
        if self.reg_list.is_empty() || self.reg_list.len() > MAX_REG_LIST {
            return err(
                "machine.reg_list",
                format!("must hold 1 to {MAX_REG_LIST} ids"),
            );
        }
        let mut seen = std::collections::HashSet::with_capacity(self.reg_list.len());
        for (i, &id) in self.reg_list.iter().enumerate() {
            if !OneRegId(id).is_arm64() {
                return err(
                    &format!("machine.reg_list[{i}]"),
                    format!("{} is not an arm64 ONE_REG id", hex(id)),
                );
            }
            if !seen.insert(id) {
                return err(
                    &format!("machine.reg_list[{i}]"),
                    format!("{} is listed twice", hex(id)),
                );
            }
        }
        let listed_fw: Vec<u64> = {
            let mut v: Vec<u64> = self
                .reg_list
                .iter()
                .copied()
                .filter(|&id| OneRegId(id).is_firmware_class())
                .collect();
            v.sort_unstable();
            v
        };
        if listed_fw != firmware {
            return err(
                "machine.reg_list",
                "its firmware ids are not the ids of vm.registers",
            );
        }
        let wide = self.reg_list.iter().copied().filter(|&id| is_vm_wide(id));
        check_values("machine.vm_registers", &self.vm_registers, wide)?;
        if self.vcpus.len() != vcpus {
            return err(
                "machine.vcpus",
                format!(
                    "has {} entries, the snapshot {vcpus} vCPUs",
                    self.vcpus.len()
                ),
            );
        }
        for (v, regs) in self.vcpus.iter().enumerate() {
            let own = self
                .reg_list
                .iter()
                .copied()
                .filter(|&id| !is_vm_wide(id) && !OneRegId(id).is_firmware_class());
            check_values(&format!("machine.vcpus[{v}].registers"), regs, own)?;
        }
        Ok(())
    }
}

/// `regs` must be exactly the ids `expected` gives, in that order, each with a buffer of its
/// size.
fn check_values(
    path: &str,
    regs: &[RegValue],
    mut expected: impl Iterator<Item = u64>,
) -> Result<(), FieldError> {
    for (i, r) in regs.iter().enumerate() {
        match expected.next() {
            Some(id) if id == r.id => {}
            Some(id) => {
                return err(
                    &format!("{path}[{i}].id"),
                    format!("is {}, the register list has {} here", hex(r.id), hex(id)),
                );
            }
            None => {
                return err(
                    &format!("{path}[{i}]"),
                    format!("{} is not a register of this list", hex(r.id)),
                );
            }
        }
        let size = OneRegId(r.id).size_bytes();
        if r.value.len() != size {
            return err(
                &format!("{path}[{i}].value"),
                format!("does not fit the register's {size}-byte buffer"),
            );
        }
    }
    if let Some(id) = expected.next() {
        return err(path, format!("lacks {} of the register list", hex(id)));
    }
    Ok(())
}

/// The file form of [`Machine`], the same in JSON and in the binary body. Every field is
/// always present (postcard has no optional fields): `sve_vls` is 0 without SVE, and
/// `counter_offset` is the string `"none"` in JSON when the VMM did not set one.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MachineFile {
    features: CpuFeatures,
    sve_vls: Wide,
    writable_imp_id_regs: bool,
    counter_offset: CounterOffset,
    reg_list: Vec<Number>,
    vm_registers: Vec<RegFile>,
    vcpus: Vec<VcpuFile>,
}

/// An optional 64-bit number: in JSON `"none"` or the number, in binary forms an option.
struct CounterOffset(Option<u64>);

impl Serialize for CounterOffset {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (self.0, s.is_human_readable()) {
            (None, true) => s.serialize_str("none"),
            (Some(v), true) => Number(v).serialize(s),
            (v, false) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for CounterOffset {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            return Option::<u64>::deserialize(d).map(CounterOffset);
        }
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = CounterOffset;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"none\" or a number")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<CounterOffset, E> {
                Ok(CounterOffset(Some(v)))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<CounterOffset, E> {
                if s == "none" {
                    return Ok(CounterOffset(None));
                }
                crate::json::parse_hex(s)
                    .map(|v| CounterOffset(Some(v)))
                    .ok_or_else(|| E::custom(format!("expected \"none\" or a number, found {s:?}")))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RegFile {
    id: Number,
    value: Wide,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct VcpuFile {
    registers: Vec<RegFile>,
}

impl From<&Machine> for MachineFile {
    fn from(m: &Machine) -> MachineFile {
        // The value's significant bytes (at least one): a register buffer is mostly zeros
        // (SVE Z registers are 256 bytes), and reading fits it back to the id's size.
        let trimmed = |v: &[u8]| {
            let used = v.iter().rposition(|&b| b != 0).map_or(1, |i| i + 1);
            Wide::from_le(&v[..used.min(v.len())])
        };
        let regs = |list: &[RegValue]| {
            list.iter()
                .map(|r| RegFile {
                    id: Number(r.id),
                    value: trimmed(&r.value),
                })
                .collect()
        };
        MachineFile {
            features: m.features,
            sve_vls: m
                .sve_vls
                .as_deref()
                .map_or_else(|| Wide::from(0), Wide::from_le),
            writable_imp_id_regs: m.writable_imp_id_regs,
            counter_offset: CounterOffset(m.counter_offset),
            reg_list: m.reg_list.iter().copied().map(Number).collect(),
            vm_registers: regs(&m.vm_registers),
            vcpus: m
                .vcpus
                .iter()
                .map(|v| VcpuFile { registers: regs(v) })
                .collect(),
        }
    }
}

impl MachineFile {
    /// The part, with each value fitted to its id's size; the counts are bounded first.
    pub(super) fn into_machine(self) -> Result<Machine, FieldError> {
        if self.reg_list.len() > MAX_REG_LIST
            || self.vm_registers.len() > MAX_REG_LIST
            || self.vcpus.len() > crate::firmware::KVM_MAX_VCPUS
        {
            return err(
                "machine",
                format!(
                    "more than {MAX_REG_LIST} registers or {} vCPUs",
                    crate::firmware::KVM_MAX_VCPUS
                ),
            );
        }
        let regs = |path: &str, list: Vec<RegFile>| -> Result<Vec<RegValue>, FieldError> {
            if list.len() > MAX_REG_LIST {
                return err(path, format!("more than {MAX_REG_LIST} registers"));
            }
            list.into_iter()
                .enumerate()
                .map(|(i, r)| {
                    let size = OneRegId(r.id.0).size_bytes();
                    let value = r.value.fit(size).ok_or_else(|| {
                        FieldError::bad_value(
                            format!("{path}[{i}].value"),
                            format!("does not fit the register's {size}-byte buffer"),
                        )
                    })?;
                    Ok(RegValue { id: r.id.0, value })
                })
                .collect()
        };
        let vls = self.sve_vls.fit(SVE_VLS_BYTES).ok_or_else(|| {
            FieldError::bad_value("machine.sve_vls", "does not fit 512 bits".to_string())
        })?;
        let sve_vls = vls.iter().any(|&b| b != 0).then_some(vls);
        let vm_registers = regs("machine.vm_registers", self.vm_registers)?;
        let vcpus = self
            .vcpus
            .into_iter()
            .enumerate()
            .map(|(v, f)| regs(&format!("machine.vcpus[{v}].registers"), f.registers))
            .collect::<Result<_, _>>()?;
        Ok(Machine {
            features: self.features,
            sve_vls,
            writable_imp_id_regs: self.writable_imp_id_regs,
            counter_offset: self.counter_offset.0,
            reg_list: self.reg_list.into_iter().map(u64::from).collect(),
            vm_registers,
            vcpus,
        })
    }
}

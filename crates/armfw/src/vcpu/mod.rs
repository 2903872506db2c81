//! The whole vCPU on the model: every register KVM lists outside the firmware classes, as one
//! host's KVM answers KVM_GET_REG_LIST, KVM_GET_ONE_REG and KVM_SET_ONE_REG for them.
//!
//! The facts come from a version-2 profile ([`crate::profile::VcpuProfile`]: the register
//! list and reset values per feature set, the writable masks, the capabilities); the rules
//! from [`rules`], keyed by release. The firmware registers stay with [`crate::firmware`].
//!
//! What the model does not follow (a scenario that depends on it cannot be compared):
//! registers that the backend's own guest code writes to make a call (the core registers,
//! VBAR_EL1) after a `call`; the running counters; a timer's ISTATUS bit when the compare
//! value is near the physical counter; the register reset of a CPU_ON target.

pub mod names;
pub mod rules;
mod set;
mod sets;
mod store;

pub use sets::feature_set;
use store::{IdIndex, Reg};

use crate::abi::vcpu_reg::{
    PTIMER_CTL, PTIMER_CVAL, SVE_VLS, TIMER_CTL, TIMER_CVAL, sysreg_encoding, sysreg_id,
};
use crate::abi::{CpuFeature, CpuFeatures, Errno, Mpidr, OneRegId};
use crate::json::Wide;
use crate::profile::{FeatureSet, Profile, VcpuProfile};
use crate::release::Release;
use rules::{Kind, SysRule};
use std::sync::Arc;

/// Why a VM with these vCPU settings cannot be set up on the host (what KVM refuses at
/// KVM_ENABLE_CAP, KVM_ARM_VCPU_INIT or the SVE_VLS write).
pub type SetupError = String;

/// The settings of a VM's vCPUs that change their registers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VcpuSetup {
    /// Number of vCPUs.
    pub vcpus: usize,
    /// The features of every vCPU.
    pub features: CpuFeatures,
    /// The SVE_VLS value written before finalizing.
    pub sve_vls: Option<Vec<u8>>,
    /// KVM_CAP_ARM_WRITABLE_IMP_ID_REGS enabled.
    pub writable_imp_id_regs: bool,
}

/// What a VM's vCPU registers depend on besides what the VM does: the host and the vCPU
/// set-up. Built once ([`VcpuTemplate::new`]) and shared (`Arc`) by every VM made from it
/// ([`VcpuModel::from_template`]), so that a check that replays a state several times, or
/// many states onto one host, decodes the host's registers once.
#[derive(Debug)]
pub struct VcpuTemplate {
    release: Release,
    set: FeatureSet,
    /// id → list position.
    index: IdIndex,
    features: CpuFeatures,
    sve_vls: Option<Vec<u8>>,
    imp_writable: bool,
    aarch32_el0: bool,
    /// The SVE maximum vector length in quadwords (0 without SVE).
    vq: usize,
    /// The value of each listed register on a fresh vCPU, by list position.
    base: Vec<Reg>,
    /// MPIDR_EL1's list position.
    mpidr: Option<usize>,
    /// What each register's accesses need, decided once from its id and the host, by
    /// position.
    slots: Vec<Slot>,
    /// The host has KVM_ARM_SET_COUNTER_OFFSET (KVM_CAP_COUNTER_OFFSET, 6.4).
    counter_offset_cap: bool,
}

/// The registers of one VM's vCPUs on the model.
#[derive(Clone, Debug)]
pub struct VcpuModel {
    /// The host and set-up part, shared.
    t: Arc<VcpuTemplate>,
    /// Per vCPU, the value of each listed register, by list position.
    values: Vec<Vec<Reg>>,
    /// VM-wide registers (ID and implementation registers, CTR_EL0) once written, by list
    /// position.
    vm_wide: Vec<Option<u64>>,
    has_run: bool,
    /// The virtual and physical counters as last written (the VM's offsets).
    counters: [Option<u64>; 2],
    /// KVM_ARM_SET_COUNTER_OFFSET succeeded: writes to the counters are ignored.
    counter_offset_set: bool,
}

/// What the accesses of one listed register need, decided once from its id and the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    /// GET reads the stored value (the VM's once written, else the vCPU's): every listed
    /// register but the firmware ones (the engine's), the timers (ISTATUS) and the PMU
    /// set/clear pairs (masked by the counters) from 6.7.
    plain_get: bool,
    /// SET stores any value: a system register with the plain rule, or a core register
    /// other than PSTATE.
    plain_set: bool,
    /// An ID register that reads as zero (no field table, or hidden on this CPU).
    raz: bool,
    /// An AArch32 ID register whose writes are ignored on this CPU.
    write_ignored: bool,
    /// The kernel's field table of the register, if it has one.
    fields: Option<&'static crate::register::ftr::FtrReg>,
    /// A system register's SET rule (not for the timer ids and the demux).
    sys: Option<SysRule>,
    /// The host's value (reset on a fresh vCPU), low 64 bits.
    limit: u64,
    /// The writable mask (0 where none was probed).
    writable: u64,
    /// The bits of the register's fields inside its writable mask
    /// ([`rules::checked_fields`]).
    checked: u64,
    /// An ID register's own `set_user` checks.
    special: rules::IdSpecial,
}

impl Slot {
    fn new(id: u64, release: Release, limit: u64, writable: u64, aarch32_el0: bool) -> Slot {
        let kind = rules::kind(id, release);
        let sys = (kind == Kind::SysReg).then(|| rules::sys_rule(id));
        let pmu_masked = matches!(sys, Some(SysRule::PmuSetClr { .. })) && release.at_least(6, 7);
        let enc = sysreg_encoding(id);
        let (op0, op1, crn, crm, op2) = enc;
        let id_space = op0 == 3 && op1 == 0 && crn == 0 && (1..=3).contains(&crm);
        let aa32 = rules::aa32_sanitised(enc);
        let fields = crate::register::ftr::ftr_reg(op0, op1, crn, crm, op2);
        let has_table = fields.is_some();
        Slot {
            plain_get: !matches!(kind, Kind::Firmware | Kind::Timer | Kind::NotArm64)
                && !pmu_masked,
            plain_set: (sys == Some(SysRule::Plain))
                || (kind == Kind::Core && id & 0xffff != rules::CORE_PSTATE),
            raz: (!has_table || (id_space && !aa32 && !aarch32_el0)) && limit == 0,
            write_ignored: aa32 && !aarch32_el0,
            fields,
            sys,
            limit,
            writable,
            checked: rules::checked_fields(fields, writable),
            special: rules::IdSpecial::of(enc),
        }
    }
}

/// What the first KVM_RUN makes of the value `value` of the register `id` on the host whose
/// probed feature set is `set`: the bits the first run cleared on the probe's fresh VM are
/// cleared, the bits it set are set (other registers are unchanged). For the VM-wide ID
/// registers this is `kvm_finalize_sys_regs()` (`arch/arm64/kvm/sys_regs.c`, 6.12 and
/// later): on a VM without a vGICv3 the GIC fields of ID_AA64PFR0_EL1 and ID_PFR1_EL1 are
/// cleared whatever was written (the probe's VMs have no vGIC; 6.1 leaves them).
pub fn after_first_run(set: &FeatureSet, id: u64, value: u64) -> u64 {
    let (Some(after), Some(reset)) = (set.first_run.get(id), set.reset(id)) else {
        return value;
    };
    let (after, reset) = (after.low_u64(), reset.low_u64());
    (value & !(reset & !after)) | (after & !reset)
}

/// A probed physical counter reading (about 18 minutes of uptime at QEMU's 62.5 MHz): what
/// the model assumes the physical counter reads when no write set the physical offset.
const PHYS_COUNTER: u64 = 1 << 36;

impl VcpuTemplate {
    /// The template of the host `profile` for vCPUs set up as `setup` says (its `vcpus`
    /// count is not part of it), or why KVM would refuse the set-up. `None` when the profile
    /// has no whole-vCPU part (version 1).
    pub fn new(profile: &Profile, setup: &VcpuSetup) -> Option<Result<VcpuTemplate, SetupError>> {
        let vcpu = profile.vcpu()?;
        Some(Self::build(profile.release(), vcpu, setup))
    }

    /// Whether VMs set up as `setup` are made from this template.
    pub fn fits(&self, setup: &VcpuSetup) -> bool {
        self.features == setup.features
            && self.imp_writable == setup.writable_imp_id_regs
            && (!self.features.has(CpuFeature::Sve) || self.sve_vls == setup.sve_vls)
    }

    fn build(
        release: Release,
        v: &VcpuProfile,
        setup: &VcpuSetup,
    ) -> Result<VcpuTemplate, SetupError> {
        if setup.writable_imp_id_regs && !v.capabilities.writable_imp_id_regs {
            return Err(
                "KVM_ENABLE_CAP(KVM_CAP_ARM_WRITABLE_IMP_ID_REGS): EINVAL (the host lacks it)"
                    .into(),
            );
        }
        let f = setup.features;
        let mut set = feature_set(v, f)?;
        let mut vq = 0;
        if f.has(CpuFeature::Sve) {
            let host = set
                .reset(SVE_VLS)
                .and_then(|w| w.fit(64))
                .ok_or("the profile's SVE set has no SVE_VLS")?;
            vq = rules::vls_lengths(&host).last().copied().unwrap_or(0);
            if let Some(want) = &setup.sve_vls {
                vq = rules::sve_vls_check(want, &host)
                    .map_err(|e| format!("KVM_SET_ONE_REG(SVE_VLS): {e}"))?;
                set.registers
                    .0
                    .iter_mut()
                    .filter(|(id, _)| *id == SVE_VLS)
                    .for_each(|(_, val)| *val = Wide::from_le(want));
            }
        }
        let index = IdIndex::new(set.ids());
        let pfr0 = set.reset(sysreg_id(3, 0, 0, 4, 0)).map_or(0, Wide::low_u64);
        let aarch32_el0 = pfr0 & 0xf == 2;
        let slots: Vec<Slot> = set
            .registers
            .0
            .iter()
            .map(|(id, w)| {
                let writable = v
                    .writable_masks
                    .as_ref()
                    .and_then(|m| m.get(*id))
                    .map_or(0, Wide::low_u64);
                Slot::new(*id, release, w.low_u64(), writable, aarch32_el0)
            })
            .collect();
        let base: Vec<Reg> = set
            .registers
            .0
            .iter()
            .map(|(id, w)| Reg::from_bytes(&w.fit(OneRegId(*id).size_bytes()).unwrap_or_default()))
            .collect();
        let mpidr_id = sysreg_id(3, 0, 0, 0, 5);
        let mpidr = set.ids().position(|id| id == mpidr_id);
        Ok(VcpuTemplate {
            release,
            index,
            features: f,
            sve_vls: setup.sve_vls.clone(),
            imp_writable: setup.writable_imp_id_regs,
            aarch32_el0,
            vq,
            base,
            mpidr,
            slots,
            counter_offset_cap: v.capabilities.counter_offset,
            set,
        })
    }
}

impl VcpuModel {
    /// The vCPUs of a new VM on the host `profile`, set up as `setup` says, or why KVM would
    /// refuse the set-up. `None` when the profile has no whole-vCPU part (version 1).
    pub fn new(profile: &Profile, setup: &VcpuSetup) -> Option<Result<VcpuModel, SetupError>> {
        let t = VcpuTemplate::new(profile, setup)?;
        Some(t.map(|t| VcpuModel::from_template(&Arc::new(t), setup.vcpus)))
    }

    /// `vcpus` fresh vCPUs (at least one) made from `t`.
    pub fn from_template(t: &Arc<VcpuTemplate>, vcpus: usize) -> VcpuModel {
        let values = (0..vcpus.max(1))
            .map(|i| {
                let mut regs = t.base.clone();
                if let Some(p) = t.mpidr {
                    // reset_mpidr(): bit 31 (RES1) and the affinity of the vCPU index.
                    regs[p] = Reg::Word(1 << 31 | Mpidr::for_vcpu_index(i).0);
                }
                regs
            })
            .collect();
        VcpuModel {
            values,
            vm_wide: vec![None; t.base.len()],
            has_run: false,
            counters: [None, None],
            counter_offset_set: false,
            t: Arc::clone(t),
        }
    }

    /// KVM_GET_REG_LIST: every id in KVM's order (the firmware ids included, as the host
    /// lists them).
    pub fn reg_list(&self) -> Vec<u64> {
        self.t.set.ids().collect()
    }

    /// The first KVM_RUN of `vcpu` happened: KVM's own changes at the first run, and the
    /// VM-wide registers become immutable.
    pub fn ran(&mut self, vcpu: usize) {
        if !self.has_run {
            for (id, after) in self.t.set.first_run.0.clone() {
                let Some(pos) = self.listed(id) else {
                    continue;
                };
                let reset = self.t.set.registers.0[pos].1.clone();
                let size = OneRegId(id).size_bytes();
                if let Some(regs) = self.values.get_mut(vcpu) {
                    let fresh = Reg::from_bytes(&reset.fit(size).unwrap_or_default());
                    if fresh == regs[pos] {
                        regs[pos] = Reg::from_bytes(&after.fit(size).unwrap_or_default());
                    }
                }
            }
        }
        // A VM-wide register written before the run: the bits the first run changes on a
        // fresh VM change in the written value too.
        for (id, _) in &self.t.set.first_run.0 {
            if let Some(pos) = self.listed(*id) {
                if let Some(v) = self.vm_wide[pos] {
                    self.vm_wide[pos] = Some(after_first_run(&self.t.set, *id, v));
                }
            }
        }
        self.has_run = true;
        // kvm_timer_vcpu_put() → timer_save_state() at the end of every KVM_RUN: the virtual
        // timer's control register is read back from the CPU, with ISTATUS as the CPU
        // computed it (measured: set when the timer is enabled and the counter has reached
        // the compare value; QEMU clears it for a disabled timer). It stays in the stored
        // value until the next write, which clears it. The physical timer is left alone: it
        // is the CPU's only on VHE hosts, and no scenario measured it after a run.
        let ctl = self.u64_of(vcpu, TIMER_CTL);
        let reached = self.counters[0].unwrap_or(0) >= self.u64_of(vcpu, TIMER_CVAL);
        let istatus = if ctl & 1 != 0 && reached { 4 } else { 0 };
        self.store(vcpu, TIMER_CTL, &((ctl & !4) | istatus).to_le_bytes());
    }

    /// KVM_ARM_SET_COUNTER_OFFSET with `reserved` zero (kvm_vm_ioctl_set_counter_offset(),
    /// arch/arm64/kvm/arch_timer.c, 6.4): the one offset of both the virtual and the
    /// physical counter, and from then on TIMER_CNT/PTIMER_CNT writes succeed and are
    /// ignored. EBUSY comes only from a vCPU ioctl running at the same time, which a single
    /// VMM thread never meets; kernels without the ioctl answer EINVAL (kvm_arch_vm_ioctl()).
    pub fn set_counter_offset(&mut self, offset: u64) -> Result<(), Errno> {
        if !self.t.counter_offset_cap {
            return Err(Errno::EINVAL);
        }
        let counter = PHYS_COUNTER.wrapping_sub(offset);
        self.counters = [Some(counter); 2];
        self.counter_offset_set = true;
        Ok(())
    }

    fn listed(&self, id: u64) -> Option<usize> {
        self.t.index.get(id)
    }

    fn value(&self, vcpu: usize, id: u64) -> Option<&Reg> {
        let pos = self.listed(id)?;
        self.values.get(vcpu)?.get(pos)
    }

    fn u64_of(&self, vcpu: usize, id: u64) -> u64 {
        match self.listed(id) {
            Some(pos) => self.word_at(vcpu, pos),
            None => 0,
        }
    }

    /// The low 64 bits of the register at list position `pos`: the VM's value if it has
    /// one, else `vcpu`'s.
    fn word_at(&self, vcpu: usize, pos: usize) -> u64 {
        if let Some(v) = self.vm_wide[pos] {
            return v;
        }
        self.values.get(vcpu).map_or(0, |r| r[pos].word())
    }

    /// The PMU counters the VM has (`kvm_pmu_accessible_counter_mask()`): bits 0..N of
    /// PMCR_EL0.N and bit 31, the cycle counter.
    fn pmu_mask(&self, vcpu: usize) -> u64 {
        let n = self.u64_of(vcpu, sysreg_id(3, 3, 9, 12, 0)) >> 11 & 0x1f;
        (1u64 << 31) | ((1u64 << n) - 1)
    }

    /// The host's value of `id` (its reset value on a fresh vCPU).
    /// The host's value of a listed register (its value on a fresh vCPU, low 64 bits).
    pub fn host_value(&self, id: u64) -> Option<u64> {
        self.listed(id).map(|p| self.t.slots[p].limit)
    }

    fn host_u64(&self, id: u64) -> u64 {
        self.listed(id).map_or(0, |p| self.t.slots[p].limit)
    }

    fn store(&mut self, vcpu: usize, id: u64, data: &[u8]) {
        if let Some(pos) = self.listed(id) {
            if let Some(regs) = self.values.get_mut(vcpu) {
                regs[pos].write(data);
            }
        }
    }

    /// KVM_GET_ONE_REG of a non-firmware id on `vcpu`: the buffer, or KVM's errno.
    /// [`rules::Kind::Firmware`] ids are the caller's.
    pub fn get(&self, vcpu: usize, id: u64) -> Result<Vec<u8>, Errno> {
        let mut buf = vec![0; OneRegId(id).size_bytes()];
        self.get_into(vcpu, id, &mut buf)?;
        Ok(buf)
    }

    /// [`VcpuModel::get`] into the caller's buffer, which has the id's size (else EINVAL).
    pub fn get_into(&self, vcpu: usize, id: u64, out: &mut [u8]) -> Result<(), Errno> {
        if out.len() != OneRegId(id).size_bytes() {
            return Err(Errno::EINVAL);
        }
        let fill = |out: &mut [u8], v: Option<&Reg>| match v {
            Some(r) => r.read(out),
            None => out.fill(0),
        };
        let word = |out: &mut [u8], v: u64| Reg::Word(v).read(out);
        if let Some(pos) = self.listed(id) {
            if self.t.slots[pos].plain_get {
                // A listed register that GET reads as stored: the VM's value or the vCPU's.
                match self.vm_wide[pos] {
                    Some(v) => word(out, v),
                    None => fill(out, self.values.get(vcpu).map(|r| &r[pos])),
                }
                return Ok(());
            }
        }
        // What is left: ids the host does not list (KVM's errno), and the registers whose GET
        // computes its answer.
        match rules::kind(id, self.t.release) {
            Kind::NotArm64 => Err(Errno::EINVAL),
            Kind::Firmware => Err(Errno::ENOENT),
            Kind::Core => {
                rules::core_check(id, self.t.features.has(CpuFeature::Sve))?;
                // Every core id that passes the checks is listed, and was read above.
                fill(out, self.value(vcpu, id));
                Ok(())
            }
            Kind::Sve => {
                rules::sve_reg(id, self.t.features.has(CpuFeature::Sve), self.t.vq)?;
                // Every SVE id that passes the checks is listed, and was read above.
                fill(out, self.value(vcpu, id));
                Ok(())
            }
            Kind::Timer => {
                word(out, self.timer_get(vcpu, id));
                Ok(())
            }
            Kind::Demux | Kind::SysReg => {
                if let Some(sys) = rules::invariant_alias(id, self.t.release) {
                    word(out, self.host_u64(sys));
                    return Ok(());
                }
                let pos = self.listed(id).ok_or(Errno::ENOENT)?;
                // A listed system register not read as stored: a PMU set/clear pair from
                // 6.7 (`Slot::plain_get`). get_pmreg(): the bits of the counters the VM has
                // (PMCR_EL0.N) and the cycle counter.
                let holder = match self.t.slots[pos].sys {
                    Some(SysRule::PmuSetClr { holder, .. }) => holder,
                    _ => id,
                };
                let held = self
                    .value(vcpu, holder)
                    .or(self.values.get(vcpu).map(|r| &r[pos]))
                    .map_or(0, Reg::word);
                word(out, held & self.pmu_mask(vcpu));
                Ok(())
            }
        }
    }

    fn timer_get(&self, vcpu: usize, id: u64) -> u64 {
        let stored = self.u64_of(vcpu, id);
        let (cval, counter) = match id {
            TIMER_CTL => (self.u64_of(vcpu, TIMER_CVAL), self.counters[0].unwrap_or(0)),
            PTIMER_CTL => (
                self.u64_of(vcpu, PTIMER_CVAL),
                self.counters[1].unwrap_or(PHYS_COUNTER),
            ),
            _ => return stored,
        };
        // read_timer_ctl(): ISTATUS (bit 2) is added when the compare value has been
        // reached, to what is stored (a run may have stored it, see `ran`); 7.2 reports the
        // stored value alone (the timer registers moved into the sysreg table; measured:
        // 6.12 adds ISTATUS, 7.2 does not; the 7.0 boundary is inferred).
        if self.t.release.at_least(7, 0) {
            return stored;
        }
        stored | if counter >= cval { 4 } else { 0 }
    }
}

#[cfg(test)]
mod tests;

//! The firmware engine: one [`Firmware`] per VM, driven by the VMM.
//!
//! The engine answers exactly as Linux KVM's in-kernel firmware does on the host its
//! [`Profile`] describes. It never calls out: the VMM feeds it events and acts on what it
//! returns.
//!
//! # Driving it
//!
//! Methods fall into four groups:
//!
//! - **Setup**, in KVM's order: [`Firmware::new`] (KVM_CREATE_VM),
//!   [`Firmware::enable_system_suspend`] (KVM_ENABLE_CAP, before vCPUs exist),
//!   [`Firmware::add_vcpu`] (KVM_CREATE_VCPU), [`Firmware::init_vcpu`] (KVM_ARM_VCPU_INIT).
//! - **Guest calls**: [`Firmware::vcpu_run`] when a vCPU enters KVM_RUN (the first one makes
//!   the VM "has run", which locks the bitmaps and the SMCCC filter), then
//!   [`Firmware::handle_call`] for each HVC/SMC the vCPU makes. The returned [`CallOutcome`]
//!   carries x0..x3 as the guest must see them and the [`Action`] the VMM must take.
//! - **VMM requests**: [`Firmware::get_one_reg`], [`Firmware::set_one_reg`],
//!   [`Firmware::reg_list`], [`Firmware::mp_state`], [`Firmware::set_mp_state`],
//!   [`Firmware::set_smccc_filter`], [`Firmware::set_pv_time_ipa`]. Each answers with KVM's
//!   errno where KVM would fail.
//! - **Getters** for the state: [`Firmware::psci_version`], [`Firmware::has_run`], ...
//!
//! A VMM with one thread per vCPU hands the set-up engine to [`shared::SharedFirmware`]:
//! one handle per vCPU thread, the same answers, calls of different vCPUs in parallel.
//!
//! # Guarantees
//!
//! - Deterministic: the same inputs give the same outputs; randomness (TRNG) and time (PTP)
//!   come from the VMM through [`Services`].
//! - A guest's registers are never an error: any x0..x17 gets KVM's answer. Errors
//!   ([`VcpuError`]) come only from VMM misuse (an index that names no vCPU, a call on a vCPU
//!   that cannot run).

mod call;
mod dispatch;
mod filter;
mod regs;
pub mod shared;
mod vcpu;

pub use call::{
    Action, Call, CallOutcome, Conduit, Hypercall, KVM_HYPERCALL_EXIT_SMC,
    KVM_SYSTEM_EVENT_RESET_FLAG_PSCI_RESET2, KVM_SYSTEM_EVENT_SHUTDOWN_FLAG_PSCI_OFF2, PtpCounter,
    PtpTime, Services, SystemEvent, SystemEventType, VcpuStart,
};
pub use filter::{FilterAction, SmcccFilter};
pub(crate) use vcpu::affinity_range;
use vcpu::{Caller, PowerStates, TurnOn, Vcpu, vcpu_index_of};
pub use vcpu::{
    KVM_MP_STATE_NAMES, KVM_MP_STATE_RUNNABLE, KVM_MP_STATE_STOPPED, KVM_MP_STATE_SUSPENDED,
    MpState, VcpuError, VcpuFeatures, mp_state_from_name, mp_state_name,
};

use crate::abi::{Errno, Mpidr, PsciVersion};
use crate::profile::Profile;
use crate::release::Rules;

/// The VM-wide firmware state (the parts of KVM's `struct kvm_arch` the firmware uses).
/// Guest calls only read it; the VMM's requests change it.
#[derive(Clone, Debug)]
struct Vm {
    profile: Profile,
    rules: Rules,
    /// KVM's `kvm->arch.psci_version`; `None` until userspace writes it.
    psci_version: Option<PsciVersion>,
    /// The profile's PSCI_VERSION default (the kernel's latest), read once: the profile
    /// never changes, and every PSCI call of a VM that left the version unset needs it.
    psci_default: PsciVersion,
    /// STD, STD_HYP, VENDOR_HYP, VENDOR_HYP_2 bitmaps.
    bitmaps: [u64; 4],
    has_run: bool,
    system_suspend: bool,
    filter: SmcccFilter,
    /// The VM's ID_AA64PFR1_EL1 shows no SSBS where the host has it (the VMM wrote it;
    /// [`crate::register::vm_level`]).
    ssbs_hidden: bool,
    /// What DISCOVER_IMPL_CPUS lists (empty: the calls are not served, as in KVM).
    implementations: Vec<Implementation>,
}

/// One CPU implementation, as a guest's errata code identifies it: the answer of
/// DISCOVER_IMPL_CPUS for one index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Implementation {
    /// MIDR_EL1.
    pub midr: u64,
    /// REVIDR_EL1.
    pub revidr: u64,
    /// AIDR_EL1.
    pub aidr: u64,
}

/// The most implementations [`Firmware::set_implementations`] takes (a pool of this many
/// distinct CPUs is far beyond any fleet; the bound keeps the VM's state small).
pub const MAX_IMPLEMENTATIONS: usize = 64;

impl Vm {
    fn new(profile: &Profile) -> Vm {
        let mut bitmaps = [0u64; 4];
        for r in profile.registers() {
            if let Some(i) = r.reg.bitmap_index() {
                bitmaps[i] = r.default;
            }
        }
        Vm {
            rules: profile.rules(),
            profile: profile.clone(),
            psci_version: None,
            psci_default: profile.psci_default(),
            bitmaps,
            has_run: false,
            system_suspend: false,
            filter: SmcccFilter::default(),
            ssbs_hidden: false,
            implementations: Vec::new(),
        }
    }

    fn psci_version_for(&self, features: VcpuFeatures) -> PsciVersion {
        if features.psci_0_2 {
            self.psci_version.unwrap_or(self.psci_default)
        } else {
            PsciVersion::V0_1
        }
    }

    fn set_smccc_filter(
        &mut self,
        base: u32,
        nr_functions: u32,
        action: u8,
        pad: [u8; 15],
    ) -> Result<(), Errno> {
        if !self.profile.capabilities().smccc_filter {
            // Before 6.4 the VM ioctl does not know KVM_SET_DEVICE_ATTR.
            return Err(Errno::EINVAL);
        }
        self.filter
            .insert(base, nr_functions, action, pad, self.has_run)
    }
}

/// The firmware of one VM. See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct Firmware {
    vm: Vm,
    vcpus: Vec<Vcpu>,
}

/// KVM's `KVM_MAX_VCPUS` on arm64.
pub const KVM_MAX_VCPUS: usize = 512;

impl Firmware {
    /// A new VM on the host `profile` describes (KVM_CREATE_VM): no vCPUs, every bitmap at its
    /// default, PSCI version unset.
    pub fn new(profile: &Profile) -> Firmware {
        Firmware {
            vm: Vm::new(profile),
            vcpus: Vec::new(),
        }
    }

    /// The host profile.
    pub fn profile(&self) -> &Profile {
        &self.vm.profile
    }

    /// KVM_ENABLE_CAP(KVM_CAP_ARM_SYSTEM_SUSPEND) on the VM: EINVAL where the host lacks it.
    pub fn enable_system_suspend(&mut self) -> Result<(), Errno> {
        if !self.vm.profile.capabilities().system_suspend {
            return Err(Errno::EINVAL);
        }
        self.vm.system_suspend = true;
        Ok(())
    }

    /// KVM_CREATE_VCPU: a new, uninitialised vCPU; returns its index. KVM gives vCPU `i` the
    /// MPIDR affinity of [`Mpidr::for_vcpu_index`]. EINVAL past [`KVM_MAX_VCPUS`].
    pub fn add_vcpu(&mut self) -> Result<usize, Errno> {
        let index = self.vcpus.len();
        if index >= KVM_MAX_VCPUS {
            return Err(Errno::EINVAL);
        }
        self.vcpus.push(Vcpu::new());
        Ok(index)
    }

    /// KVM_ARM_VCPU_INIT with `features`: STOPPED with POWER_OFF, else RUNNABLE. EINVAL if the
    /// host lacks PSCI_0_2 and it is asked for.
    pub fn init_vcpu(&mut self, vcpu: usize, features: VcpuFeatures) -> Result<(), Errno> {
        if features.psci_0_2 && !self.vm.profile.capabilities().psci_0_2 {
            return Err(Errno::EINVAL);
        }
        let v = self.vcpus.get_mut(vcpu).ok_or(Errno::EINVAL)?;
        v.features = Some(features);
        v.mp_state = if features.power_off {
            MpState::Stopped
        } else {
            MpState::Runnable
        };
        Ok(())
    }

    /// The number of vCPUs.
    pub fn vcpu_count(&self) -> usize {
        self.vcpus.len()
    }

    /// A vCPU's MPIDR affinity.
    pub fn mpidr(&self, vcpu: usize) -> Result<Mpidr, VcpuError> {
        self.vcpu(vcpu)?;
        Ok(Mpidr::for_vcpu_index(vcpu))
    }

    /// A vCPU enters KVM_RUN. The first run of any vCPU makes the VM "has run" (Linux
    /// `KVM_ARCH_FLAG_HAS_RAN_ONCE`), even if that vCPU is STOPPED and never enters the guest.
    pub fn vcpu_run(&mut self, vcpu: usize) -> Result<(), VcpuError> {
        self.initialised(vcpu)?;
        self.vm.has_run = true;
        Ok(())
    }

    /// Whether any vCPU of the VM has run.
    pub fn has_run(&self) -> bool {
        self.vm.has_run
    }

    /// The CPU implementations this firmware reports through DISCOVER_IMPL_VER and
    /// DISCOVER_IMPL_CPUS (Linux 6.15+'s errata hypercalls), before the VM runs (EBUSY
    /// after). KVM does not serve these calls; a VMM that serves the guest's calls in
    /// userspace with this engine (armfw's firmware behind the SMCCC filter) does, so that a
    /// guest applies the errata workarounds of every CPU it may run on. An empty list (the
    /// default) is KVM's own answer: NOT_SUPPORTED. Either way the calls are gated by
    /// VENDOR_HYP_BMAP_2 (bit 0 VER, bit 1 CPUS), which the VMM sets. At most
    /// [`MAX_IMPLEMENTATIONS`] (EINVAL beyond).
    pub fn set_implementations(&mut self, list: &[Implementation]) -> Result<(), Errno> {
        if self.vm.has_run {
            return Err(Errno::EBUSY);
        }
        if list.len() > MAX_IMPLEMENTATIONS {
            return Err(Errno::EINVAL);
        }
        self.vm.implementations = list.to_vec();
        Ok(())
    }

    /// The implementations set with [`Firmware::set_implementations`].
    pub fn implementations(&self) -> &[Implementation] {
        &self.vm.implementations
    }

    /// KVM_GET_MP_STATE.
    pub fn mp_state(&self, vcpu: usize) -> Result<MpState, VcpuError> {
        Ok(self.vcpu(vcpu)?.mp_state)
    }

    /// KVM_SET_MP_STATE with a raw `KVM_MP_STATE_*` value: RUNNABLE, STOPPED and SUSPENDED are
    /// accepted, anything else is EINVAL.
    pub fn set_mp_state(&mut self, vcpu: usize, state: u32) -> Result<(), Errno> {
        self.vcpus
            .get_mut(vcpu)
            .ok_or(Errno::EINVAL)?
            .set_mp_state(state)
    }

    /// The PSCI version `vcpu` sees (Linux `kvm_psci_version()`): the VM's stored version or
    /// the kernel's latest for a PSCI_0_2 vCPU, 0.1 otherwise.
    pub fn psci_version(&self, vcpu: usize) -> Result<PsciVersion, VcpuError> {
        let f = self.initialised(vcpu)?;
        Ok(self.vm.psci_version_for(f))
    }

    /// Whether KVM_CAP_ARM_SYSTEM_SUSPEND is enabled on the VM.
    pub fn system_suspend_enabled(&self) -> bool {
        self.vm.system_suspend
    }

    /// KVM_ARM_VCPU_PVTIME_CTRL / KVM_ARM_VCPU_PVTIME_IPA: set the vCPU's stolen-time
    /// structure. EINVAL unless 64-byte aligned, EEXIST if already set. (KVM also refuses an
    /// IPA outside every memslot with EINVAL; the VMM checks that.)
    pub fn set_pv_time_ipa(&mut self, vcpu: usize, ipa: u64) -> Result<(), Errno> {
        self.vcpus
            .get_mut(vcpu)
            .ok_or(Errno::EINVAL)?
            .set_pv_time_ipa(ipa)
    }

    /// The SMCCC filter as configured so far.
    pub fn smccc_filter(&self) -> &SmcccFilter {
        &self.vm.filter
    }

    /// KVM_SET_DEVICE_ATTR(KVM_ARM_VM_SMCCC_CTRL, KVM_ARM_VM_SMCCC_FILTER): add one range.
    /// `pad` is the 15 pad bytes of `struct kvm_smccc_filter`.
    pub fn set_smccc_filter(
        &mut self,
        base: u32,
        nr_functions: u32,
        action: u8,
        pad: [u8; 15],
    ) -> Result<(), Errno> {
        self.vm.set_smccc_filter(base, nr_functions, action, pad)
    }

    fn vcpu(&self, vcpu: usize) -> Result<&Vcpu, VcpuError> {
        self.vcpus.get(vcpu).ok_or(VcpuError::NoSuchVcpu(vcpu))
    }

    fn initialised(&self, vcpu: usize) -> Result<VcpuFeatures, VcpuError> {
        self.vcpu(vcpu)?
            .features
            .ok_or(VcpuError::NotInitialised(vcpu))
    }
}

// ---------------------------------------------------------------------------------------------
// Read access for `crate::snapshot` (saving a VM's firmware state). Kept apart from the engine
// above: these read private per-vCPU state that KVM shows the VMM through other ioctls.

impl Firmware {
    /// The features a vCPU was initialised with (`None`: not initialised or no such vCPU).
    pub(crate) fn vcpu_features(&self, vcpu: usize) -> Option<VcpuFeatures> {
        self.vcpus.get(vcpu).and_then(|v| v.features)
    }

    /// The vCPU's stolen-time IPA, if the VMM set one.
    pub(crate) fn pv_time_ipa(&self, vcpu: usize) -> Option<u64> {
        self.vcpus.get(vcpu).and_then(|v| v.steal_ipa)
    }

    /// The VM's ID_AA64PFR1_EL1 now shows (or again shows) SSBS as the host does, or not:
    /// the whole-vCPU model says so when the VMM writes the register, since KVM's
    /// SMCCC_ARCH_WORKAROUND_2 level follows it ([`crate::register::vm_level`]).
    pub(crate) fn set_ssbs_hidden(&mut self, hidden: bool) {
        self.vm.ssbs_hidden = hidden;
    }
}

/// The architecture ranges KVM inserts as HANDLE on the first filter write.
pub(crate) const fn filter_reserved_ranges() -> [(u32, u32); 2] {
    filter::RESERVED_RANGES
}

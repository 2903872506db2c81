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

mod dispatch;
mod filter;
mod regs;
pub mod shared;

pub use filter::{FilterAction, SmcccFilter};

use crate::abi::{Errno, Mpidr, PsciVersion};
use crate::profile::Profile;
use crate::release::Rules;

/// The conduit a guest used for a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Conduit {
    /// `hvc #imm`.
    Hvc,
    /// `smc #imm`.
    Smc,
}

/// One guest call as the VMM sees it at the trap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    /// HVC or SMC.
    pub conduit: Conduit,
    /// The instruction's immediate (SMC with a non-zero immediate is not an SMCCC call).
    pub imm: u16,
    /// x0..x17 at the trap.
    pub x: [u64; 18],
}

impl Call {
    /// A call with x0..x3 = `x` and every other register 0, immediate 0.
    pub fn new(conduit: Conduit, x: [u64; 4]) -> Call {
        let mut regs = [0u64; 18];
        regs[..4].copy_from_slice(&x);
        Call {
            conduit,
            imm: 0,
            x: regs,
        }
    }
}

/// A vCPU's multiprocessing state as KVM_GET_MP_STATE reports it on arm64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MpState {
    /// `KVM_MP_STATE_RUNNABLE` (0).
    Runnable,
    /// `KVM_MP_STATE_STOPPED` (5): powered off.
    Stopped,
    /// `KVM_MP_STATE_SUSPENDED` (10): suspended until a wakeup event.
    Suspended,
}

impl MpState {
    /// The KVM value.
    pub const fn kvm_value(self) -> u32 {
        match self {
            MpState::Runnable => KVM_MP_STATE_RUNNABLE,
            MpState::Stopped => KVM_MP_STATE_STOPPED,
            MpState::Suspended => KVM_MP_STATE_SUSPENDED,
        }
    }

    /// The state with this KVM value, if arm64 KVM uses it.
    pub const fn from_kvm_value(v: u32) -> Option<MpState> {
        match v {
            KVM_MP_STATE_RUNNABLE => Some(MpState::Runnable),
            KVM_MP_STATE_STOPPED => Some(MpState::Stopped),
            KVM_MP_STATE_SUSPENDED => Some(MpState::Suspended),
            _ => None,
        }
    }
}

/// `KVM_MP_STATE_RUNNABLE`.
pub const KVM_MP_STATE_RUNNABLE: u32 = 0;
/// `KVM_MP_STATE_STOPPED`.
pub const KVM_MP_STATE_STOPPED: u32 = 5;
/// `KVM_MP_STATE_SUSPENDED`.
pub const KVM_MP_STATE_SUSPENDED: u32 = 10;

/// Every `KVM_MP_STATE_*` name (without the prefix) and value, as in Linux
/// `include/uapi/linux/kvm.h`.
pub const KVM_MP_STATE_NAMES: [(&str, u32); 11] = [
    ("RUNNABLE", 0),
    ("UNINITIALIZED", 1),
    ("INIT_RECEIVED", 2),
    ("HALTED", 3),
    ("SIPI_RECEIVED", 4),
    ("STOPPED", 5),
    ("CHECK_STOP", 6),
    ("OPERATING", 7),
    ("LOAD", 8),
    ("AP_RESET_HOLD", 9),
    ("SUSPENDED", 10),
];

/// The vCPU features the firmware depends on (KVM_ARM_VCPU_INIT feature bits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VcpuFeatures {
    /// `KVM_ARM_VCPU_PSCI_0_2`: SMCCC-style PSCI 0.2 or later; without it, KVM's PSCI 0.1.
    pub psci_0_2: bool,
    /// `KVM_ARM_VCPU_POWER_OFF`: the vCPU starts STOPPED.
    pub power_off: bool,
}

/// A system event KVM reports with `KVM_EXIT_SYSTEM_EVENT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemEvent {
    /// The event type.
    pub kind: SystemEventType,
    /// `data[0..ndata]`.
    pub data: Vec<u64>,
}

/// `KVM_SYSTEM_EVENT_*` types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SystemEventType {
    /// 1: power off (SYSTEM_OFF, SYSTEM_OFF2).
    Shutdown,
    /// 2: reset (SYSTEM_RESET, SYSTEM_RESET2).
    Reset,
    /// 3: crash.
    Crash,
    /// 4: a SUSPENDED vCPU woke up.
    Wakeup,
    /// 5: SYSTEM_SUSPEND.
    Suspend,
}

impl SystemEventType {
    /// The KVM value.
    pub const fn kvm_value(self) -> u32 {
        match self {
            SystemEventType::Shutdown => 1,
            SystemEventType::Reset => 2,
            SystemEventType::Crash => 3,
            SystemEventType::Wakeup => 4,
            SystemEventType::Suspend => 5,
        }
    }

    /// The type with this KVM value.
    pub const fn from_kvm_value(v: u32) -> Option<SystemEventType> {
        match v {
            1 => Some(SystemEventType::Shutdown),
            2 => Some(SystemEventType::Reset),
            3 => Some(SystemEventType::Crash),
            4 => Some(SystemEventType::Wakeup),
            5 => Some(SystemEventType::Suspend),
            _ => None,
        }
    }

    /// The name without the `KVM_SYSTEM_EVENT_` prefix.
    pub const fn name(self) -> &'static str {
        match self {
            SystemEventType::Shutdown => "SHUTDOWN",
            SystemEventType::Reset => "RESET",
            SystemEventType::Crash => "CRASH",
            SystemEventType::Wakeup => "WAKEUP",
            SystemEventType::Suspend => "SUSPEND",
        }
    }
}

/// `KVM_SYSTEM_EVENT_RESET_FLAG_PSCI_RESET2`: `data[0]` of a RESET from SYSTEM_RESET2.
pub const KVM_SYSTEM_EVENT_RESET_FLAG_PSCI_RESET2: u64 = 1;
/// `KVM_SYSTEM_EVENT_SHUTDOWN_FLAG_PSCI_OFF2`: `data[0]` of a SHUTDOWN from SYSTEM_OFF2.
pub const KVM_SYSTEM_EVENT_SHUTDOWN_FLAG_PSCI_OFF2: u64 = 1;

/// A call forwarded to the VMM (`KVM_EXIT_HYPERCALL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hypercall {
    /// The function id (w0).
    pub nr: u32,
    /// `KVM_HYPERCALL_EXIT_SMC` (bit 0) for the SMC conduit.
    pub flags: u64,
}

/// `KVM_HYPERCALL_EXIT_SMC`.
pub const KVM_HYPERCALL_EXIT_SMC: u64 = 1;

/// A vCPU that CPU_ON starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuStart {
    /// The target vCPU's index.
    pub vcpu: usize,
    /// Its entry point (PC after the reset).
    pub entry: u64,
    /// Its context id (x0 after the reset).
    pub context_id: u64,
}

/// What the VMM must do after a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write x0..x3 and resume the caller.
    Resume,
    /// Write x0..x3 and resume the caller; reset `vcpu` to start at the entry point with the
    /// context id in x0 (KVM applies the reset before the target runs or its registers are
    /// accessed). The engine has already marked the target RUNNABLE.
    StartVcpu(VcpuStart),
    /// Write x0..x3 and resume the caller; zero the 64-byte stolen-time structure at `ipa`
    /// first (PV_TIME_ST).
    InitStolenTime {
        /// The structure's guest physical address.
        ipa: u64,
    },
    /// CPU_OFF: the caller is now STOPPED; write x0..x3 and do not run it until a CPU_ON
    /// starts it.
    CpuOff,
    /// CPU_SUSPEND: KVM treats it as WFI. Block the caller until a wakeup event, then write
    /// x0..x3 and resume it.
    WaitForInterrupt,
    /// Exit to userspace with a system event; x0..x3 as they stand at the exit.
    SystemEvent(SystemEvent),
    /// The SMCCC filter forwards the call to userspace (`KVM_EXIT_HYPERCALL`); the registers
    /// are unchanged.
    Forward(Hypercall),
}

/// The answer to one guest call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallOutcome {
    /// x0..x3 as the guest (or the VMM, at an exit) sees them after the call.
    pub x: [u64; 4],
    /// What the VMM must do.
    pub action: Action,
}

/// What the firmware needs from its environment: randomness and time.
pub trait Services {
    /// 64 random bits for TRNG_RND.
    fn random_u64(&mut self) -> u64;
    /// The host's realtime in nanoseconds and the counter value for PTP, or `None` if the
    /// host's clocksource is not the architected counter (KVM then answers NOT_SUPPORTED).
    fn ptp_time(&mut self, counter: PtpCounter) -> Option<PtpTime>;
}

/// The counter a PTP call asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtpCounter {
    /// The virtual counter (x1 = 0).
    Virtual,
    /// The physical counter (x1 = 1).
    Physical,
}

/// A PTP reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PtpTime {
    /// Host realtime in nanoseconds.
    pub realtime_ns: u64,
    /// The counter value with the VM's offset applied.
    pub counter: u64,
}

/// Misuse of the engine by the VMM (never caused by guest registers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VcpuError {
    /// No vCPU has this index.
    #[error("vCPU {0} does not exist")]
    NoSuchVcpu(usize),
    /// The vCPU has not been initialised (KVM answers ENOEXEC).
    #[error("vCPU {0} is not initialised")]
    NotInitialised(usize),
    /// The vCPU is not RUNNABLE, so it cannot be making a call.
    #[error("vCPU {0} is not runnable")]
    NotRunnable(usize),
}

/// One vCPU's firmware state (the parts of KVM's `struct kvm_vcpu` the firmware uses).
#[derive(Clone, Copy, Debug)]
struct Vcpu {
    features: Option<VcpuFeatures>,
    mp_state: MpState,
    mpidr: Mpidr,
    steal_ipa: Option<u64>,
}

impl Vcpu {
    fn new(index: usize) -> Vcpu {
        Vcpu {
            features: None,
            mp_state: MpState::Runnable,
            mpidr: Mpidr::for_vcpu_index(index),
            steal_ipa: None,
        }
    }

    /// The checks a guest call makes on its caller: initialised and RUNNABLE.
    fn caller(&self, index: usize) -> Result<Caller, VcpuError> {
        let features = self.features.ok_or(VcpuError::NotInitialised(index))?;
        if self.mp_state != MpState::Runnable {
            return Err(VcpuError::NotRunnable(index));
        }
        Ok(Caller {
            index,
            features,
            steal_ipa: self.steal_ipa,
        })
    }

    /// CPU_ON's transition on the target it names (under KVM's `mp_state_lock` of the
    /// target): an initialised STOPPED vCPU becomes RUNNABLE.
    fn turn_on(&mut self, index: usize) -> TurnOn {
        if self.features.is_none() {
            return TurnOn::NoSuchVcpu;
        }
        if self.mp_state != MpState::Stopped {
            return TurnOn::NotStopped;
        }
        self.mp_state = MpState::Runnable;
        TurnOn::TurnedOn(index)
    }

    /// KVM_ARM_VCPU_PVTIME_IPA's rule: EINVAL unless 64-byte aligned, EEXIST if already set.
    fn set_pv_time_ipa(&mut self, ipa: u64) -> Result<(), Errno> {
        if ipa % 64 != 0 {
            return Err(Errno::EINVAL);
        }
        if self.steal_ipa.is_some() {
            return Err(Errno::EEXIST);
        }
        self.steal_ipa = Some(ipa);
        Ok(())
    }

    /// KVM_SET_MP_STATE's rule: RUNNABLE, STOPPED and SUSPENDED, anything else EINVAL.
    fn set_mp_state(&mut self, state: u32) -> Result<(), Errno> {
        self.mp_state = MpState::from_kvm_value(state).ok_or(Errno::EINVAL)?;
        Ok(())
    }
}

/// What a guest call needs to know about its caller, read when the call starts.
#[derive(Clone, Copy, Debug)]
struct Caller {
    index: usize,
    features: VcpuFeatures,
    steal_ipa: Option<u64>,
}

/// The outcome of CPU_ON's transition on its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TurnOn {
    /// No initialised vCPU has the affinity.
    NoSuchVcpu,
    /// The target is RUNNABLE or SUSPENDED.
    NotStopped,
    /// The target (this index) was STOPPED and is now RUNNABLE.
    TurnedOn(usize),
}

/// The vCPUs' power states as guest calls see and change them. The single-threaded engine
/// implements it on its vCPU list; [`shared`] on per-vCPU locks, with each method's change
/// to one vCPU made under that vCPU's lock, as KVM does under its `mp_state_lock`.
trait PowerStates {
    /// CPU_OFF: `vcpu` becomes STOPPED.
    fn stop(&mut self, vcpu: usize);
    /// CPU_ON: the vCPU with this affinity (valid affinity bits only) goes from STOPPED to
    /// RUNNABLE, checked and changed in one step.
    fn turn_on(&mut self, affinity: u64) -> TurnOn;
    /// AFFINITY_INFO: `None` if no vCPU's MPIDR matches `target` under `mask`, else whether
    /// any of the matching ones is not STOPPED.
    fn any_on(&self, target: u64, mask: u64) -> Option<bool>;
    /// SYSTEM_OFF, SYSTEM_RESET(2), SYSTEM_OFF2: every vCPU becomes STOPPED, as
    /// `kvm_prepare_system_event()` does (one vCPU at a time).
    fn stop_all(&mut self);
}

impl PowerStates for Vec<Vcpu> {
    fn stop(&mut self, vcpu: usize) {
        if let Some(v) = self.get_mut(vcpu) {
            v.mp_state = MpState::Stopped;
        }
    }

    fn turn_on(&mut self, affinity: u64) -> TurnOn {
        match vcpu_index_of(affinity).and_then(|i| Some((i, self.get_mut(i)?))) {
            Some((i, v)) => v.turn_on(i),
            None => TurnOn::NoSuchVcpu,
        }
    }

    fn any_on(&self, target: u64, mask: u64) -> Option<bool> {
        let matching = self.get(affinity_range(target, mask, self.len()))?;
        if matching.is_empty() {
            return None;
        }
        Some(matching.iter().any(|v| v.mp_state != MpState::Stopped))
    }

    fn stop_all(&mut self) {
        for v in self.iter_mut() {
            v.mp_state = MpState::Stopped;
        }
    }
}

/// The indices of the vCPUs (of `n`) whose MPIDR equals `target` under `mask`, an
/// AFFINITY_INFO mask ([`Mpidr::affinity_mask`]). KVM compares every vCPU's MPIDR; since
/// [`Mpidr::for_vcpu_index`] packs the index as Aff0 (4 bits), Aff1 and Aff2 (8 bits each),
/// the matches are one contiguous run of indices, found without a scan.
pub(crate) fn affinity_range(target: u64, mask: u64, n: usize) -> std::ops::Range<usize> {
    let field = |shift: u32| (target >> shift) & 0xff;
    let (aff0, aff1, aff2, aff3) = (field(0), field(8), field(16), field(32));
    // Aff3 is 0 for every vCPU; Aff0 is below 16.
    let (start, len) = if aff3 != 0 {
        (0, 0)
    } else if mask & 0xff != 0 {
        if aff0 >= 16 {
            (0, 0)
        } else {
            (aff0 | aff1 << 4 | aff2 << 12, 1)
        }
    } else if mask & 0xff00 != 0 {
        (aff1 << 4 | aff2 << 12, 16)
    } else if mask & 0xff_0000 != 0 {
        (aff2 << 12, 1 << 12)
    } else {
        (0, 1 << 20)
    };
    let start = usize::try_from(start).unwrap_or(usize::MAX).min(n);
    let end = start.saturating_add(len).min(n);
    start..end
}

/// The index of the vCPU whose MPIDR affinity is `affinity`, if any vCPU index up to
/// [`KVM_MAX_VCPUS`] has it ([`Mpidr::for_vcpu_index`] gives each index its own affinity).
fn vcpu_index_of(affinity: u64) -> Option<usize> {
    let aff0 = affinity & 0xff;
    let aff1 = (affinity >> 8) & 0xff;
    let aff2 = (affinity >> 16) & 0xff;
    let index = usize::try_from(aff0 | (aff1 << 4) | (aff2 << 12)).ok()?;
    (index < KVM_MAX_VCPUS && Mpidr::for_vcpu_index(index).affinity() == affinity).then_some(index)
}

/// The VM-wide firmware state (the parts of KVM's `struct kvm_arch` the firmware uses).
/// Guest calls only read it; the VMM's requests change it.
#[derive(Clone, Debug)]
struct Vm {
    profile: Profile,
    rules: Rules,
    /// KVM's `kvm->arch.psci_version`; `None` until userspace writes it.
    psci_version: Option<PsciVersion>,
    /// STD, STD_HYP, VENDOR_HYP, VENDOR_HYP_2 bitmaps.
    bitmaps: [u64; 4],
    has_run: bool,
    system_suspend: bool,
    filter: SmcccFilter,
}

impl Vm {
    fn new(profile: &Profile) -> Vm {
        let mut bitmaps = [0u64; 4];
        for r in &profile.registers {
            if let Some(i) = r.reg.bitmap_index() {
                bitmaps[i] = r.default;
            }
        }
        Vm {
            rules: profile.rules(),
            profile: profile.clone(),
            psci_version: None,
            bitmaps,
            has_run: false,
            system_suspend: false,
            filter: SmcccFilter::default(),
        }
    }

    fn psci_version_for(&self, features: VcpuFeatures) -> PsciVersion {
        if features.psci_0_2 {
            self.psci_version
                .unwrap_or_else(|| self.profile.psci_default())
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
        if !self.profile.capabilities.smccc_filter {
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
        if !self.vm.profile.capabilities.system_suspend {
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
        self.vcpus.push(Vcpu::new(index));
        Ok(index)
    }

    /// KVM_ARM_VCPU_INIT with `features`: STOPPED with POWER_OFF, else RUNNABLE. EINVAL if the
    /// host lacks PSCI_0_2 and it is asked for.
    pub fn init_vcpu(&mut self, vcpu: usize, features: VcpuFeatures) -> Result<(), Errno> {
        if features.psci_0_2 && !self.vm.profile.capabilities.psci_0_2 {
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
        Ok(self.vcpu(vcpu)?.mpidr)
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
}

/// The architecture ranges KVM inserts as HANDLE on the first filter write.
pub(crate) const fn filter_reserved_ranges() -> [(u32, u32); 2] {
    filter::RESERVED_RANGES
}

#[cfg(test)]
mod affinity_tests {
    use super::*;

    /// The scan KVM does: every vCPU whose MPIDR matches under the mask.
    fn scan(target: u64, mask: u64, n: usize) -> Vec<usize> {
        (0..n)
            .filter(|&i| Mpidr::for_vcpu_index(i).0 & mask == target)
            .collect()
    }

    #[test]
    fn affinity_range_is_the_scan() {
        let targets = [
            0u64,
            1,
            15,
            16,
            0xff,
            0x100,
            0x10f,
            0x1f0f,
            0x1f00,
            0xff0f,
            0x1_0000,
            0x1_0203,
            0xff_00ff_ffff,
            0x1_0000_0000,
            0x10_0000,
        ];
        for n in [1usize, 2, 16, 17, 100, 256, 512] {
            for level in 0..4 {
                let mask = Mpidr::affinity_mask(level).unwrap();
                for t in targets {
                    let t = t & mask;
                    let got: Vec<usize> = affinity_range(t, mask, n).collect();
                    assert_eq!(got, scan(t, mask, n), "n {n} level {level} target {t:#x}");
                }
            }
        }
    }
}

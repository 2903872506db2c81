//! Per-vCPU firmware state and power states: MP states, the vCPU features, CPU_ON's
//! transition, and the MPIDR arithmetic AFFINITY_INFO and CPU_ON use.

use crate::abi::{Errno, Mpidr};

use super::KVM_MAX_VCPUS;

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

/// The `KVM_MP_STATE_*` name of `state` without its prefix (`"RUNNABLE"`, `"STOPPED"`, ...),
/// from [`KVM_MP_STATE_NAMES`].
pub fn mp_state_name(state: u32) -> Option<&'static str> {
    KVM_MP_STATE_NAMES
        .iter()
        .find(|(_, v)| *v == state)
        .map(|(n, _)| *n)
}

/// The `KVM_MP_STATE_*` value named `name` (without the prefix): the inverse of
/// [`mp_state_name`].
pub fn mp_state_from_name(name: &str) -> Option<u32> {
    KVM_MP_STATE_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
}

/// The vCPU features the firmware depends on (KVM_ARM_VCPU_INIT feature bits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VcpuFeatures {
    /// `KVM_ARM_VCPU_PSCI_0_2`: SMCCC-style PSCI 0.2 or later; without it, KVM's PSCI 0.1.
    pub psci_0_2: bool,
    /// `KVM_ARM_VCPU_POWER_OFF`: the vCPU starts STOPPED.
    pub power_off: bool,
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

/// One vCPU's firmware state (the parts of KVM's `struct kvm_vcpu` the firmware uses). Its
/// MPIDR is not kept: KVM gives vCPU `i` the affinity [`Mpidr::for_vcpu_index`] of `i`, and
/// a small state lets AFFINITY_INFO scan a cluster in few cache lines.
#[derive(Clone, Copy, Debug)]
pub(super) struct Vcpu {
    pub(super) features: Option<VcpuFeatures>,
    pub(super) mp_state: MpState,
    pub(super) steal_ipa: Option<u64>,
}

impl Vcpu {
    pub(super) fn new() -> Vcpu {
        Vcpu {
            features: None,
            mp_state: MpState::Runnable,
            steal_ipa: None,
        }
    }

    /// The checks a guest call makes on its caller: initialised and RUNNABLE.
    pub(super) fn caller(&self, index: usize) -> Result<Caller, VcpuError> {
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
    pub(super) fn turn_on(&mut self, index: usize) -> TurnOn {
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
    pub(super) fn set_pv_time_ipa(&mut self, ipa: u64) -> Result<(), Errno> {
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
    pub(super) fn set_mp_state(&mut self, state: u32) -> Result<(), Errno> {
        self.mp_state = MpState::from_kvm_value(state).ok_or(Errno::EINVAL)?;
        Ok(())
    }
}

/// What a guest call needs to know about its caller, read when the call starts.
#[derive(Clone, Copy, Debug)]
pub(super) struct Caller {
    pub(super) index: usize,
    pub(super) features: VcpuFeatures,
    pub(super) steal_ipa: Option<u64>,
}

/// The outcome of CPU_ON's transition on its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TurnOn {
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
pub(super) trait PowerStates {
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
        // Every matching vCPU is read (no early exit): a level-1 cluster is 16 vCPUs, and a
        // scan without a branch per vCPU is cheaper than stopping at the first one on.
        Some(
            matching
                .iter()
                .fold(false, |on, v| on | (v.mp_state != MpState::Stopped)),
        )
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
pub(super) fn vcpu_index_of(affinity: u64) -> Option<usize> {
    let aff0 = affinity & 0xff;
    let aff1 = (affinity >> 8) & 0xff;
    let aff2 = (affinity >> 16) & 0xff;
    let index = usize::try_from(aff0 | (aff1 << 4) | (aff2 << 12)).ok()?;
    (index < KVM_MAX_VCPUS && Mpidr::for_vcpu_index(index).affinity() == affinity).then_some(index)
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

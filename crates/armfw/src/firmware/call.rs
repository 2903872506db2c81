//! The guest-call interface: what the VMM hands the engine at a trap ([`Call`]) and what it
//! gets back ([`CallOutcome`], [`Action`]), and what the engine needs from its environment
//! ([`Services`]).

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

/// A system event KVM reports with `KVM_EXIT_SYSTEM_EVENT`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
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

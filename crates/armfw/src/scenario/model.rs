//! The model backend: scenarios answered by [`Firmware`] for a [`Profile`].

use serde_json::{Value, json};

use super::{Backend, CallResult, FirmwareMode, VmSpec};
use crate::abi::{Errno, OneRegId};
use crate::firmware::{
    Action, Call, Conduit, Firmware, MpState, PtpCounter, PtpTime, Services, VcpuFeatures,
};
use crate::profile::Profile;
use crate::vcpu::{VcpuModel, VcpuSetup};

/// Deterministic [`Services`] for the model: TRNG bits from a fixed-seed xorshift generator,
/// PTP from a fixed clock. A scenario that compares random bits or PTP time cannot match a
/// real kernel; the project's scenarios ask only for what is deterministic.
#[derive(Clone, Debug)]
pub struct ModelServices {
    state: u64,
}

impl Default for ModelServices {
    fn default() -> Self {
        ModelServices {
            state: 0x9e37_79b9_7f4a_7c15,
        }
    }
}

impl Services for ModelServices {
    fn random_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    fn ptp_time(&mut self, _counter: PtpCounter) -> Option<PtpTime> {
        Some(PtpTime {
            realtime_ns: 1_700_000_000_000_000_000,
            counter: 0x1000,
        })
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct GuestRegs {
    pc: u64,
    x0: u64,
}

/// Scenarios run on the model of one host.
#[derive(Debug)]
pub struct ModelBackend {
    profile: Profile,
    fw: Option<Firmware>,
    /// The non-firmware registers, where the profile has its whole-vCPU part.
    vcpu: Option<VcpuModel>,
    regs: Vec<GuestRegs>,
    services: ModelServices,
}

impl ModelBackend {
    /// A backend answering as the host `profile` describes.
    pub fn new(profile: &Profile) -> ModelBackend {
        ModelBackend {
            profile: profile.clone(),
            fw: None,
            vcpu: None,
            regs: Vec::new(),
            services: ModelServices::default(),
        }
    }

    fn fw(&mut self) -> Result<&mut Firmware, String> {
        self.fw.as_mut().ok_or_else(|| "no VM".to_string())
    }
}

/// Why a version-1 profile cannot answer for registers outside the firmware classes.
const NO_VCPU_PART: &str =
    "the profile has no whole-vCPU part (profile format 1: re-probe the host with `armfw probe`)";

impl Backend for ModelBackend {
    fn target(&self) -> Value {
        json!({"backend": "model", "profile": self.profile.name(), "kernel": self.profile.kernel(), "cpu": self.profile.cpu()})
    }

    fn create_vm(&mut self, vm: &VmSpec) -> Result<(), String> {
        // "firmware": "armfw" is the real backend's concern; the model is the same firmware.
        let _ = vm.firmware == FirmwareMode::Armfw;
        let mut fw = Firmware::new(&self.profile);
        if vm.system_suspend {
            fw.enable_system_suspend()
                .map_err(|e| format!("KVM_ENABLE_CAP(SYSTEM_SUSPEND): {e}"))?;
        }
        for i in 0..vm.vcpus {
            fw.add_vcpu().map_err(|e| format!("KVM_CREATE_VCPU: {e}"))?;
            let features = VcpuFeatures {
                psci_0_2: vm.psci_0_2,
                power_off: vm.power_off.contains(&i),
            };
            fw.init_vcpu(i, features)
                .map_err(|e| format!("KVM_ARM_VCPU_INIT: {e}"))?;
        }
        let setup = VcpuSetup {
            vcpus: vm.vcpus,
            features: vm.features,
            sve_vls: vm.sve_vls.clone(),
            writable_imp_id_regs: vm.writable_imp_id_regs,
        };
        self.vcpu = match VcpuModel::new(&self.profile, &setup) {
            Some(model) => Some(model?),
            None if setup
                != VcpuSetup {
                    vcpus: vm.vcpus,
                    ..VcpuSetup::default()
                } =>
            {
                return Err(NO_VCPU_PART.into());
            }
            None => None,
        };
        self.regs = vec![GuestRegs::default(); vm.vcpus];
        self.fw = Some(fw);
        Ok(())
    }

    fn reg_list(&mut self, vcpu: usize) -> Result<Result<Vec<u64>, Errno>, String> {
        let fw = self.fw()?.reg_list(vcpu);
        Ok(match (&self.vcpu, fw) {
            (Some(v), Ok(_)) => Ok(v.reg_list()),
            (_, fw) => fw,
        })
    }

    fn get(&mut self, vcpu: usize, id: u64) -> Result<Result<Vec<u8>, Errno>, String> {
        let reg = OneRegId(id);
        if !reg.is_firmware_class() {
            self.fw()?;
            let v = self.vcpu.as_ref().ok_or(NO_VCPU_PART)?;
            return Ok(v.get(vcpu, id));
        }
        Ok(self.fw()?.get_one_reg(vcpu, id).map(|v| {
            let mut buf = vec![0u8; reg.size_bytes()];
            let n = buf.len().min(8);
            buf[..n].copy_from_slice(&v.to_le_bytes()[..n]);
            buf
        }))
    }

    fn set(&mut self, vcpu: usize, id: u64, data: &[u8]) -> Result<Result<(), Errno>, String> {
        let reg = OneRegId(id);
        if !reg.is_firmware_class() {
            self.fw()?;
            let v = self.vcpu.as_mut().ok_or(NO_VCPU_PART)?;
            return Ok(v.set(vcpu, id, data));
        }
        Ok(self.fw()?.set_one_reg(vcpu, id, crate::json::le_u64(data)))
    }

    fn call(&mut self, vcpu: usize, conduit: Conduit, x: [u64; 4]) -> Result<CallResult, String> {
        let fw = self.fw.as_mut().ok_or("no VM")?;
        fw.vcpu_run(vcpu).map_err(|e| e.to_string())?;
        if let Some(v) = self.vcpu.as_mut() {
            v.ran(vcpu);
        }
        let state = fw.mp_state(vcpu).map_err(|e| e.to_string())?;
        // The backend's guest code now holds the PC.
        self.regs[vcpu] = GuestRegs {
            pc: u64::MAX,
            x0: x[0],
        };
        if state != MpState::Runnable {
            // The vCPU never enters the guest: the call's inputs stay in the registers.
            return Ok(CallResult::Blocked {
                mp_state: state.kvm_value(),
                x,
            });
        }
        let out = fw
            .handle_call(vcpu, &Call::new(conduit, x), &mut self.services)
            .map_err(|e| e.to_string())?;
        let after = fw.mp_state(vcpu).map_err(|e| e.to_string())?.kvm_value();
        Ok(match out.action {
            Action::Resume | Action::InitStolenTime { .. } => CallResult::Returned { x: out.x },
            Action::StartVcpu(s) => {
                self.regs[s.vcpu] = GuestRegs {
                    pc: s.entry,
                    x0: s.context_id,
                };
                CallResult::Returned { x: out.x }
            }
            // Nothing wakes the vCPU in a scenario: the watchdog interrupts the wait. After
            // CPU_OFF the vCPU is STOPPED with x0..x3 = 0; after CPU_SUSPEND (a WFI) the
            // interrupted wait has already returned SUCCESS.
            Action::CpuOff | Action::WaitForInterrupt => CallResult::Blocked {
                mp_state: after,
                x: out.x,
            },
            Action::SystemEvent(e) => CallResult::SystemEvent {
                kind: e.kind.kvm_value(),
                data: e.data,
                x: out.x,
            },
            Action::Forward(h) => CallResult::Hypercall {
                nr: h.nr.into(),
                flags: h.flags,
            },
        })
    }

    fn entry(&mut self, vcpu: usize) -> Result<(u64, u64), String> {
        let r = self.regs.get(vcpu).ok_or("no such vCPU")?;
        Ok((r.pc, r.x0))
    }

    fn mp_state(&mut self, vcpu: usize) -> Result<u32, String> {
        Ok(self
            .fw()?
            .mp_state(vcpu)
            .map_err(|e| e.to_string())?
            .kvm_value())
    }

    fn set_mp_state(&mut self, vcpu: usize, state: u32) -> Result<Result<(), Errno>, String> {
        Ok(self.fw()?.set_mp_state(vcpu, state))
    }

    fn smccc_filter(
        &mut self,
        base: u32,
        count: u32,
        action: u8,
    ) -> Result<Result<(), Errno>, String> {
        Ok(self.fw()?.set_smccc_filter(base, count, action, [0; 15]))
    }

    fn counter_offset(&mut self, offset: u64) -> Result<Result<(), Errno>, String> {
        self.fw()?;
        let v = self.vcpu.as_mut().ok_or(NO_VCPU_PART)?;
        Ok(v.set_counter_offset(offset))
    }
}

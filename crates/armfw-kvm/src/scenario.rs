//! Scenarios on real KVM: [`KvmBackend`] implements the scenario contract's
//! [`armfw::scenario::Backend`] on [`TestVm`].

use armfw::abi::{Errno, OneRegId};
use armfw::firmware::{Action, VcpuFeatures};
use armfw::profile::Profile;
use armfw::scenario::{Backend, CallResult, FirmwareMode, VmSpec as ScenarioVm};
use serde_json::{Value, json};

use crate::error::sys;
pub use crate::probe::cpu_from_cmdline;
use crate::serve::{FirmwareServer, HostServices};
use crate::{CallExit, Conduit, Error, TestVm, VmSpec, kernel_release};

/// `e` and its sources, as one line (`a: b: c`): the scenario contract reports harness
/// failures as text.
fn text(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(e) = source {
        s.push_str(": ");
        s.push_str(&e.to_string());
        source = e.source();
    }
    s
}

/// Scenarios run on this host's KVM: with KVM's in-kernel firmware, or, for
/// `"firmware": "armfw"`, with armfw's engine answering the forwarded calls in userspace
/// ([`FirmwareServer`]) on kernels that have the SMCCC filter.
#[derive(Debug)]
pub struct KvmBackend {
    vm: Option<TestVm>,
    kernel: String,
    cpu: Option<String>,
    firmware: FirmwareMode,
    /// The userspace firmware of the current VM, when it serves.
    server: Option<FirmwareServer>,
    /// The profile the userspace firmware answers as: this host's, probed on the first
    /// `"firmware": "armfw"` scenario, unless given.
    profile: Option<Profile>,
    /// Why `"firmware": "armfw"` runs on the in-kernel firmware here, if it does.
    no_server: Option<String>,
    /// Calls the userspace firmware answered in the current VM.
    served: usize,
}

impl KvmBackend {
    /// A backend on /dev/kvm.
    pub fn new() -> Result<KvmBackend, Error> {
        let kernel = kernel_release().map_err(sys("uname"))?;
        Ok(KvmBackend {
            vm: None,
            kernel,
            cpu: cpu_from_cmdline(),
            firmware: FirmwareMode::Kernel,
            server: None,
            profile: None,
            no_server: None,
            served: 0,
        })
    }

    /// A backend whose userspace firmware answers as `profile` (by default it probes this
    /// host, so that the guest sees no difference).
    pub fn with_profile(profile: Profile) -> Result<KvmBackend, Error> {
        let mut b = KvmBackend::new()?;
        b.profile = Some(profile);
        Ok(b)
    }

    fn vm(&mut self) -> Result<&mut TestVm, String> {
        self.vm.as_mut().ok_or_else(|| "no VM".to_string())
    }

    /// Sets up armfw's userspace firmware for the new VM, or notes why it cannot serve.
    fn serve(&mut self, vm: &ScenarioVm) -> Result<(), String> {
        if let Err(e) = self.vm()?.has_smccc_filter() {
            self.no_server = Some(format!("no SMCCC filter ({e})"));
            return Ok(());
        }
        if self.profile.is_none() {
            let cpu = self.cpu.clone();
            self.profile = Some(crate::probe::probe(cpu.as_deref(), None).map_err(|e| text(&e))?);
        }
        let profile = self.profile.as_ref().ok_or("no profile")?;
        let mut server = FirmwareServer::new(profile);
        let fw = server.firmware_mut();
        if vm.system_suspend {
            fw.enable_system_suspend()
                .map_err(|e| format!("firmware engine: SYSTEM_SUSPEND: {e}"))?;
        }
        for i in 0..vm.vcpus {
            fw.add_vcpu()
                .map_err(|e| format!("firmware engine: vCPU {i}: {e}"))?;
            fw.init_vcpu(
                i,
                VcpuFeatures {
                    psci_0_2: vm.psci_0_2,
                    power_off: vm.power_off.contains(&i),
                },
            )
            .map_err(|e| format!("firmware engine: vCPU {i}: {e}"))?;
        }
        let test_vm = self.vm.as_ref().ok_or("no VM")?;
        server.install(test_vm.vm_fd()).map_err(|e| text(&e))?;
        self.server = Some(server);
        Ok(())
    }

    /// A call answered by armfw's userspace firmware.
    fn served_call(
        &mut self,
        vcpu: usize,
        conduit: Conduit,
        x: [u64; 4],
    ) -> Result<CallResult, String> {
        let (Some(vm), Some(server)) = (self.vm.as_mut(), self.server.as_mut()) else {
            return Err("no VM".into());
        };
        if vcpu >= vm.vcpu_count() {
            return Err(format!("vCPU {vcpu} does not exist"));
        }
        server
            .firmware_mut()
            .vcpu_run(vcpu)
            .map_err(|e| e.to_string())?;
        let exit = vm.call(vcpu, conduit, x).map_err(|e| text(&e))?;
        let CallExit::Hypercall { nr, flags, .. } = exit else {
            // In-kernel answers (the architecture calls) and blocked vCPUs.
            return Ok(exit.into());
        };
        let out = {
            let fd = vm.vcpu_fd(vcpu).map_err(|e| text(&e))?;
            server
                .handle_hypercall(vcpu, fd, nr, flags, &mut HostServices::new(fd))
                .map_err(|e| text(&e))?
        };
        self.served += 1;
        // KVM's MP states follow the engine's: a CPU_ON target is reset and started; SHUTDOWN
        // and RESET stop every vCPU, as KVM does.
        if let Action::StartVcpu(s) = &out.action {
            vm.start_vcpu(s.vcpu, s.entry, s.context_id)
                .map_err(|e| text(&e))?;
        }
        for v in 0..vm.vcpu_count() {
            let want = server
                .firmware()
                .mp_state(v)
                .map_err(|e| e.to_string())?
                .kvm_value();
            let have = vm
                .mp_state(v)
                .map_err(|e| format!("KVM_GET_MP_STATE: {e}"))?;
            if want != have {
                vm.set_mp_state(v, want)
                    .map_err(|e| format!("KVM_SET_MP_STATE: {e}"))?;
            }
        }
        let exit = match out.action {
            Action::SystemEvent(e) => {
                return Ok(CallResult::SystemEvent {
                    kind: e.kind.kvm_value(),
                    data: e.data,
                    x: out.x,
                });
            }
            Action::Forward(h) => {
                return Ok(CallResult::Hypercall {
                    nr: h.nr.into(),
                    flags: h.flags,
                });
            }
            Action::WaitForInterrupt => vm.run_on_after_wfi(vcpu),
            Action::Resume
            | Action::StartVcpu(_)
            | Action::InitStolenTime { .. }
            | Action::CpuOff => vm.run_on(vcpu),
            other => return Err(format!("the kvm backend does not carry out {other:?}")),
        };
        Ok(exit.map_err(|e| text(&e))?.into())
    }
}

impl Backend for KvmBackend {
    fn target(&self) -> Value {
        let mut t = json!({"backend": "kvm", "kernel": self.kernel});
        if let Some(cpu) = &self.cpu {
            t["cpu"] = json!(cpu);
        }
        if self.firmware == FirmwareMode::Armfw {
            match &self.no_server {
                None => {
                    t["firmware"] = json!("armfw");
                    // Evidence that the calls really went through userspace.
                    t["calls_served_in_userspace"] = json!(self.served);
                }
                Some(why) => t["firmware"] = json!(format!("kernel: {why}")),
            }
        }
        t
    }

    fn create_vm(&mut self, vm: &ScenarioVm) -> Result<(), String> {
        if let Some(old) = self.vm.take() {
            old.leak();
        }
        self.server = None;
        self.no_server = None;
        self.served = 0;
        self.firmware = vm.firmware;
        self.vm = Some(TestVm::new(&VmSpec::from(vm)).map_err(|e| text(&e))?);
        if vm.firmware == FirmwareMode::Armfw {
            self.serve(vm)?;
        }
        Ok(())
    }

    fn reg_list(&mut self, vcpu: usize) -> Result<Result<Vec<u64>, Errno>, String> {
        Ok(self.vm()?.reg_list(vcpu))
    }

    fn get(&mut self, vcpu: usize, id: u64) -> Result<Result<Vec<u8>, Errno>, String> {
        Ok(self.vm()?.get_one_reg(vcpu, id))
    }

    fn set(&mut self, vcpu: usize, id: u64, data: &[u8]) -> Result<Result<(), Errno>, String> {
        let r = self.vm()?.set_one_reg(vcpu, id, data);
        // What KVM took, the userspace firmware takes too.
        if let (Ok(()), Some(server)) = (&r, self.server.as_mut()) {
            if OneRegId(id).is_firmware_class() && data.len() == 8 {
                let _ = server
                    .firmware_mut()
                    .set_one_reg(vcpu, id, armfw::json::le_u64(data));
            }
        }
        Ok(r)
    }

    fn call(&mut self, vcpu: usize, conduit: Conduit, x: [u64; 4]) -> Result<CallResult, String> {
        if self.server.is_some() {
            return self.served_call(vcpu, conduit, x);
        }
        let exit = self.vm()?.call(vcpu, conduit, x).map_err(|e| text(&e))?;
        Ok(exit.into())
    }

    fn entry(&mut self, vcpu: usize) -> Result<(u64, u64), String> {
        self.vm()?
            .entry(vcpu)
            .map_err(|e| format!("reading PC and x0: {e}"))
    }

    fn mp_state(&mut self, vcpu: usize) -> Result<u32, String> {
        self.vm()?
            .mp_state(vcpu)
            .map_err(|e| format!("KVM_GET_MP_STATE: {e}"))
    }

    fn set_mp_state(&mut self, vcpu: usize, state: u32) -> Result<Result<(), Errno>, String> {
        let r = self.vm()?.set_mp_state(vcpu, state);
        if let (Ok(()), Some(server)) = (&r, self.server.as_mut()) {
            let _ = server.firmware_mut().set_mp_state(vcpu, state);
        }
        Ok(r)
    }

    fn smccc_filter(
        &mut self,
        base: u32,
        count: u32,
        action: u8,
    ) -> Result<Result<(), Errno>, String> {
        Ok(self.vm()?.set_smccc_filter(base, count, action))
    }

    fn counter_offset(&mut self, offset: u64) -> Result<Result<(), Errno>, String> {
        Ok(self.vm()?.set_counter_offset(offset))
    }
}

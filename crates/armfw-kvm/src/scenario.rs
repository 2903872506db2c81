//! Scenarios on real KVM: [`KvmBackend`] implements the scenario contract's
//! [`armfw::scenario::Backend`] on [`TestVm`].

use armfw::abi::Errno as AbiErrno;
use armfw::scenario::{Backend, CallResult, FirmwareMode, VmSpec as ScenarioVm};
use serde_json::{Value, json};

use crate::{CallExit, Conduit, Error, TestVm, VmSpec, kernel_release};

/// The CPU model the host was started with, from the kernel command line (`armfw.cpu=MODEL`);
/// an emulated host cannot tell it from inside.
pub fn cpu_from_cmdline() -> Option<String> {
    crate::init::cmdline_value("armfw.cpu")
}

/// Scenarios run on this host's KVM.
#[derive(Debug)]
pub struct KvmBackend {
    vm: Option<TestVm>,
    kernel: String,
    cpu: Option<String>,
    firmware: FirmwareMode,
}

impl KvmBackend {
    /// A backend on /dev/kvm.
    pub fn new() -> Result<KvmBackend, Error> {
        let kernel = kernel_release().map_err(|e| Error::Sys {
            op: "uname",
            errno: e,
        })?;
        Ok(KvmBackend {
            vm: None,
            kernel,
            cpu: cpu_from_cmdline(),
            firmware: FirmwareMode::Kernel,
        })
    }

    fn vm(&mut self) -> Result<&mut TestVm, String> {
        self.vm.as_mut().ok_or_else(|| "no VM".to_string())
    }
}

impl Backend for KvmBackend {
    fn target(&self) -> Value {
        let mut t = json!({"backend": "kvm", "kernel": self.kernel});
        if let Some(cpu) = &self.cpu {
            t["cpu"] = json!(cpu);
        }
        if self.firmware == FirmwareMode::Armfw {
            // Userspace firmware through the SMCCC filter is not served yet: say who answered.
            t["firmware"] =
                json!("kernel (armfw userspace firmware not available in this backend)");
        }
        t
    }

    fn create_vm(&mut self, vm: &ScenarioVm) -> Result<(), String> {
        if let Some(old) = self.vm.take() {
            old.leak();
        }
        self.firmware = vm.firmware;
        let spec = VmSpec {
            vcpus: vm.vcpus,
            psci_0_2: vm.psci_0_2,
            power_off: vm.power_off.clone(),
            system_suspend: vm.system_suspend,
        };
        self.vm = Some(TestVm::new(&spec).map_err(|e| e.to_string())?);
        Ok(())
    }

    fn reg_list(&mut self, vcpu: usize) -> Result<Result<Vec<u64>, AbiErrno>, String> {
        Ok(self.vm()?.reg_list(vcpu).map_err(AbiErrno::from))
    }

    fn get(&mut self, vcpu: usize, id: u64) -> Result<Result<Vec<u8>, AbiErrno>, String> {
        Ok(self.vm()?.get_one_reg(vcpu, id).map_err(AbiErrno::from))
    }

    fn set(&mut self, vcpu: usize, id: u64, data: &[u8]) -> Result<Result<(), AbiErrno>, String> {
        Ok(self
            .vm()?
            .set_one_reg(vcpu, id, data)
            .map_err(AbiErrno::from))
    }

    fn call(&mut self, vcpu: usize, conduit: Conduit, x: [u64; 4]) -> Result<CallResult, String> {
        Ok(
            match self
                .vm()?
                .call(vcpu, conduit, x)
                .map_err(|e| e.to_string())?
            {
                CallExit::Returned { x } => CallResult::Returned { x },
                CallExit::SystemEvent { kind, data, x } => {
                    CallResult::SystemEvent { kind, data, x }
                }
                CallExit::Hypercall { nr, flags, .. } => CallResult::Hypercall { nr, flags },
                CallExit::Blocked { mp_state, x } => CallResult::Blocked { mp_state, x },
            },
        )
    }

    fn entry(&mut self, vcpu: usize) -> Result<(u64, u64), String> {
        self.vm()?
            .entry(vcpu)
            .map_err(|e| format!("reading PC and x0: {}", AbiErrno::from(e)))
    }

    fn mp_state(&mut self, vcpu: usize) -> Result<u32, String> {
        self.vm()?
            .mp_state(vcpu)
            .map_err(|e| format!("KVM_GET_MP_STATE: {}", AbiErrno::from(e)))
    }

    fn set_mp_state(&mut self, vcpu: usize, state: u32) -> Result<Result<(), AbiErrno>, String> {
        Ok(self.vm()?.set_mp_state(vcpu, state).map_err(AbiErrno::from))
    }

    fn smccc_filter(
        &mut self,
        base: u32,
        count: u32,
        action: u8,
    ) -> Result<Result<(), AbiErrno>, String> {
        Ok(self
            .vm()?
            .set_smccc_filter(base, count, action)
            .map_err(AbiErrno::from))
    }
}

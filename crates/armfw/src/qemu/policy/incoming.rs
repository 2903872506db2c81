//! The incoming vCPUs of a QEMU load: from a stream, an armfw whole-VM state, or a host's
//! default VM.

use super::{CORE_PSTATE, cpregs, is_cpreg, model_vm, value};
use crate::Profile;
use crate::abi::CpuFeatures;
use crate::qemu::stream::QemuVcpu;

/// PSTATE of a vCPU KVM has just reset: EL1h with D, A, I and F masked.
const RESET_PSTATE: u64 = 0x3c5;

/// One incoming vCPU: what QEMU's load uses of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// The cpreg ids and values, in stream order (sorted by id).
    pub cpregs: Vec<(u64, u64)>,
    /// PSTATE.
    pub pstate: u64,
}

impl From<&QemuVcpu> for Incoming {
    fn from(v: &QemuVcpu) -> Incoming {
        Incoming {
            cpregs: v.cpregs.clone(),
            pstate: u64::from(v.pstate),
        }
    }
}

impl Incoming {
    /// The vCPUs QEMU would save of a VM of `host` with `features`, created with KVM's
    /// defaults and run once (KVM's first-run changes made): every cpreg the host lists, sorted,
    /// with its value. `None` where the profile has no such feature set (or no whole-vCPU
    /// part).
    pub fn default_vm(
        host: &Profile,
        features: CpuFeatures,
        vcpus: usize,
    ) -> Option<Vec<Incoming>> {
        let mut vm = model_vm(host, features, vcpus).ok()?;
        vm.registers()?;
        for vcpu in 0..vcpus {
            vm.run(vcpu).ok()?;
        }
        (0..vcpus)
            .map(|vcpu| {
                Some(Incoming {
                    cpregs: cpregs(&vm, vcpu)?,
                    pstate: value(&vm, vcpu, CORE_PSTATE).unwrap_or(RESET_PSTATE),
                })
            })
            .collect()
    }

    /// The vCPUs QEMU would carry of a VM saved whole by armfw (format 2.0): each vCPU's
    /// listed ids but the core and SVE ones, sorted, with their saved values (the low 64
    /// bits), and the saved PSTATE. `None` for a firmware-only state.
    pub fn from_snapshot(snapshot: &crate::Snapshot) -> Option<Vec<Incoming>> {
        let m = snapshot.machine()?;
        let mut ids: Vec<u64> = m
            .reg_list
            .iter()
            .copied()
            .filter(|&id| is_cpreg(id))
            .collect();
        ids.sort_unstable();
        let firmware = |id: u64| {
            snapshot
                .vm
                .registers
                .iter()
                .find(|r| r.id == id)
                .map(|r| r.value)
        };
        Some(
            (0..snapshot.vcpus.len())
                .map(|vcpu| Incoming {
                    cpregs: ids
                        .iter()
                        .filter_map(|&id| {
                            let v =
                                firmware(id).or_else(|| m.value(vcpu, id).map(|r| r.low_u64()))?;
                            Some((id, v))
                        })
                        .collect(),
                    pstate: m
                        .value(vcpu, CORE_PSTATE)
                        .map_or(RESET_PSTATE, |r| r.low_u64()),
                })
                .collect(),
        )
    }
}

//! Helpers shared by the crate's unit tests.

use crate::firmware::{Firmware, VcpuFeatures};
use crate::profile::{Profile, builtin_named};

/// The built-in host profile `name`.
pub(crate) fn host(name: &str) -> Profile {
    builtin_named(name).unwrap()
}

/// A VM on `profile` with `n` vCPUs initialised with PSCI_0_2; with `secondaries_off`,
/// every vCPU but 0 starts powered off. No vCPU has run.
pub(crate) fn vm(profile: &Profile, n: usize, secondaries_off: bool) -> Firmware {
    let mut fw = Firmware::new(profile);
    for i in 0..n {
        fw.add_vcpu().unwrap();
        fw.init_vcpu(
            i,
            VcpuFeatures {
                psci_0_2: true,
                power_off: secondaries_off && i > 0,
            },
        )
        .unwrap();
    }
    fw
}

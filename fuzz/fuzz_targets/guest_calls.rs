//! Any sequence of guest calls (any x0..x17, either conduit, any vCPU), register writes, MP
//! state writes and SMCCC filter writes on a VM of any built-in host: the engine never
//! panics, every answer is one KVM can give, and the VM's state stays consistent.
#![no_main]

use armfw::abi::Errno;
use armfw::firmware::{
    Action, Call, Conduit, Firmware, MpState, Services, SystemEventType, VcpuFeatures,
};
use armfw::migrate::RestorePolicy;
use libfuzzer_sys::fuzz_target;

/// Reads the fuzzer's bytes as numbers; zeros once they run out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |v, i| v | u64::from(self.u8()) << (8 * i))
    }
    /// A register value: small values, edges and anything, in turn.
    fn value(&mut self) -> u64 {
        match self.u8() % 4 {
            0 => u64::from(self.u8()),
            1 => [
                0,
                1,
                2,
                3,
                0x2,
                0x10000,
                0x10001,
                0x10002,
                0x10003,
                u64::MAX,
                1 << 63,
            ][usize::from(self.u8() % 11)],
            2 => u64::from(self.u8()) << 16 | u64::from(self.u8()),
            _ => self.u64(),
        }
    }
    /// A function id: mostly from the services KVM has, sometimes anything.
    fn function(&mut self) -> u64 {
        let bases = [
            0x8400_0000u64,
            0xc400_0000,
            0x8000_0000,
            0x8500_0000,
            0xc500_0000,
            0x8600_0000,
            0xc600_0000,
            0x95c1_ba5e,
            0x8600_ff00,
        ];
        match self.u8() % 3 {
            0 => self.u64(),
            _ => {
                (bases[usize::from(self.u8()) % bases.len()] + u64::from(self.u8() % 0x60))
                    | (u64::from(self.u8() & 1) << 32)
            }
        }
    }
}

struct Fixed(u64);

impl Services for Fixed {
    fn random_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1);
        self.0
    }
    fn ptp_time(&mut self, _: armfw::firmware::PtpCounter) -> Option<armfw::firmware::PtpTime> {
        (self.0 & 1 == 0).then_some(armfw::firmware::PtpTime {
            realtime_ns: self.0,
            counter: !self.0,
        })
    }
}

fn is_psci(id: u64) -> bool {
    armfw::abi::FunctionId::from_x0(id).in_psci_range()
}

/// The built-in hosts, parsed once.
fn hosts() -> &'static [armfw::Profile] {
    static HOSTS: std::sync::OnceLock<Vec<armfw::Profile>> = std::sync::OnceLock::new();
    HOSTS.get_or_init(armfw::profile::builtin)
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let hosts = hosts();
    let profile = &hosts[usize::from(input.u8()) % hosts.len()];
    let mut fw = Firmware::new(profile);
    let n = usize::from(input.u8() % 4) + 1;
    let psci_0_2 = input.u8() & 1 == 0;
    if input.u8() & 1 == 1 {
        let _ = fw.enable_system_suspend();
    }
    for i in 0..n {
        fw.add_vcpu().expect("a few vCPUs");
        let power_off = i > 0 && input.u8() & 1 == 1;
        fw.init_vcpu(
            i,
            VcpuFeatures {
                psci_0_2,
                power_off,
            },
        )
        .expect("init");
    }
    let mut services = Fixed(input.u64());
    let mut forwarding = false;
    for _ in 0..64 {
        if input.0.is_empty() {
            break;
        }
        let vcpu = usize::from(input.u8()) % (n + 1); // n: one past the end
        match input.u8() % 8 {
            0..=3 => {
                let conduit = if input.u8() & 1 == 0 {
                    Conduit::Hvc
                } else {
                    Conduit::Smc
                };
                let mut x = [0u64; 18];
                x[0] = input.function();
                for r in x.iter_mut().skip(1).take(3) {
                    *r = input.value();
                }
                // x4..x17: KVM's firmware reads none of them; any values must change nothing
                // (checked against a twin below).
                if input.u8() % 4 == 0 {
                    for r in x.iter_mut().skip(4) {
                        *r = input.value();
                    }
                }
                let imm = if input.u8() % 8 == 0 {
                    u16::from(input.u8())
                } else {
                    0
                };
                if fw.vcpu_run(vcpu).is_err() {
                    assert!(vcpu >= n);
                    continue;
                }
                let call = Call { conduit, imm, x };
                // The same call with x4..x17 zero, on a twin of the VM and its services.
                let mut twin = (fw.clone(), Fixed(services.0));
                let mut zeroed = call;
                zeroed.x[4..].fill(0);
                let want = twin.0.handle_call(vcpu, &zeroed, &mut twin.1);
                let got = fw.handle_call(vcpu, &call, &mut services);
                assert_eq!(
                    format!("{got:?} {fw:?}"),
                    format!("{want:?} {:?}", twin.0),
                    "x4..x17 changed an answer"
                );
                match got {
                    Err(_) => assert_ne!(fw.mp_state(vcpu).ok(), Some(MpState::Runnable)),
                    Ok(out) => {
                        if is_psci(x[0])
                            && imm == 0
                            && !matches!(out.action, Action::Forward(_) | Action::SystemEvent(_))
                        {
                            let r = out.x[0] as i64;
                            assert!(
                                (-9..=0xffff_ffff).contains(&r),
                                "PSCI {:#x} answered {:#x}",
                                x[0],
                                out.x[0]
                            );
                        }
                        match out.action {
                            Action::StartVcpu(s) => {
                                assert!(s.vcpu < n);
                                assert_eq!(fw.mp_state(s.vcpu).ok(), Some(MpState::Runnable));
                            }
                            Action::CpuOff => {
                                assert_eq!(fw.mp_state(vcpu).ok(), Some(MpState::Stopped))
                            }
                            Action::SystemEvent(e) => assert!(matches!(
                                e.kind,
                                SystemEventType::Shutdown
                                    | SystemEventType::Reset
                                    | SystemEventType::Suspend
                            )),
                            Action::Forward(_) => assert!(forwarding),
                            Action::Resume
                            | Action::WaitForInterrupt
                            | Action::InitStolenTime { .. } => {}
                            other => panic!("an action the fuzzer does not know: {other:?}"),
                        }
                    }
                }
            }
            4 | 5 => {
                let ids = armfw::abi::FwReg::ALL;
                let id = if input.u8() % 4 == 0 {
                    input.u64()
                } else {
                    ids[usize::from(input.u8()) % ids.len()].id()
                };
                if let Err(e) = fw.set_one_reg(vcpu, id, input.value()) {
                    assert!(
                        [Errno::ENOENT, Errno::EINVAL, Errno::EBUSY, Errno::ENOEXEC].contains(&e),
                        "{e}"
                    );
                }
            }
            6 => {
                let state = [0u32, 5, 10, 1, 6, u32::from(input.u8())][usize::from(input.u8() % 6)];
                let _ = fw.set_mp_state(vcpu, state);
            }
            _ => {
                let base = input.function() as u32;
                let count = u32::from(input.u8());
                let action = input.u8() % 4;
                if fw.set_smccc_filter(base, count, action, [0; 15]).is_ok()
                    && action == 2
                    && count > 0
                {
                    forwarding = true;
                }
            }
        }
    }
    // Whatever state the VM reached, a snapshot of it restores onto a new VM of the same
    // host, and saving that VM gives the same snapshot.
    if let Ok(snap) = fw.save() {
        let mut fresh = Firmware::new(profile);
        fresh
            .restore(&snap, RestorePolicy::Strict)
            .expect("a VM's own state restores on its host");
        let again = fresh.save().expect("saves");
        // A restored VM has not run yet; everything else is as saved.
        assert!(!again.vm().has_run);
        let (source, mut vm, vcpus) = again.into_parts();
        vm.has_run = snap.vm().has_run;
        let again = armfw::Snapshot::from_parts_unchecked(source, vm, vcpus);
        assert_eq!(again.to_bytes(), snap.to_bytes());
    }
});

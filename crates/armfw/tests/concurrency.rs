//! The engine used as a VMM uses it: one thread per vCPU, each with its
//! [`VcpuHandle`](armfw::firmware::shared::VcpuHandle).
//!
//! The stress test races CPU_ONs for the same STOPPED targets from 64 threads and asserts the
//! outcomes, never the timing: per race exactly one SUCCESS (whose start names the target
//! and the winner's entry point and context id), ALREADY_ON for every other contender, the
//! target RUNNABLE afterwards; then the target turns itself off with CPU_OFF from its own
//! handle for the next round. `ARMFW_STRESS_RACES` sets the number of races (default
//! 1,000,000); see `docs/hardening.md`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use armfw::abi::psci::{
    PSCI_0_2_FN_AFFINITY_INFO, PSCI_0_2_FN_CPU_OFF, PSCI_0_2_FN_PSCI_VERSION, PSCI_0_2_FN64_CPU_ON,
    PSCI_RET_ALREADY_ON, PSCI_RET_INVALID_PARAMS, PSCI_RET_SUCCESS,
};
use armfw::abi::smccc::ret;
use armfw::abi::{FwReg, Mpidr};
use armfw::firmware::shared::{SharedFirmware, VcpuHandle};
use armfw::firmware::{Action, Call, Conduit, Firmware, MpState, VcpuFeatures, VcpuStart};
use armfw::profile::builtin_named;
use armfw::scenario::ModelServices;

/// A return register read back as the signed code the guest sees (the inverse of [`ret`]).
fn code(x0: u64) -> i64 {
    i64::from_ne_bytes(x0.to_ne_bytes())
}

/// The threads, one per racing vCPU.
const THREADS: usize = 64;
/// The STOPPED targets each round (64 racers + 448 targets = KVM_MAX_VCPUS).
const TARGETS: usize = 448;
/// The threads racing for each target. Every thread races for `TARGETS * CONTENDERS /
/// THREADS` targets a round, all in the same order, so the threads that run at the same time
/// collide on the same target.
const CONTENDERS: usize = THREADS;
/// The races of the default run.
const DEFAULT_RACES: u64 = 1_000_000;

const HOST: &str = "linux-6.12.117-max";

/// A VM of `racers` RUNNABLE vCPUs followed by `targets` STOPPED ones, shared.
fn shared_vm(racers: usize, targets: usize) -> (SharedFirmware, Vec<VcpuHandle>) {
    let mut fw = Firmware::new(&builtin_named(HOST).unwrap());
    for i in 0..racers + targets {
        fw.add_vcpu().unwrap();
        let features = VcpuFeatures {
            psci_0_2: true,
            power_off: i >= racers,
        };
        fw.init_vcpu(i, features).unwrap();
    }
    SharedFirmware::new(fw)
}

fn cpu_on(target: usize, entry: u64, context_id: u64) -> Call {
    let mpidr = Mpidr::for_vcpu_index(target).0;
    Call::new(
        Conduit::Hvc,
        [u64::from(PSCI_0_2_FN64_CPU_ON), mpidr, entry, context_id],
    )
}

fn cpu_off() -> Call {
    Call::new(Conduit::Hvc, [u64::from(PSCI_0_2_FN_CPU_OFF), 0, 0, 0])
}

/// Failures seen by the threads: counted, the first one kept. A thread never panics (a
/// panic would leave the others waiting at the barrier); the test asserts at the end.
#[derive(Default)]
struct Failures {
    count: AtomicUsize,
    first: Mutex<Option<String>>,
}

impl Failures {
    fn record(&self, what: String) {
        if self.count.fetch_add(1, Ordering::Relaxed) == 0 {
            *self.first.lock().unwrap() = Some(what);
        }
    }

    fn assert_none(&self) {
        let n = self.count.load(Ordering::Relaxed);
        assert_eq!(
            n,
            0,
            "{n} failures, first: {:?}",
            self.first.lock().unwrap()
        );
    }
}

fn races() -> u64 {
    std::env::var("ARMFW_STRESS_RACES")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(DEFAULT_RACES)
}

fn entry_of(thread: usize) -> u64 {
    0x4000_0000 + 0x1000 * thread as u64
}

#[test]
fn cpu_on_races_give_one_success_and_already_on_for_the_rest() {
    let total = races();
    let rounds = total.div_ceil(TARGETS as u64);
    let groups = THREADS / CONTENDERS;
    let (vm, mut handles) = shared_vm(THREADS, TARGETS);
    let target_handles: Vec<VcpuHandle> = handles.split_off(THREADS);
    // Thread j acts as the vCPU thread of racer j and of the targets t with t % 64 == j.
    let mut owned: Vec<Vec<VcpuHandle>> = (0..THREADS).map(|_| Vec::new()).collect();
    for (t, h) in target_handles.into_iter().enumerate() {
        owned[t % THREADS].push(h);
    }
    // wins[t]: 0, or 1 + the thread whose CPU_ON of target t succeeded this round.
    let wins: Arc<Vec<AtomicUsize>> = Arc::new((0..TARGETS).map(|_| AtomicUsize::new(0)).collect());
    let already_on = Arc::new(AtomicU64::new(0));
    let successes = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Failures::default());
    let barrier = Arc::new(Barrier::new(THREADS));

    let threads: Vec<_> = handles
        .into_iter()
        .zip(owned)
        .enumerate()
        .map(|(j, (mut racer, mut mine))| {
            let (wins, barrier, failures) = (wins.clone(), barrier.clone(), failures.clone());
            let (already_on, successes) = (already_on.clone(), successes.clone());
            let vm = vm.clone();
            thread::spawn(move || {
                let mut services = ModelServices::default();
                let my_targets: Vec<usize> =
                    (0..TARGETS).filter(|t| t % groups == j % groups).collect();
                let (mut won, mut lost) = (0u64, 0u64);
                for round in 0..rounds {
                    barrier.wait();
                    for &t in &my_targets {
                        let vcpu = THREADS + t;
                        let call = cpu_on(vcpu, entry_of(j), round);
                        let out = match racer.handle_call(&call, &mut services) {
                            Ok(out) => out,
                            Err(e) => {
                                failures.record(format!("round {round}: racer {j}: {e}"));
                                continue;
                            }
                        };
                        let expected_start = Action::StartVcpu(VcpuStart {
                            vcpu,
                            entry: entry_of(j),
                            context_id: round,
                        });
                        if out.x == [PSCI_RET_SUCCESS as u64, 0, 0, 0]
                            && out.action == expected_start
                        {
                            won += 1;
                            if let Err(other) = wins[t].compare_exchange(
                                0,
                                j + 1,
                                Ordering::AcqRel,
                                Ordering::Acquire,
                            ) {
                                failures.record(format!(
                                    "round {round}: target {vcpu} turned on by threads {} and {j}",
                                    other - 1
                                ));
                            }
                        } else if out.x == [ret(PSCI_RET_ALREADY_ON), 0, 0, 0]
                            && out.action == Action::Resume
                        {
                            lost += 1;
                        } else {
                            failures.record(format!(
                                "round {round}: racer {j}, target {vcpu}: {out:?}"
                            ));
                        }
                    }
                    barrier.wait();
                    // Every race of the round is over: check the targets this thread owns,
                    // then turn each off from its own handle.
                    for target in &mut mine {
                        let vcpu = target.index();
                        let winner = wins[vcpu - THREADS].swap(0, Ordering::AcqRel);
                        if winner == 0 {
                            failures
                                .record(format!("round {round}: no CPU_ON of {vcpu} succeeded"));
                        } else if (winner - 1) % groups != (vcpu - THREADS) % groups {
                            failures
                                .record(format!("round {round}: {vcpu} won by a non-contender"));
                        }
                        if vm.mp_state(vcpu) != Ok(MpState::Runnable) {
                            failures.record(format!(
                                "round {round}: {vcpu} not RUNNABLE after its race"
                            ));
                            continue;
                        }
                        match target.handle_call(&cpu_off(), &mut services) {
                            Ok(out)
                                if out.action == Action::CpuOff
                                    && out.x[0] == PSCI_RET_SUCCESS as u64 => {}
                            other => failures
                                .record(format!("round {round}: CPU_OFF of {vcpu}: {other:?}")),
                        }
                    }
                }
                successes.fetch_add(won, Ordering::Relaxed);
                already_on.fetch_add(lost, Ordering::Relaxed);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }

    failures.assert_none();
    let races = rounds * TARGETS as u64;
    assert!(races >= total);
    assert_eq!(successes.load(Ordering::Relaxed), races);
    assert_eq!(
        already_on.load(Ordering::Relaxed),
        races * (CONTENDERS as u64 - 1)
    );
    for t in THREADS..THREADS + TARGETS {
        assert_eq!(vm.mp_state(t), Ok(MpState::Stopped), "vCPU {t}");
    }
}

#[test]
fn every_thread_racing_for_one_target_gives_one_success() {
    // All 64 threads for the same target, round after round.
    const ROUNDS: u64 = 2_000;
    let (vm, mut handles) = shared_vm(THREADS, 1);
    let target = Arc::new(Mutex::new(handles.pop().unwrap()));
    let wins = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Failures::default());
    let barrier = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = handles
        .into_iter()
        .enumerate()
        .map(|(j, mut racer)| {
            let (target, wins, failures, barrier) = (
                target.clone(),
                wins.clone(),
                failures.clone(),
                barrier.clone(),
            );
            let vm = vm.clone();
            thread::spawn(move || {
                let mut services = ModelServices::default();
                for round in 0..ROUNDS {
                    barrier.wait();
                    let out =
                        racer.handle_call(&cpu_on(THREADS, entry_of(j), round), &mut services);
                    match out.map(|o| (code(o.x[0]), o.action)) {
                        Ok((PSCI_RET_SUCCESS, Action::StartVcpu(s)))
                            if s.vcpu == THREADS
                                && s.entry == entry_of(j)
                                && s.context_id == round =>
                        {
                            if wins.fetch_add(1, Ordering::AcqRel) != 0 {
                                failures.record(format!("round {round}: two SUCCESSes"));
                            }
                        }
                        Ok((PSCI_RET_ALREADY_ON, Action::Resume)) => {}
                        other => failures.record(format!("round {round}: thread {j}: {other:?}")),
                    }
                    if barrier.wait().is_leader() {
                        if wins.swap(0, Ordering::AcqRel) != 1 {
                            failures.record(format!("round {round}: no SUCCESS"));
                        }
                        if vm.mp_state(THREADS) != Ok(MpState::Runnable) {
                            failures.record(format!("round {round}: target not RUNNABLE"));
                        }
                        let off = target
                            .lock()
                            .unwrap()
                            .handle_call(&cpu_off(), &mut services);
                        if !matches!(off, Ok(ref o) if o.action == Action::CpuOff) {
                            failures.record(format!("round {round}: CPU_OFF: {off:?}"));
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    failures.assert_none();
}

#[test]
fn psci_0_1_races_give_one_success_and_invalid_params_for_the_rest() {
    // KVM answers a CPU_ON of a vCPU that is on with INVALID_PARAMS under PSCI 0.1.
    const RACERS: usize = 8;
    const ROUNDS: u64 = 1_000;
    let mut fw = Firmware::new(&builtin_named(HOST).unwrap());
    for i in 0..=RACERS {
        fw.add_vcpu().unwrap();
        let features = VcpuFeatures {
            psci_0_2: false,
            power_off: i == RACERS,
        };
        fw.init_vcpu(i, features).unwrap();
    }
    let (vm, mut handles) = SharedFirmware::new(fw);
    let target = Arc::new(Mutex::new(handles.pop().unwrap()));
    let barrier = Arc::new(Barrier::new(RACERS));
    let wins = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Failures::default());
    let kvm_cpu_on = u64::from(armfw::abi::psci::KVM_PSCI_FN_CPU_ON);
    let kvm_cpu_off = u64::from(armfw::abi::psci::KVM_PSCI_FN_CPU_OFF);
    let threads: Vec<_> = handles
        .into_iter()
        .map(|mut racer| {
            let (target, wins, failures, barrier) = (
                target.clone(),
                wins.clone(),
                failures.clone(),
                barrier.clone(),
            );
            let vm = vm.clone();
            thread::spawn(move || {
                let mut s = ModelServices::default();
                let on = Call::new(Conduit::Hvc, [kvm_cpu_on, RACERS as u64, 0x8000, 0]);
                for round in 0..ROUNDS {
                    barrier.wait();
                    match racer.handle_call(&on, &mut s).map(|o| code(o.x[0])) {
                        Ok(PSCI_RET_SUCCESS) => {
                            wins.fetch_add(1, Ordering::AcqRel);
                        }
                        Ok(PSCI_RET_INVALID_PARAMS) => {}
                        other => failures.record(format!("round {round}: {other:?}")),
                    }
                    if barrier.wait().is_leader() {
                        if wins.swap(0, Ordering::AcqRel) != 1 {
                            failures.record(format!("round {round}: not one SUCCESS"));
                        }
                        let off = Call::new(Conduit::Hvc, [kvm_cpu_off, 0, 0, 0]);
                        let _ = target.lock().unwrap().handle_call(&off, &mut s);
                        if vm.mp_state(RACERS) != Ok(MpState::Stopped) {
                            failures.record(format!("round {round}: target still on"));
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    failures.assert_none();
}

#[test]
fn vmm_requests_run_alongside_guest_calls() {
    // The VMM thread reads and writes registers while vCPU threads make calls; every answer
    // is one the single-threaded engine gives, and the final state is the expected one.
    const CALLS: usize = 2_000;
    let (vm, handles) = shared_vm(4, 0);
    let mut handles = handles;
    handles[0].vcpu_run().unwrap();
    assert!(vm.has_run());
    let threads: Vec<_> = handles
        .into_iter()
        .map(|mut h| {
            thread::spawn(move || {
                let mut s = ModelServices::default();
                let info = Call::new(
                    Conduit::Hvc,
                    [u64::from(PSCI_0_2_FN_AFFINITY_INFO), 0, 0, 0],
                );
                let version =
                    Call::new(Conduit::Hvc, [u64::from(PSCI_0_2_FN_PSCI_VERSION), 0, 0, 0]);
                for _ in 0..CALLS {
                    // vCPU 0 is always on.
                    assert_eq!(h.handle_call(&info, &mut s).unwrap().x[0], 0);
                    let v = h.handle_call(&version, &mut s).unwrap().x[0];
                    assert!(v == 0x1_0000 || v == 0x1_0001, "{v:#x}");
                }
            })
        })
        .collect();
    for i in 0..CALLS {
        let v = if i % 2 == 0 { 0x1_0000 } else { 0x1_0001 };
        vm.set_one_reg(i % 4, FwReg::PsciVersion.id(), v).unwrap();
        // The bitmaps are locked: the VM has run.
        assert_eq!(
            vm.set_one_reg(0, FwReg::StdBmap.id(), 0),
            Err(armfw::abi::Errno::EBUSY)
        );
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(vm.get_one_reg(3, FwReg::PsciVersion.id()), Ok(0x1_0001));
    let fw = vm.to_firmware();
    assert_eq!(fw.save().unwrap(), vm.save().unwrap());
}

//! Property tests of save, restore and the compatibility check, on random VM states and random
//! hosts (see `docs/hardening.md`).
//!
//! - States are ones a real VM can be in: a VM is created on a host, then driven by random
//!   register writes, guest calls from random vCPUs, MP-state and stolen-time requests,
//!   SMCCC filter ranges and KVM_RUN, and saved (with the CPU_ON starts not yet applied).
//! - Hosts are the built-in profiles and valid variants of them (another release, registers
//!   removed, other levels, bitmaps and PSCI versions, capabilities switched).
//! - Failure paths also get snapshots mutated field by field, and binary files with random
//!   bytes under a valid checksum.

use armfw::abi::psci::{
    KVM_PSCI_FN_CPU_OFF, KVM_PSCI_FN_CPU_ON, KVM_PSCI_FN_CPU_SUSPEND, KVM_PSCI_FN_MIGRATE,
};
use armfw::abi::{Function, FwReg, Mpidr, PsciVersion};
use armfw::compat::{self, StrictOutcome, Verdict};
use armfw::firmware::FilterAction;
use armfw::firmware::{Action, Call, Conduit, Firmware, MpState, VcpuFeatures, VcpuStart};
use armfw::migrate::{RestoreError, RestorePolicy};
use armfw::profile::{Profile, builtin};
use armfw::scenario::ModelServices;
use armfw::snapshot::{
    FORMAT_VERSION, FilterRange, MAGIC, PendingStart, SavedReg, Snapshot, Source, VcpuState,
    VmState, crc32,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Hosts

/// A change to a built-in profile; applied only where the result is still a valid profile.
#[derive(Clone, Debug)]
struct HostEdit {
    kernel: Option<&'static str>,
    drop_registers: u8,
    levels: [u64; 3],
    edit_levels: bool,
    writable_masks: [u64; 4],
    versions_mask: u8,
    capabilities: Option<(bool, bool, bool)>,
}

fn host_edit() -> impl Strategy<Value = HostEdit> {
    (
        proptest::option::of(prop::sample::select(vec![
            "5.1.0",
            "5.10.0",
            "5.19.0",
            "6.1.0-37-arm64",
            "6.12.117",
            "6.13.0",
            "7.2.13",
        ])),
        any::<u8>(),
        (0u64..=2, prop::sample::select(vec![0u64, 3]), 0u64..=2),
        any::<bool>(),
        any::<[u64; 4]>(),
        any::<u8>(),
        proptest::option::of(any::<(bool, bool, bool)>()),
    )
        .prop_map(
            |(
                kernel,
                drop_registers,
                (l1, l2, l3),
                edit_levels,
                writable_masks,
                versions_mask,
                capabilities,
            )| {
                HostEdit {
                    kernel,
                    drop_registers,
                    levels: [l1, l2, l3],
                    edit_levels,
                    writable_masks,
                    versions_mask,
                    capabilities,
                }
            },
        )
}

/// A built-in host, or a valid variant of one.
fn host() -> impl Strategy<Value = Profile> {
    let hosts = builtin();
    (0..hosts.len(), proptest::option::of(host_edit())).prop_map(move |(i, edit)| match edit {
        None => hosts[i].clone(),
        Some(e) => edited(&hosts[i], &e),
    })
}

fn edited(base: &Profile, e: &HostEdit) -> Profile {
    let mut p = base.clone().into_parts();
    p.name = format!("{}-variant", p.name);
    if let Some(k) = e.kernel {
        p.kernel = k.to_string();
    }
    let mut bit = 0;
    p.registers.retain(|r| {
        bit += 1;
        r.reg == FwReg::PsciVersion || e.drop_registers & (1 << (bit - 1)) == 0
    });
    for r in &mut p.registers {
        match r.reg {
            FwReg::SmcccArchWorkaround1 if e.edit_levels => r.default = e.levels[0],
            FwReg::SmcccArchWorkaround2 if e.edit_levels => r.default = e.levels[1],
            FwReg::SmcccArchWorkaround3 if e.edit_levels => r.default = e.levels[2],
            reg if reg.is_bitmap() => {
                let i = FwReg::ALL
                    .iter()
                    .filter(|r| r.is_bitmap())
                    .position(|b| *b == reg)
                    .unwrap();
                let w = r.writable.unwrap() & e.writable_masks[i];
                r.writable = Some(w);
                r.default &= w;
            }
            _ => {}
        }
    }
    let versions: Vec<PsciVersion> = p
        .psci_versions
        .iter()
        .enumerate()
        .filter(|(i, _)| e.versions_mask & (1 << i) != 0)
        .map(|(_, v)| *v)
        .collect();
    if let Some(newest) = versions.last() {
        p.registers
            .iter_mut()
            .filter(|r| r.reg == FwReg::PsciVersion)
            .for_each(|r| r.default = newest.0.into());
        p.psci_versions = versions;
    }
    if let Some((psci_0_2, system_suspend, smccc_filter)) = e.capabilities {
        p.capabilities.psci_0_2 = psci_0_2;
        p.capabilities.system_suspend = system_suspend;
        p.capabilities.smccc_filter = smccc_filter;
    }
    Profile::new(p).unwrap_or_else(|_| base.clone())
}

// ---------------------------------------------------------------------------------------------
// VM states

/// One thing a VMM or its guest does to a VM.
#[derive(Clone, Debug)]
enum Op {
    SetReg { vcpu: usize, reg: usize, value: u64 },
    Call { vcpu: usize, smc: bool, x: [u64; 4] },
    SetMpState { vcpu: usize, state: u32 },
    SetPvTime { vcpu: usize, ipa: u64 },
    Filter { base: u32, nr: u32, action: u8 },
    Run { vcpu: usize },
}

/// Every id of the function table, and KVM's PSCI 0.1 ids (raw values outside the table).
fn known_ids() -> Vec<u32> {
    let mut ids: Vec<u32> = Function::ALL.iter().map(|f| f.raw()).collect();
    ids.extend([
        KVM_PSCI_FN_CPU_SUSPEND,
        KVM_PSCI_FN_CPU_OFF,
        KVM_PSCI_FN_CPU_ON,
        KVM_PSCI_FN_MIGRATE,
    ]);
    ids
}

/// Function ids around every service, and any 32 bits.
fn function_id() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => prop::sample::select(known_ids())
        .prop_map(u64::from),
        1 => any::<u64>(),
    ]
}

/// Register values: the interesting ones (levels, PSCI versions, small bitmaps) and any.
fn reg_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        2 => 0u64..=0x1f,
        2 => prop::sample::select(vec![0x2u64, 0x1_0000, 0x1_0001, 0x1_0002, 0x1_0003, 0x1, 0x3, 0x7, 0x12]),
        1 => any::<u64>(),
    ]
}

fn op(vcpus: usize) -> impl Strategy<Value = Op> {
    let v = 0..vcpus;
    // CPU_ON and AFFINITY_INFO targets: mostly the VM's own MPIDRs.
    let target = prop_oneof![
        3 => (0..vcpus).prop_map(|i| Mpidr::for_vcpu_index(i).0),
        1 => any::<u64>(),
    ];
    prop_oneof![
        3 => (v.clone(), 0..FwReg::ALL.len() + 1, reg_value())
            .prop_map(|(vcpu, reg, value)| Op::SetReg { vcpu, reg, value }),
        4 => (v.clone(), any::<bool>(), function_id(), target, any::<u64>(), any::<u64>())
            .prop_map(|(vcpu, smc, f, x1, x2, x3)| Op::Call { vcpu, smc: smc && x2 % 4 == 0, x: [f, x1, x2, x3] }),
        2 => (v.clone(), prop::sample::select(vec![0u32, 5, 10, 1, u32::MAX]))
            .prop_map(|(vcpu, state)| Op::SetMpState { vcpu, state }),
        1 => (v.clone(), prop_oneof![(0u64..0x1000).prop_map(|a| a * 64), any::<u64>()])
            .prop_map(|(vcpu, ipa)| Op::SetPvTime { vcpu, ipa }),
        1 => (prop::sample::select(vec![0xc600_0040u32, 0x8600_0000, 0xc500_0020, 0x8400_0050, 0x8000_0000, 0xc700_0000]), 1u32..4, 0u8..3)
            .prop_map(|(base, nr, action)| Op::Filter { base, nr, action }),
        1 => v.prop_map(|vcpu| Op::Run { vcpu }),
    ]
}

/// How a VM is created and what is done to it.
#[derive(Clone, Debug)]
struct Script {
    host: Profile,
    psci_0_2: bool,
    system_suspend: bool,
    power_off: Vec<bool>,
    ops: Vec<Op>,
}

fn script() -> impl Strategy<Value = Script> {
    (host(), any::<bool>(), any::<bool>(), 1usize..=4).prop_flat_map(
        |(host, psci_0_2, system_suspend, n)| {
            (
                Just(host),
                Just(psci_0_2),
                Just(system_suspend),
                prop::collection::vec(any::<bool>(), n),
                prop::collection::vec(op(n), 0..24),
            )
                .prop_map(|(host, psci_0_2, system_suspend, power_off, ops)| Script {
                    host,
                    psci_0_2,
                    system_suspend,
                    power_off,
                    ops,
                })
        },
    )
}

/// The VM a script gives, and the CPU_ON starts the VMM has received and not applied.
fn run(s: &Script) -> (Firmware, Vec<VcpuStart>) {
    let mut fw = Firmware::new(&s.host);
    if s.system_suspend {
        let _ = fw.enable_system_suspend();
    }
    let psci_0_2 = s.psci_0_2 && s.host.capabilities().psci_0_2;
    for (i, &power_off) in s.power_off.iter().enumerate() {
        fw.add_vcpu().unwrap();
        fw.init_vcpu(
            i,
            VcpuFeatures {
                psci_0_2,
                power_off,
            },
        )
        .unwrap();
    }
    let mut pending: Vec<VcpuStart> = Vec::new();
    let mut services = ModelServices::default();
    for op in &s.ops {
        match *op {
            Op::SetReg { vcpu, reg, value } => {
                // One past the known registers: an id no host has.
                let id = FwReg::ALL
                    .get(reg)
                    .map_or(0x6030_0000_0014_0009, |r| r.id());
                let _ = fw.set_one_reg(vcpu, id, value);
            }
            Op::Call { vcpu, smc, x } => {
                let conduit = if smc { Conduit::Smc } else { Conduit::Hvc };
                if let Ok(out) = fw.handle_call(vcpu, &Call::new(conduit, x), &mut services) {
                    match out.action {
                        Action::StartVcpu(start) => {
                            pending.retain(|p| p.vcpu != start.vcpu);
                            pending.push(start);
                        }
                        Action::CpuOff => pending.retain(|p| p.vcpu != vcpu),
                        Action::SystemEvent(_) => pending.clear(),
                        _ => {}
                    }
                }
            }
            Op::SetMpState { vcpu, state } => {
                let _ = fw.set_mp_state(vcpu, state);
            }
            Op::SetPvTime { vcpu, ipa } => {
                let _ = fw.set_pv_time_ipa(vcpu, ipa);
            }
            Op::Filter { base, nr, action } => {
                let _ = fw.set_smccc_filter(base, nr, action, [0; 15]);
            }
            Op::Run { vcpu } => {
                // The VMM applies the pending starts before the vCPUs run.
                pending.clear();
                let _ = fw.vcpu_run(vcpu);
            }
        }
    }
    // A start only stays pending while its vCPU is RUNNABLE.
    pending.retain(|p| fw.mp_state(p.vcpu) == Ok(MpState::Runnable));
    pending.sort_by_key(|p| p.vcpu);
    (fw, pending)
}

/// A saved state of a VM a script drove.
fn saved() -> impl Strategy<Value = (Profile, Snapshot, Vec<VcpuStart>)> {
    script().prop_map(|s| {
        let (fw, pending) = run(&s);
        let snap = fw.save_with_pending(&pending).unwrap();
        (s.host, snap, pending)
    })
}

// ---------------------------------------------------------------------------------------------
// Corruptions

/// A change to one field of a snapshot.
#[derive(Clone, Debug)]
enum Mutation {
    RegValue(usize, u64),
    RegId(usize, u64),
    DropReg(usize),
    AddReg(u64, u64),
    FlipPsci02,
    FlipSystemSuspend,
    FlipHasRun,
    Filter(u32, u32, u8),
    MpState(usize, u8),
    Pending(usize, Option<(u64, u64)>),
    PvTime(usize, Option<u64>),
    VcpuCount(usize),
    Kernel(String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (0usize..16, reg_value()).prop_map(|(i, v)| Mutation::RegValue(i, v)),
        1 => (0usize..16, prop_oneof![
            prop::sample::select(FwReg::ALL.map(FwReg::id).to_vec()),
            (0u64..0x20).prop_map(|i| 0x6030_0000_0014_0000 | i),
            (0u64..0x20).prop_map(|i| 0x6030_0000_0016_0000 | i),
            any::<u64>(),
        ]).prop_map(|(i, id)| Mutation::RegId(i, id)),
        1 => (0usize..16).prop_map(Mutation::DropReg),
        1 => ((0u64..0x10).prop_map(|i| 0x6030_0000_0014_0000 | i), reg_value()).prop_map(|(id, v)| Mutation::AddReg(id, v)),
        1 => Just(Mutation::FlipPsci02),
        1 => Just(Mutation::FlipSystemSuspend),
        1 => Just(Mutation::FlipHasRun),
        1 => (any::<u32>(), 0u32..4, 0u8..3).prop_map(|(b, n, a)| Mutation::Filter(b, n, a)),
        1 => (0usize..5, 0u8..3).prop_map(|(i, s)| Mutation::MpState(i, s)),
        1 => (0usize..5, proptest::option::of(any::<(u64, u64)>())).prop_map(|(i, p)| Mutation::Pending(i, p)),
        1 => (0usize..5, proptest::option::of(any::<u64>())).prop_map(|(i, p)| Mutation::PvTime(i, p)),
        1 => (0usize..6).prop_map(Mutation::VcpuCount),
        1 => prop::sample::select(vec!["", "6", "x.y", "5.1.0", "6.12.117", "99.0"]).prop_map(|k| Mutation::Kernel(k.to_string())),
    ]
}

/// A snapshot's parts, to mutate into states that may be invalid.
struct Parts {
    source: Source,
    vm: VmState,
    vcpus: Vec<VcpuState>,
}

/// `s` with the mutations applied, unchecked.
fn mutated(s: Snapshot, ms: &[Mutation]) -> Snapshot {
    let (source, vm, vcpus) = s.into_parts();
    let mut p = Parts { source, vm, vcpus };
    for m in ms {
        mutate(&mut p, m);
    }
    Snapshot::from_parts_unchecked(p.source, p.vm, p.vcpus)
}

fn mutate(s: &mut Parts, m: &Mutation) {
    let regs = &mut s.vm.registers;
    let n = regs.len();
    match *m {
        Mutation::RegValue(i, v) if n > 0 => regs[i % n].value = v,
        Mutation::RegId(i, id) if n > 0 => regs[i % n].id = id,
        Mutation::DropReg(i) if n > 0 => {
            regs.remove(i % n);
        }
        Mutation::AddReg(id, value) => {
            regs.push(SavedReg { id, value });
            regs.sort_by_key(|r| r.id);
        }
        Mutation::FlipPsci02 => s.vm.psci_0_2 = !s.vm.psci_0_2,
        Mutation::FlipSystemSuspend => s.vm.system_suspend = !s.vm.system_suspend,
        Mutation::FlipHasRun => s.vm.has_run = !s.vm.has_run,
        Mutation::Filter(base, nr_functions, a) => s.vm.smccc_filter.push(FilterRange {
            base,
            nr_functions,
            action: FilterAction::from_kvm_value(a).unwrap(),
        }),
        Mutation::MpState(i, st) if !s.vcpus.is_empty() => {
            let n = s.vcpus.len();
            s.vcpus[i % n].mp_state =
                [MpState::Runnable, MpState::Stopped, MpState::Suspended][usize::from(st)];
        }
        Mutation::Pending(i, p) if !s.vcpus.is_empty() => {
            let n = s.vcpus.len();
            s.vcpus[i % n].pending_start =
                p.map(|(entry, context_id)| PendingStart { entry, context_id });
        }
        Mutation::PvTime(i, p) if !s.vcpus.is_empty() => {
            let n = s.vcpus.len();
            s.vcpus[i % n].pv_time_ipa = p;
        }
        Mutation::VcpuCount(k) if !s.vcpus.is_empty() => {
            let template = s.vcpus[0];
            s.vcpus.resize(k, template);
        }
        Mutation::Kernel(ref k) => s.source.kernel = k.clone(),
        _ => {}
    }
}

/// A snapshot to restore: a saved state, possibly mutated.
fn snapshot() -> impl Strategy<Value = Snapshot> {
    (saved(), prop::collection::vec(mutation(), 0..3)).prop_map(|((_, s, _), ms)| mutated(s, &ms))
}

/// The binary form of `body` with a valid frame and checksum.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut b = MAGIC.to_vec();
    b.extend_from_slice(&FORMAT_VERSION.major.to_le_bytes());
    b.extend_from_slice(&FORMAT_VERSION.minor.to_le_bytes());
    b.extend_from_slice(&u32::try_from(body.len()).unwrap().to_le_bytes());
    b.extend_from_slice(body);
    b.extend_from_slice(&crc32(body).to_le_bytes());
    b
}

/// A destination VM: fresh, or driven by a script (created, maybe written to, maybe run).
fn destination() -> impl Strategy<Value = Firmware> {
    prop_oneof![
        host().prop_map(|h| Firmware::new(&h)),
        script().prop_map(|s| run(&s).0),
    ]
}

/// Everything observable of a VM: its save (or why it fails), the canonical bytes, and the
/// whole internal state.
fn observe(fw: &Firmware) -> (String, Option<Vec<u8>>, String) {
    let saved = fw.save();
    let bytes = saved.as_ref().ok().map(Snapshot::to_bytes);
    (format!("{saved:?}"), bytes, format!("{fw:?}"))
}

fn policy() -> impl Strategy<Value = RestorePolicy> {
    prop_oneof![Just(RestorePolicy::Strict), Just(RestorePolicy::Armfw)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// (a) A restore that fails changes nothing: the VM saves to the same bytes and has the
    /// same state as before.
    #[test]
    fn failed_restore_leaves_the_vm_unchanged(
        mut dest in destination(),
        snap in snapshot(),
        policy in policy(),
    ) {
        let before = observe(&dest);
        if dest.restore(&snap, policy).is_err() {
            prop_assert_eq!(observe(&dest), before);
        }
    }

    /// (a) The same for snapshots loaded from binary files with random bytes under a valid
    /// checksum: loading never panics, and a loaded one that fails to restore changes nothing.
    #[test]
    fn corrupt_files_never_half_restore(
        (_, snap, _) in saved(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        mut dest in destination(),
        policy in policy(),
    ) {
        let mut body = snap.canonical_body();
        for (at, byte) in &edits {
            let i = at.index(body.len());
            body[i] = *byte;
        }
        if let Ok(loaded) = Snapshot::load(&framed(&body)) {
            prop_assert!(loaded.validate().is_ok());
            let before = observe(&dest);
            if dest.restore(&loaded, policy).is_err() {
                prop_assert_eq!(observe(&dest), before);
            }
        }
    }

    /// (b) save → restore onto a fresh VM of the same host → save gives the same bytes, under
    /// both policies, and the pending CPU_ON starts come back.
    #[test]
    fn save_restore_save_round_trips((host, snap, pending) in saved(), policy in policy()) {
        let mut dest = Firmware::new(&host);
        let restored = dest.restore(&snap, policy).unwrap();
        prop_assert_eq!(&restored.starts, &pending);
        if snap.vm().has_run {
            // A restored VM has not run yet; its vCPUs resume.
            dest.vcpu_run(0).unwrap();
        }
        let again = dest.save_with_pending(&restored.starts).unwrap();
        prop_assert_eq!(again.to_bytes(), snap.to_bytes());
        prop_assert_eq!(Snapshot::load(&again.to_bytes()).unwrap(), snap);
    }

    /// (c) `check` agrees with the model's restore onto a fresh VM: the strict prediction is the
    /// strict restore's outcome (step and errno), and the verdict is compatible (with or
    /// without the plan) exactly when armfw's restore succeeds.
    #[test]
    fn check_agrees_with_the_restore(
        (snap, dest) in saved().prop_flat_map(|(source, snap, _)| {
            // The source host half the time, any host otherwise.
            (Just(snap), prop_oneof![Just(source), host()])
        }),
        mutations in prop::collection::vec(mutation(), 0..2),
    ) {
        let snap = mutated(snap, &mutations);
        prop_assume!(snap.validate().is_ok());
        let report = compat::check(&snap, &dest);
        let strict = Firmware::new(&dest).restore(&snap, RestorePolicy::Strict);
        match (report.strict, &strict) {
            (StrictOutcome::Ok, Ok(_)) => {}
            (StrictOutcome::Fails { step, errno }, Err(RestoreError::Failed { step: s, errno: e })) => {
                prop_assert_eq!((step, errno), (*s, *e));
            }
            (predicted, got) => prop_assert!(false, "predicted {:?}, restore gave {:?}", predicted, got),
        }
        let armfw = Firmware::new(&dest).restore(&snap, RestorePolicy::Armfw);
        prop_assert_eq!(armfw.is_ok(), report.verdict != Verdict::Incompatible, "{:?}", armfw);
        if report.verdict == Verdict::Compatible {
            prop_assert_eq!(report.strict, StrictOutcome::Ok);
        }
    }
}

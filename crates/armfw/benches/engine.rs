//! Speed of the engine on the paths a VMM takes: guest-call dispatch, firmware register
//! access, snapshot save and restore, migration checks and pool baselines.
//! `cargo bench -p armfw`; docs/performance.md has the figures and the targets.
#![allow(missing_docs)] // criterion_group! makes an undocumented function

use std::hint::black_box;

use armfw::Profile;
use armfw::abi::Function;
use armfw::compat;
use armfw::firmware::{Call, Conduit, Firmware, PtpCounter, PtpTime, Services, VcpuFeatures};
use armfw::migrate::RestorePolicy;
use armfw::snapshot::Snapshot;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const HOST: &str = "linux-6.12.117-max";
const PSCI_VERSION: u64 = Function::PsciVersion.raw() as u64;
const PSCI_FEATURES: u64 = Function::PsciFeatures.raw() as u64;
const CPU_ON: u64 = Function::CpuOn64.raw() as u64;
const AFFINITY_INFO: u64 = Function::AffinityInfo64.raw() as u64;
const CPU_OFF: u64 = Function::CpuOff.raw() as u64;

struct NoServices;

impl Services for NoServices {
    fn random_u64(&mut self) -> u64 {
        4
    }
    fn ptp_time(&mut self, _: PtpCounter) -> Option<PtpTime> {
        None
    }
}

fn host(name: &str) -> Profile {
    armfw::profile::builtin_named(name).expect("built-in host")
}

/// A VM of `n` vCPUs: vCPU 0 runs, the others are powered off (as a VMM boots one).
fn vm(n: usize) -> Firmware {
    vm_on(&host(HOST), n)
}

/// [`vm`] on a profile the caller holds (as a VMM makes its VMs from the host's profile).
fn vm_on(profile: &Profile, n: usize) -> Firmware {
    let mut fw = Firmware::new(profile);
    for i in 0..n {
        fw.add_vcpu().expect("vCPU");
        fw.init_vcpu(
            i,
            VcpuFeatures {
                psci_0_2: true,
                power_off: i > 0,
            },
        )
        .expect("init");
    }
    fw.vcpu_run(0).expect("run");
    fw
}

fn dispatch(c: &mut Criterion) {
    let mut g = c.benchmark_group("dispatch");
    let mut fw = vm(512);
    let mut s = NoServices;
    let version = Call::new(Conduit::Hvc, [PSCI_VERSION, 0, 0, 0]);
    g.bench_function("PSCI_VERSION", |b| {
        b.iter(|| {
            fw.handle_call(0, black_box(&version), &mut s)
                .expect("call")
        })
    });
    let features = Call::new(Conduit::Hvc, [PSCI_FEATURES, CPU_ON, 0, 0]);
    g.bench_function("PSCI_FEATURES", |b| {
        b.iter(|| {
            fw.handle_call(0, black_box(&features), &mut s)
                .expect("call")
        })
    });
    // vCPU 511 of 512: Aff0 = 511 % 16, Aff1 = 511 / 16.
    let target = ((511 / 16) << 8) | (511 % 16);
    let affinity = Call::new(Conduit::Hvc, [AFFINITY_INFO, target, 0, 0]);
    g.bench_function("AFFINITY_INFO level 0, 512 vCPUs", |b| {
        b.iter(|| {
            fw.handle_call(0, black_box(&affinity), &mut s)
                .expect("call")
        })
    });
    let cluster = Call::new(Conduit::Hvc, [AFFINITY_INFO, target & !0xff, 1, 0]);
    g.bench_function("AFFINITY_INFO level 1, 512 vCPUs", |b| {
        b.iter(|| {
            fw.handle_call(0, black_box(&cluster), &mut s)
                .expect("call")
        })
    });
    let on = Call::new(Conduit::Hvc, [CPU_ON, target, 0x4008_0000, 0x42]);
    g.bench_function("CPU_ON (ALREADY_ON), 512 vCPUs", |b| {
        let mut fw = vm(512);
        fw.handle_call(0, &on, &mut s).expect("first CPU_ON");
        b.iter(|| fw.handle_call(0, black_box(&on), &mut s).expect("call"))
    });
    // A steady state: the target is turned on, then turns itself off (two calls).
    let off = Call::new(Conduit::Hvc, [CPU_OFF, 0, 0, 0]);
    g.bench_function("CPU_ON (SUCCESS) + the target's CPU_OFF, 512 vCPUs", |b| {
        let mut fw = vm(512);
        b.iter(|| {
            fw.handle_call(0, black_box(&on), &mut s).expect("CPU_ON");
            fw.vcpu_run(511).expect("run");
            fw.handle_call(511, black_box(&off), &mut s)
                .expect("CPU_OFF")
        })
    });
    // Each call on a VM made just before from the host's profile, whose target has never
    // been on. (Parsing the profile for every VM, as this benchmark first did, made each
    // set-up take milliseconds: criterion then ran 1 to 20 calls between two clock reads,
    // and the clock's cost was counted as the call's.)
    let profile = host(HOST);
    g.bench_function("CPU_ON (SUCCESS), 512 vCPUs", |b| {
        b.iter_batched_ref(
            || vm_on(&profile, 512),
            |fw| {
                fw.handle_call(0, black_box(&on), &mut NoServices)
                    .expect("call")
            },
            BatchSize::SmallInput,
        )
    });
    // A guest boots: vCPU 0 turns on every other vCPU of a VM made just before, one call
    // each (the first CPU_ON of each target); the figure is per call.
    let boot: Vec<Call> = (1..512u64)
        .map(|i| {
            Call::new(
                Conduit::Hvc,
                [CPU_ON, ((i / 16) << 8) | (i % 16), 0x4008_0000, i],
            )
        })
        .collect();
    g.throughput(Throughput::Elements(511));
    g.bench_function(
        "CPU_ON (SUCCESS) of each stopped vCPU in turn, 512 vCPUs",
        |b| {
            b.iter_batched_ref(
                || vm_on(&profile, 512),
                |fw| {
                    for call in &boot {
                        black_box(
                            fw.handle_call(0, black_box(call), &mut NoServices)
                                .expect("call"),
                        );
                    }
                },
                BatchSize::SmallInput,
            )
        },
    );
    g.finish();
}

fn registers(c: &mut Criterion) {
    let mut g = c.benchmark_group("registers");
    let fw = vm(1);
    let psci = armfw::abi::FwReg::PsciVersion.id();
    let std_bmap = armfw::abi::FwReg::StdBmap.id();
    g.bench_function("get PSCI_VERSION", |b| {
        b.iter(|| fw.get_one_reg(0, black_box(psci)).expect("get"))
    });
    g.bench_function("get reg list", |b| b.iter(|| fw.reg_list(0).expect("list")));
    let mut fresh = Firmware::new(&host(HOST));
    fresh.add_vcpu().expect("vCPU");
    fresh
        .init_vcpu(
            0,
            VcpuFeatures {
                psci_0_2: true,
                power_off: false,
            },
        )
        .expect("init");
    g.bench_function("set PSCI_VERSION", |b| {
        b.iter(|| fresh.set_one_reg(0, black_box(psci), 0x10000).expect("set"))
    });
    g.bench_function("set STD_BMAP", |b| {
        b.iter(|| fresh.set_one_reg(0, black_box(std_bmap), 1).expect("set"))
    });
    g.finish();
}

/// The whole-vCPU registers on the model (`armfw::vcpu`), beside the firmware ones above.
fn vcpu_registers(c: &mut Criterion) {
    use armfw::abi::vcpu_reg::sysreg_id;
    use armfw::vcpu::{VcpuModel, VcpuSetup};
    let mut g = c.benchmark_group("vcpu registers");
    let setup = VcpuSetup {
        vcpus: 1,
        ..VcpuSetup::default()
    };
    let mut m = VcpuModel::new(&host(HOST), &setup)
        .expect("a version-2 profile")
        .expect("set-up");
    let pfr0 = sysreg_id(3, 0, 0, 4, 0);
    let isar0 = sysreg_id(3, 0, 0, 6, 0);
    let sctlr = sysreg_id(3, 0, 1, 0, 0);
    let x0 = 0x6030_0000_0010_0000;
    let mut buf = [0u8; 8];
    let isar0_value = {
        m.get_into(0, isar0, &mut buf).expect("get");
        buf
    };
    g.bench_function("get ID_AA64PFR0_EL1", |b| {
        b.iter(|| m.get_into(0, black_box(pfr0), &mut buf).expect("get"))
    });
    g.bench_function("get X0", |b| {
        b.iter(|| m.get_into(0, black_box(x0), &mut buf).expect("get"))
    });
    g.bench_function("set X0", |b| {
        b.iter(|| {
            m.set(0, black_box(x0), &[1, 0, 0, 0, 0, 0, 0, 0])
                .expect("set")
        })
    });
    g.bench_function("set SCTLR_EL1", |b| {
        b.iter(|| {
            m.set(0, black_box(sctlr), &[5, 8, 0xc5, 0x30, 0, 0, 0, 0])
                .expect("set")
        })
    });
    g.bench_function("set ID_AA64ISAR0_EL1 to the host's value (6.12)", |b| {
        b.iter(|| m.set(0, black_box(isar0), &isar0_value).expect("set"))
    });
    // AES (bits 7:4) lowered by one: every field is checked against the host's.
    let mut lowered = isar0_value;
    lowered[0] -= 0x10;
    g.bench_function(
        "set ID_AA64ISAR0_EL1 with a field lowered (field checks, 6.12)",
        |b| b.iter(|| m.set(0, black_box(isar0), &lowered).expect("set")),
    );
    g.finish();
    let mut g = c.benchmark_group("scenario");
    let text = include_str!("../../../scenarios/vcpu_restore_all_features_from_7_2_max.json");
    let s = armfw::scenario::parse(text, None).expect("scenario");
    let profile = host("linux-7.2.13-max");
    g.bench_function("360-step whole-vCPU restore on the model (7.2 max)", |b| {
        b.iter(|| {
            let mut model = armfw::scenario::ModelBackend::new(&profile);
            armfw::scenario::run(&s, &mut model)
        })
    });
    g.finish();
}

fn snapshots(c: &mut Criterion) {
    let mut g = c.benchmark_group("snapshot");
    // KVM_MAX_VCPUS is 512 on arm64: no VM, and so no snapshot, has more.
    for n in [1usize, 64, 512] {
        let fw = vm(n);
        let snap = fw.save().expect("save");
        let profile = host(HOST);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("save, {n} vCPUs"), |b| {
            b.iter(|| fw.save().expect("save"))
        });
        g.bench_function(format!("restore, {n} vCPUs"), |b| {
            b.iter_batched_ref(
                || Firmware::new(&profile),
                |fresh| {
                    fresh
                        .restore(black_box(&snap), RestorePolicy::Armfw)
                        .expect("restore")
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_function(format!("save + restore, {n} vCPUs"), |b| {
            b.iter_batched_ref(
                || Firmware::new(&profile),
                |fresh| {
                    let s = fw.save().expect("save");
                    fresh.restore(&s, RestorePolicy::Armfw).expect("restore")
                },
                BatchSize::SmallInput,
            )
        });
        let bytes = snap.to_bytes();
        g.bench_function(format!("encode + load (binary), {n} vCPUs"), |b| {
            b.iter(|| Snapshot::load(&black_box(&snap).to_bytes()).expect("load"))
        });
        g.bench_function(format!("load (binary), {n} vCPUs"), |b| {
            b.iter(|| Snapshot::load(black_box(&bytes)).expect("load"))
        });
    }
    g.finish();
}

fn checks(c: &mut Criterion) {
    let mut g = c.benchmark_group("check");
    let from = Snapshot::created_on(&host("linux-7.2.13-max"), 4).expect("state");
    let to = host("linux-6.12.117-max");
    g.throughput(Throughput::Elements(1));
    g.bench_function("7.2 default onto 6.12 (incompatible)", |b| {
        b.iter(|| compat::check(black_box(&from), black_box(&to)))
    });
    let from = Snapshot::created_on(&host("linux-6.12.117-max"), 4).expect("state");
    let to = host("linux-7.2.13-max");
    g.bench_function("6.12 default onto 7.2 (compatible)", |b| {
        b.iter(|| compat::check(black_box(&from), black_box(&to)))
    });
    g.finish();
}

/// Whole-VM checks (snapshot format 2.0): the restore of a saved whole VM under each VMM
/// policy, run on the model of the destination (`compat::whole::vmm_outcomes`).
fn whole_checks(c: &mut Criterion) {
    let mut g = c.benchmark_group("whole-VM check");
    g.sample_size(20);
    let none = armfw::abi::CpuFeatures::NONE;
    for n in [1usize, 64] {
        let from =
            Snapshot::created_whole_on(&host("linux-6.12.117-max"), n, none, true).expect("state");
        g.throughput(Throughput::Elements(1));
        for to in ["linux-7.2.13-max", "linux-6.12.117-max"] {
            let dest = host(to);
            g.bench_function(
                format!("6.12 max default, {n} vCPUs, onto {to}, 3 policies"),
                |b| b.iter(|| compat::whole::vmm_outcomes(black_box(&from), black_box(&dest))),
            );
        }
    }
    g.finish();
}

/// Fleet mobility over an inventory of many hosts that share few profiles (the built-ins).
fn fleets(c: &mut Criterion) {
    let mut g = c.benchmark_group("fleet");
    g.sample_size(10);
    // 50 distinct profiles: the built-ins, and copies of them under another kernel build
    // string (other facts, so checked on their own).
    let mut hosts = armfw::profile::builtin();
    let copies: Vec<Profile> = hosts
        .iter()
        .take(50 - hosts.len())
        .map(|p| {
            let mut parts = p.clone().into_parts();
            parts.name.push_str("-rebuilt");
            parts.kernel.push_str("-rebuilt");
            Profile::new(parts).expect("a valid profile")
        })
        .collect();
    hosts.extend(copies);
    let inventory: Vec<Profile> = hosts.iter().cycle().take(100_000).cloned().collect();
    let scope = compat::fleet::Scope::Whole(armfw::abi::CpuFeatures::NONE);
    g.bench_function(
        format!("100000 hosts over {} profiles, whole VMs", hosts.len()),
        |b| b.iter(|| compat::fleet::mobility(black_box(&inventory), scope)),
    );
    g.finish();
}

fn baselines(c: &mut Criterion) {
    let mut g = c.benchmark_group("baseline");
    g.sample_size(20);
    let hosts = armfw::profile::builtin();
    for n in [1_000usize, 100_000] {
        let pool: Vec<Profile> = hosts.iter().cycle().take(n).cloned().collect();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("{n} profiles"), |b| {
            b.iter(|| compat::baseline(black_box(&pool)).expect("baseline"))
        });
        // The CPU baseline of the same pool (its 24 distinct hosts judged once each).
        g.bench_function(format!("cpu, {n} profiles"), |b| {
            b.iter(|| {
                compat::cpu_baseline(black_box(&pool), Some(armfw::abi::CpuFeatures::NONE))
                    .expect("cpu baseline")
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    dispatch,
    registers,
    vcpu_registers,
    snapshots,
    checks,
    whole_checks,
    fleets,
    baselines
);
criterion_main!(benches);

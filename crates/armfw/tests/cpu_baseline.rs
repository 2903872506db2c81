//! The CPU baseline against the restore sequence: a VM created with a pool's baseline on any
//! host the baseline covers restores on every other covered host under armfw's plan, and the
//! guest then reads the same CPU (every ID register, implementation id, CTR_EL0 and cache
//! geometry register as saved). The baseline and the restore reach KVM's rules by different
//! paths (the baseline asks the model field by field; the restore replays a saved VM), so
//! this holds them against each other.

use armfw::Firmware;
use armfw::abi::CpuFeatures;
use armfw::compat::{self, cpu_baseline, whole};
use armfw::migrate::ModelVm;
use armfw::migrate::sequence::{self, SaveSource};
use armfw::profile::{Profile, builtin, builtin_named};
use armfw::snapshot::Snapshot;

fn pool(names: &[&str]) -> Vec<Profile> {
    names
        .iter()
        .map(|n| builtin_named(n).expect("built-in profile"))
        .collect()
}

/// The registers that describe the CPU, with their saved values, of vCPU 0 of `s`.
fn cpu_view(s: &Snapshot) -> Vec<(u64, Vec<u8>)> {
    let m = s.machine().expect("a whole-VM state");
    m.reg_list
        .iter()
        .filter(|&&id| describes(id))
        .map(|&id| (id, m.value(0, id).expect("saved").value.clone()))
        .collect()
}

/// ID registers (op0 3, op1 0, CRn 0), AIDR/CLIDR (op1 1, CRn 0), CTR_EL0, the demux.
fn describes(id: u64) -> bool {
    let class = (id >> 16) & 0xfff;
    if class == 0x11 {
        return true;
    }
    if class != 0x13 {
        return false;
    }
    let (op0, op1, crn) = ((id >> 14) & 3, (id >> 11) & 7, (id >> 7) & 0xf);
    let crm = (id >> 3) & 0xf;
    op0 == 3 && crn == 0 && (op1 == 0 || op1 == 1 || (op1 == 3 && crm == 0))
}

/// Every covered pair of `names` restores under the plan with the CPU unchanged; returns
/// (covered hosts, pairs checked).
fn holds(names: &[&str], features: Option<CpuFeatures>) -> (usize, usize) {
    let p = pool(names);
    let b = cpu_baseline(&p, features).expect("a baseline");
    let fw = compat::baseline(&p).ok();
    let covered: Vec<usize> = (0..p.len()).filter(|&i| b.covers(i)).collect();
    assert!(!covered.is_empty(), "{names:?}: every host left out");
    let states: Vec<Snapshot> = covered
        .iter()
        .map(|&a| {
            Snapshot::created_with_baseline(&p[a], 1, &b, fw.as_ref(), true)
                .unwrap_or_else(|e| panic!("creating on {}: {e}", names[a]))
        })
        .collect();
    // Every covered host presents the same CPU.
    let first = cpu_view(&states[0]);
    for (s, &a) in states.iter().zip(&covered) {
        let view = cpu_view(s);
        for (id, v) in &first {
            if let Some((_, w)) = view.iter().find(|(i, _)| i == id) {
                assert_eq!(
                    v, w,
                    "{}: {id:#x} differs from {}",
                    names[a], names[covered[0]]
                );
            }
        }
    }
    let mut pairs = 0;
    for (s, &a) in states.iter().zip(&covered) {
        for &d in &covered {
            let plan = whole::plan(s, &p[d]);
            assert!(
                plan.restores(),
                "{} -> {}: {:?} {:?}",
                names[a],
                names[d],
                plan.refused,
                plan.result
            );
            let mut vm = ModelVm::new(Firmware::new(&p[d]));
            sequence::restore_with(&mut vm, s, plan.writes())
                .unwrap_or_else(|e| panic!("{} -> {}: {e:?}", names[a], names[d]));
            for (id, v) in cpu_view(s) {
                let back = vm.get_reg(0, id).expect("read back");
                assert_eq!(back, v, "{} -> {}: {id:#x}", names[a], names[d]);
            }
            pairs += 1;
        }
    }
    // A host left out cannot present the covered hosts' CPU: a VM created with the baseline
    // on a covered host does not restore there with its CPU unchanged.
    for l in &b.left_out {
        let dest = &p[l.host];
        for s in &states {
            let plan = whole::plan(s, dest);
            let mut vm = ModelVm::new(Firmware::new(dest));
            let same = sequence::restore_with(&mut vm, s, plan.writes()).is_ok()
                && cpu_view(s)
                    .iter()
                    .all(|(id, v)| vm.get_reg(0, *id).ok().as_ref() == Some(v));
            assert!(
                !same || !plan.restores(),
                "{} was left out ({}) but takes the baseline's CPU",
                names[l.host],
                l.reason
            );
        }
    }
    (covered.len(), pairs)
}

#[test]
fn one_cpu_model_across_the_three_kernels() {
    let names = [
        "linux-6.1.192-cortex-a72",
        "linux-6.12.117-cortex-a72",
        "linux-7.2.13-cortex-a72",
    ];
    let (covered, pairs) = holds(&names, None);
    // The VMs the model makes have no vGIC: from 6.12 the first run clears the GIC fields,
    // which 6.1 keeps and cannot change, so 6.1 is left out.
    assert_eq!((covered, pairs), (2, 4));
    let b = cpu_baseline(&pool(&names), None).expect("baseline");
    assert_eq!(b.left_out.len(), 1);
    assert_eq!(b.left_out[0].host, 0);
    assert!(
        b.left_out[0].reason.contains(".GIC:"),
        "{}",
        b.left_out[0].reason
    );
    // 6.12 and 7.2 differ in nothing a guest reads.
    assert!(b.registers.is_empty(), "{:?}", b.fields);
    // Without the baseline the 6.12/7.2 VMs cannot go to 6.1: the cache geometry differs.
    let p = pool(&names);
    let plain = Snapshot::created_whole_on(&p[1], 1, CpuFeatures::NONE, true).expect("state");
    assert!(!whole::plan(&plain, &p[0]).restores());
}

#[test]
fn cpu_models_on_a_kernel_with_writable_implementation_ids() {
    let names = ["linux-7.2.13-cortex-a72", "linux-7.2.13-cortex-a57"];
    let (covered, pairs) = holds(&names, None);
    assert_eq!((covered, pairs), (2, 4));
    let b = cpu_baseline(&pool(&names), None).expect("baseline");
    assert_eq!(b.implementations.len(), 2, "two MIDR values");
    let midr = b
        .fields
        .iter()
        .find(|f| f.name() == "MIDR_EL1")
        .expect("MIDR differs");
    assert_eq!(
        midr.value, 0x410f_d083,
        "the first host's, which both can present"
    );
    let recipe = b.recipe(&pool(&names)[1]);
    assert!(recipe.writable_imp_id_regs);
    assert!(
        recipe
            .writes
            .iter()
            .any(|&(id, v)| id == 0x6030_0000_0013_c000 && v == 0x410f_d083)
    );
}

#[test]
fn hosts_at_other_workaround_levels_are_left_out() {
    // The cortex-a53 is not affected by Spectre v2, v4 or BHB; the a72 and a57 are, and
    // under QEMU without EL3 firmware nothing mitigates them: their levels differ.
    let names = [
        "linux-7.2.13-cortex-a72",
        "linux-7.2.13-cortex-a57",
        "linux-7.2.13-cortex-a53",
    ];
    let (covered, _) = holds(&names, None);
    assert_eq!(covered, 2);
    let b = cpu_baseline(&pool(&names), None).expect("baseline");
    assert_eq!(b.left_out.len(), 1);
    assert_eq!(b.left_out[0].host, 2);
    assert!(
        b.left_out[0].reason.starts_with("SMCCC_ARCH_WORKAROUND_"),
        "{}",
        b.left_out[0].reason
    );
}

#[test]
fn kernels_before_6_15_cannot_bridge_implementation_ids() {
    let names = ["linux-6.12.117-cortex-a72", "linux-6.12.117-cortex-a53"];
    let (covered, _) = holds(&names, None);
    assert_eq!(covered, 1);
    let b = cpu_baseline(&pool(&names), None).expect("baseline");
    assert!(
        b.left_out[0].reason.starts_with("MIDR_EL1:"),
        "{}",
        b.left_out[0].reason
    );
}

#[test]
fn the_migration_hosts_and_every_built_in_host() {
    let six = [
        "linux-6.1.192-max",
        "linux-6.12.117-max",
        "linux-7.2.13-max",
        "linux-6.1.192-cortex-a72",
        "linux-6.12.117-cortex-a72",
        "linux-7.2.13-cortex-a72",
    ];
    holds(&six, None);
    holds(&six, Some(CpuFeatures::NONE));
    let all: Vec<String> = builtin().iter().map(|p| p.name().to_string()).collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    holds(&all, None);
    holds(&all, Some(CpuFeatures::NONE));
}

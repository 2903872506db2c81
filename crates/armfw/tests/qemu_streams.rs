//! Real QEMU streams (fuzz/seeds/qemu_stream/: saved by Debian's QEMU 7.2, 10.0 and 11.1
//! inside emulated Debian 6.12 and 7.2 hosts on `-cpu neoverse-n1` by conformance/qemu, guest
//! RAM left out by `cargo run -p armfw --example qemu_seed`) against the hosts' probed
//! profiles and QEMU's own outcomes of loading them (recorded by conformance/qemu,
//! 2026-12-02).

use armfw::abi::OneRegId;
use armfw::qemu::policy::is_cpreg;
use armfw::qemu::{HostCpu, Incoming, QemuRelease, predict, stream};

fn seed(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../fuzz/seeds/qemu_stream/{name}.qevm",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const PMU_OFF: HostCpu = HostCpu {
    pmu: false,
    sve: true,
    pauth: true,
};

const SEEDS: [(&str, &str, &str); 5] = [
    (
        "bookworm-6.12-neoverse-n1",
        "virt-7.2",
        "linux-6.12.117-neoverse-n1",
    ),
    (
        "bookworm-7-neoverse-n1",
        "virt-7.2",
        "linux-7.2.13-neoverse-n1",
    ),
    (
        "trixie-6.12-neoverse-n1",
        "virt-10.0",
        "linux-6.12.117-neoverse-n1",
    ),
    (
        "sid-6.12-neoverse-n1",
        "virt-11.1",
        "linux-6.12.117-neoverse-n1",
    ),
    ("sid-7-neoverse-n1", "virt-11.1", "linux-7.2.13-neoverse-n1"),
];

#[test]
fn the_streams_carry_what_the_probe_saw() {
    for (name, machine, host) in SEEDS {
        let s = stream::read(&seed(name)[..]).unwrap();
        assert_eq!(s.machine_type.as_deref(), Some(machine), "{name}");
        let ram = s.ram_blocks.iter().find(|b| b.0 == "mach-virt.ram");
        assert_eq!(ram.map(|b| b.1), Some(128 << 20), "{name}: -m 128");
        assert_eq!(s.vcpus.len(), 1, "{name}: -smp 1");
        let v = &s.vcpus[0];
        // QEMU's list is KVM's, core and SVE ids left out, sorted: the probe's list.
        let p = armfw::profile::builtin_named(host).unwrap();
        let features = PMU_OFF.features(&p);
        assert_eq!(v.has_sve(), !features.is_empty(), "{name}");
        let set = p.vcpu().unwrap().feature_set(features).unwrap();
        let mut listed: Vec<u64> = set
            .registers
            .0
            .iter()
            .map(|r| r.0)
            .filter(|&id| is_cpreg(id))
            .collect();
        listed.sort_unstable();
        let ids: Vec<u64> = v.cpregs.iter().map(|r| r.0).collect();
        assert_eq!(ids, listed, "{name}");
        // The ID registers (op0 3, op1 0, CRn 0) hold the values the probe read.
        for &(id, value) in &v.cpregs {
            let r = OneRegId(id);
            if r.class() == 0x13 && (id >> 11) & 0x1f == 0x18 && (id >> 7) & 0xf == 0 {
                let reset = set.registers.get(id).unwrap().low_u64();
                assert_eq!(value, reset, "{name}: {id:#x}");
            }
        }
        // An AArch64 kernel at EL1, SP_EL1: PSTATE.M = EL1h.
        assert_eq!(v.pstate & 0x1f, 0b00101, "{name}");
    }
}

#[test]
fn the_predictions_are_what_qemu_did() {
    let host = |n: &str| armfw::profile::builtin_named(n).unwrap();
    let n1_612 = host("linux-6.12.117-neoverse-n1");
    let n1_72 = host("linux-7.2.13-neoverse-n1");
    // (stream, destination, QEMU's outcome: loaded, or the line QEMU printed first).
    let cases = [
        (
            "bookworm-6.12-neoverse-n1",
            &n1_72,
            false,
            "Invalid value 184 expecting positive value <= 182",
        ),
        (
            "bookworm-7-neoverse-n1",
            &n1_612,
            false,
            "error while loading state for instance 0x0 of device 'cpu'",
        ),
        (
            "trixie-6.12-neoverse-n1",
            &n1_72,
            false,
            "Invalid value 184 expecting positive value <= 182",
        ),
        ("sid-6.12-neoverse-n1", &n1_72, true, ""),
        (
            "sid-7-neoverse-n1",
            &n1_612,
            false,
            "Could not set register fw reg 0 to 10003 (is 10001)",
        ),
        ("sid-7-neoverse-n1", &n1_72, true, ""),
    ];
    for (name, dest, loads, first) in cases {
        let s = stream::read(&seed(name)[..]).unwrap();
        let release = QemuRelease::from_version(s.qemu_version().unwrap()).unwrap();
        let incoming: Vec<Incoming> = s.vcpus.iter().map(Incoming::from).collect();
        let p = predict(release, &incoming, dest, PMU_OFF);
        assert_eq!(p.loads(), loads, "{name} -> {}: {:?}", dest.name(), p.stop);
        if !loads {
            assert_eq!(
                p.messages().first().map_or("", String::as_str),
                first,
                "{name} -> {}",
                dest.name()
            );
        }
    }
}

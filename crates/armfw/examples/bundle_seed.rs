//! Writes the seed bundles of the `bundle_parse` fuzz target (fuzz/seeds/bundle_parse/):
//! small, reproducible bundles of whole VMs of built-in hosts, with a few pages of RAM, a
//! vGIC of the shape armfw-vmm saves, and one with armfw's engine and implementations.
//!
//! `cargo run -p armfw --example bundle_seed -- fuzz/seeds/bundle_parse`

use armfw::abi::CpuFeatures;
use armfw::bundle::{
    Bundle, DEVICES_FORMAT, Devices, GicReg, GicState, GicSysReg, MemoryRun, RamRange,
};
use armfw::snapshot::Snapshot;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/seeds/bundle_parse".into());
    for (name, vcpus, engine) in [
        ("linux-7.2.13-max", 2, false),
        ("linux-6.12.117-cortex-a72", 1, true),
    ] {
        let p = armfw::profile::builtin_named(name).expect("a built-in host");
        let whole =
            Snapshot::created_whole_on(&p, vcpus, CpuFeatures::NONE, true).expect("a whole VM");
        let devices = Devices {
            format: DEVICES_FORMAT.into(),
            ram: vec![RamRange {
                base: 0x4000_0000,
                size: 0x10_0000,
            }],
            gic: GicState {
                dist_base: 0x0800_0000,
                redist_base: 0x080a_0000,
                nr_irqs: 64,
                dist: vec![GicReg(0, 0x12), GicReg(0x104, 0x2), GicReg(0x6100, 0)],
                redist: vec![vec![GicReg(0, 0), GicReg(0x1_0100, 0xffff)]; vcpus],
                cpu: vec![vec![GicSysReg(0xc665, 7), GicSysReg(0xc230, 0xf0)]; vcpus],
                line_levels: vec![GicReg(32, 0)],
            },
            engine: engine.then(|| Snapshot::created_on(&p, vcpus).expect("a VM").to_json()),
            implementations: if engine {
                vec![[0x410f_d083, 0, 0]]
            } else {
                Vec::new()
            },
            vmm: serde_json::json!({"console": {"uart": {"ier": 2}}}),
        };
        let page: Vec<u8> = (0..0x1000u32).map(|i| (i % 251) as u8).collect();
        let runs = [
            MemoryRun {
                gpa: 0x4000_0000,
                data: &page,
            },
            MemoryRun {
                gpa: 0x400f_f000,
                data: &page,
            },
        ];
        let bytes = Bundle::encode(&whole, &devices, &runs).expect("a valid bundle");
        let path = format!("{dir}/{name}-{vcpus}vcpu.bundle");
        std::fs::write(&path, &bytes).expect("the seed written");
        println!("{path}: {} bytes", bytes.len());
    }
}

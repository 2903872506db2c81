use super::*;
use crate::abi::CpuFeatures;

const RAM: RamRange = RamRange {
    base: 0x4000_0000,
    size: 0x10_0000,
};

fn whole(vcpus: usize) -> Snapshot {
    let p = crate::profile::builtin_named("linux-7.2.13-max").unwrap();
    Snapshot::created_whole_on(&p, vcpus, CpuFeatures::NONE, true).unwrap()
}

fn devices(vcpus: usize) -> Devices {
    Devices {
        format: DEVICES_FORMAT.into(),
        ram: vec![RAM],
        gic: GicState {
            dist_base: 0x0800_0000,
            redist_base: 0x080a_0000,
            nr_irqs: 64,
            dist: vec![GicReg(0, 0x12), GicReg(0x104, 0x2)],
            redist: vec![vec![GicReg(0x1_0100, 0xffff)]; vcpus],
            cpu: vec![vec![GicSysReg(0xc665, 7)]; vcpus],
            line_levels: vec![GicReg(32, 0x2)],
        },
        engine: None,
        implementations: Vec::new(),
        vmm: serde_json::json!({"uart": {"ier": 2}}),
    }
}

/// RAM with two non-zero stretches: pages 1..3 and the last page.
fn ram() -> Vec<u8> {
    let mut m = vec![0u8; usize::try_from(RAM.size).unwrap()];
    m[0x1000] = 1;
    m[0x2fff] = 2;
    let last = m.len() - 1;
    m[last] = 3;
    m
}

fn encoded() -> (Snapshot, Devices, Vec<u8>) {
    let (s, d, m) = (whole(2), devices(2), ram());
    let bytes = Bundle::encode(&s, &d, &nonzero_runs(RAM.base, &m)).unwrap();
    (s, d, bytes)
}

#[test]
fn nonzero_runs_are_the_pages_with_a_set_byte() {
    let m = ram();
    let runs = nonzero_runs(RAM.base, &m);
    let got: Vec<(u64, usize)> = runs.iter().map(|r| (r.gpa, r.data.len())).collect();
    assert_eq!(
        got,
        vec![
            (RAM.base + 0x1000, 0x2000),
            (RAM.base + RAM.size - 0x1000, 0x1000)
        ]
    );
}

#[test]
fn a_bundle_reads_back_what_was_written() {
    let (s, d, bytes) = encoded();
    let b = Bundle::parse(&bytes).unwrap();
    assert_eq!(b.snapshot, s);
    assert_eq!(b.devices, d);
    assert_eq!(b.engine, None);
    assert_eq!(b.memory_bytes(), 0x3000);
    // The pages come back where they were.
    let mut m = vec![0u8; usize::try_from(RAM.size).unwrap()];
    for r in &b.memory {
        let at = usize::try_from(r.gpa - RAM.base).unwrap();
        m[at..at + r.data.len()].copy_from_slice(r.data);
    }
    assert_eq!(m, ram());
}

#[test]
fn the_snapshot_reads_from_a_prefix_of_the_file() {
    let (s, _, bytes) = encoded();
    let h = BundleHeader::parse(&bytes[..HEADER_LEN]).unwrap();
    assert_eq!(h.file_len(), bytes.len() as u64);
    assert_eq!(h.snapshot(&bytes[..h.snapshot_end()]).unwrap(), s);
    let e = h.snapshot(&bytes[..h.snapshot_end() - 1]).unwrap_err();
    assert!(
        matches!(
            e,
            BundleError::Truncated {
                what: "the snapshot",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn every_cut_of_a_bundle_is_refused_without_panicking() {
    let (_, _, bytes) = encoded();
    for len in (0..bytes.len()).step_by(97).chain([bytes.len() - 1]) {
        let e = Bundle::parse(&bytes[..len]).unwrap_err();
        let line = e.to_string();
        assert!(!line.contains('\n'), "{line}");
        assert!(
            matches!(e, BundleError::Truncated { .. } | BundleError::NotABundle),
            "{len}: {line}"
        );
    }
}

#[test]
fn a_flipped_byte_anywhere_is_refused() {
    let (_, _, bytes) = encoded();
    for at in (0..bytes.len()).step_by(61) {
        let mut b = bytes.clone();
        b[at] ^= 0x40;
        assert!(Bundle::parse(&b).is_err(), "byte {at}");
    }
}

#[test]
fn a_changed_memory_byte_fails_the_body_checksum() {
    let (_, _, mut bytes) = encoded();
    let n = bytes.len();
    bytes[n - 5] ^= 1; // the last RAM byte
    let e = Bundle::parse(&bytes).unwrap_err();
    assert!(
        matches!(e, BundleError::Checksum { what: "body", .. }),
        "{e}"
    );
}

#[test]
fn a_newer_version_is_refused_naming_it() {
    let (_, _, mut bytes) = encoded();
    bytes[10] = 1; // minor 1
    let crc = crc32(&bytes[..28]);
    bytes[28..32].copy_from_slice(&crc.to_le_bytes());
    let e = Bundle::parse(&bytes).unwrap_err();
    assert_eq!(
        e.to_string(),
        "bundle format version 1.1 is not readable: this armfw reads armfw-bundle 1.0"
    );
}

#[test]
fn trailing_bytes_are_refused() {
    let (_, _, mut bytes) = encoded();
    bytes.push(0);
    assert_eq!(
        Bundle::parse(&bytes).unwrap_err(),
        BundleError::TrailingBytes(1)
    );
}

#[test]
fn a_firmware_only_snapshot_is_not_a_bundle() {
    let p = crate::profile::builtin_named("linux-7.2.13-max").unwrap();
    let fw = Snapshot::created_on(&p, 2).unwrap();
    let e = Bundle::encode(&fw, &devices(2), &[]).unwrap_err();
    assert!(matches!(e, BundleError::Snapshot(_)), "{e}");
}

#[test]
fn devices_must_match_the_snapshot() {
    let e = Bundle::encode(&whole(2), &devices(3), &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "devices: gic: 3 redistributors and 3 CPU interfaces for 2 vCPUs"
    );
    let mut d = devices(2);
    d.gic.line_levels = vec![GicReg(40, 1)];
    let e = Bundle::encode(&whole(2), &d, &[]).unwrap_err();
    assert!(
        e.to_string().starts_with("devices: gic.line_levels[0]"),
        "{e}"
    );
    let mut d = devices(2);
    d.ram.push(RamRange {
        base: RAM.base,
        size: 0x1000,
    });
    let e = Bundle::encode(&whole(2), &d, &[]).unwrap_err();
    assert!(e.to_string().starts_with("devices: ram[1]"), "{e}");
}

#[test]
fn a_run_outside_ram_is_refused_at_writing_and_at_reading() {
    let page = [1u8; 0x1000];
    let outside = [MemoryRun {
        gpa: RAM.base + RAM.size,
        data: &page,
    }];
    let e = Bundle::encode(&whole(2), &devices(2), &outside).unwrap_err();
    assert!(matches!(e, BundleError::Memory { index: 0, .. }), "{e}");
    let unaligned = [MemoryRun {
        gpa: RAM.base + 8,
        data: &page,
    }];
    assert!(Bundle::encode(&whole(2), &devices(2), &unaligned).is_err());
    let descending = [
        MemoryRun {
            gpa: RAM.base + 0x2000,
            data: &page,
        },
        MemoryRun {
            gpa: RAM.base,
            data: &page,
        },
    ];
    let e = Bundle::encode(&whole(2), &devices(2), &descending).unwrap_err();
    assert!(matches!(e, BundleError::Memory { index: 1, .. }), "{e}");
}

#[test]
fn an_unknown_devices_field_is_named() {
    let (s, d, _) = encoded();
    let mut v = serde_json::to_value(&d).unwrap();
    v["gic"]["extra"] = serde_json::json!(1);
    let e = parse_devices(v.to_string().as_bytes()).unwrap_err();
    assert!(e.to_string().contains("gic.extra"), "{e}");
    let _ = s;
}

#[test]
fn the_engine_snapshot_is_read_and_checked() {
    let p = crate::profile::builtin_named("linux-7.2.13-max").unwrap();
    let engine = Snapshot::created_on(&p, 2).unwrap();
    let mut d = devices(2);
    d.engine = Some(engine.to_json());
    d.implementations = vec![[0x410f_d083, 0, 0], [0x411f_d070, 0, 0]];
    let bytes = Bundle::encode(&whole(2), &d, &[]).unwrap();
    let b = Bundle::parse(&bytes).unwrap();
    assert_eq!(b.engine, Some(engine.clone()));
    assert_eq!(b.implementations()[1].midr, 0x411f_d070);
    let mut d = devices(2);
    d.engine = Some(Snapshot::created_on(&p, 1).unwrap().to_json());
    let e = Bundle::encode(&whole(2), &d, &[]).unwrap_err();
    assert_eq!(e.to_string(), "devices: engine: 1 vCPUs, the snapshot 2");
}

#[test]
fn implementations_need_an_engine() {
    let mut d = devices(2);
    d.implementations = vec![[1, 0, 0]];
    let e = Bundle::encode(&whole(2), &d, &[]).unwrap_err();
    assert_eq!(e.to_string(), "devices: implementations without an engine");
}

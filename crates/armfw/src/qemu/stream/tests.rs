//! The reader against streams laid out as QEMU's `migration/savevm.c` writes them, built
//! here field by field with their device description, and against every damaged copy.

use serde_json::{Value, json};

use super::*;

const PAGE: u64 = 4096;

/// A stream writer after QEMU's: sections, RAM records, and the description of what it
/// wrote.
#[derive(Default)]
struct Writer {
    out: Vec<u8>,
    devices: Vec<Value>,
    next_id: u32,
    config: bool,
}

impl Writer {
    fn new() -> Self {
        let mut w = Writer::default();
        w.out.extend(MAGIC.to_be_bytes());
        w.out.extend(VERSION.to_be_bytes());
        w
    }

    fn u8(&mut self, v: u8) -> &mut Self {
        self.out.push(v);
        self
    }

    fn be32(&mut self, v: u32) -> &mut Self {
        self.out.extend(v.to_be_bytes());
        self
    }

    fn be64(&mut self, v: u64) -> &mut Self {
        self.out.extend(v.to_be_bytes());
        self
    }

    fn idstr(&mut self, s: &str) -> &mut Self {
        self.u8(u8::try_from(s.len()).unwrap());
        self.out.extend(s.as_bytes());
        self
    }

    /// The configuration section as QEMU before 8.2 writes it: the machine type and the
    /// target-page-bits subsection.
    fn configuration(&mut self, machine: &str) -> &mut Self {
        self.config = true;
        self.u8(section::CONFIGURATION)
            .be32(u32::try_from(machine.len()).unwrap());
        self.out.extend(machine.as_bytes());
        self.u8(section::SUBSECTION)
            .idstr("configuration/target-page-bits")
            .be32(1)
            .be32(12)
    }

    fn header(&mut self, ty: u8, name: &str, instance: u32, version: u32) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        self.u8(ty)
            .be32(id)
            .idstr(name)
            .be32(instance)
            .be32(version);
        id
    }

    fn footer(&mut self, id: u32) -> &mut Self {
        self.u8(section::FOOTER).be32(id)
    }

    /// Guest RAM: one block of `pages` pages, page 0 and 2 with data, the others zero, in a
    /// start section and an end section.
    fn ram(&mut self, block: &str, pages: u64) -> &mut Self {
        let id = self.header(section::START, "ram", 0, 4);
        self.be64((pages * PAGE) | ram::MEM_SIZE)
            .idstr(block)
            .be64(pages * PAGE);
        self.be64(ram::EOS).footer(id);
        self.u8(section::END).be32(id);
        for p in 0..pages {
            let cont = if p == 0 { 0 } else { ram::CONTINUE };
            if p % 2 == 0 {
                self.be64((p * PAGE) | ram::PAGE | cont);
                if cont == 0 {
                    self.idstr(block);
                }
                let fill = u8::try_from(p % 251).unwrap() + 1;
                self.out.extend(std::iter::repeat_n(fill, 4096));
            } else {
                self.be64((p * PAGE) | ram::ZERO | cont).u8(0);
            }
        }
        self.be64(ram::EOS).footer(id)
    }

    /// A full section with the fields `(name, type, element size, count, bytes)` and the
    /// subsections `(name, [(field name, bytes)])`.
    fn device(
        &mut self,
        name: &str,
        instance: u32,
        fields: &[(&str, &str, u64, u64, Vec<u8>)],
        subsections: &[(&str, Vec<u8>)],
    ) -> &mut Self {
        let id = self.header(section::FULL, name, instance, 1);
        let mut fdesc = Vec::new();
        for (fname, ty, size, count, bytes) in fields {
            assert_eq!(bytes.len() as u64, size * count);
            self.out.extend(bytes);
            let mut f = json!({"name": fname, "type": ty, "size": size});
            if *count > 1 {
                f["array_len"] = json!(count);
            }
            fdesc.push(f);
        }
        let mut sdesc = Vec::new();
        for (sname, bytes) in subsections {
            self.u8(section::SUBSECTION).idstr(sname).be32(1);
            self.out.extend(bytes);
            sdesc.push(json!({"vmsd_name": sname, "version": 1, "fields": [
                {"name": "data", "type": "buffer", "size": bytes.len()}]}));
        }
        let mut d = json!({"name": name, "instance_id": instance, "vmsd_name": name,
            "version": 1, "fields": fdesc});
        if !sdesc.is_empty() {
            d["subsections"] = json!(sdesc);
        }
        self.devices.push(d);
        self.footer(id)
    }

    /// A full section of these bytes, described by `fields` (JSON).
    fn raw_device(&mut self, name: &str, bytes: &[u8], fields: Value) -> &mut Self {
        let id = self.header(section::FULL, name, 0, 1);
        self.out.extend(bytes);
        self.devices
            .push(json!({"name": name, "instance_id": 0, "vmsd_name": name,
            "version": 1, "fields": fields}));
        self.footer(id)
    }

    /// An arm vCPU section with these cpregs.
    fn cpu(&mut self, instance: u32, pc: u64, pstate: u32, cpregs: &[(u64, u64)]) -> &mut Self {
        let n = cpregs.len() as u64;
        let be = |v: &[u64]| v.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
        let ids: Vec<u64> = cpregs.iter().map(|c| c.0).collect();
        let values: Vec<u64> = cpregs.iter().map(|c| c.1).collect();
        let mut fields = vec![
            ("env.regs", "uint32", 4, 16, vec![0; 64]),
            ("env.xregs", "uint64", 8, 32, vec![0x11; 256]),
            ("env.pc", "uint64", 8, 1, pc.to_be_bytes().to_vec()),
            ("cpsr", "cpsr", 4, 1, pstate.to_be_bytes().to_vec()),
            (
                "cpreg_vmstate_array_len",
                "int32 le",
                4,
                1,
                u32::try_from(n).unwrap().to_be_bytes().to_vec(),
            ),
        ];
        if n > 0 {
            fields.push(("cpreg_vmstate_indexes", "uint64", 8, n, be(&ids)));
            fields.push(("cpreg_vmstate_values", "uint64", 8, n, be(&values)));
        }
        fields.push(("env.exclusive_addr", "uint64", 8, 1, vec![0; 8]));
        self.device("cpu", instance, &fields, &[("cpu/vfp", vec![0x22; 520])])
    }

    fn finish(&mut self) -> Vec<u8> {
        self.u8(section::EOF);
        let desc = json!({"page_size": PAGE, "devices": self.devices}).to_string();
        self.u8(section::VMDESCRIPTION)
            .be32(u32::try_from(desc.len()).unwrap());
        self.out.extend(desc.as_bytes());
        std::mem::take(&mut self.out)
    }
}

const CPREGS: [(u64, u64); 3] = [
    (0x6030_0000_0013_c000, 0x30d0_0800),
    (0x6030_0000_0013_c002, 0x1),
    (0x6030_0000_0014_0000, 0x0123_4567_89ab_cdef),
];

fn sample() -> Vec<u8> {
    let mut w = Writer::new();
    w.configuration("virt-10.0").ram("mach-virt.ram", 6);
    w.device(
        "timer",
        0,
        &[("cpu_ticks_offset", "int64", 8, 1, vec![0; 8])],
        &[],
    );
    w.cpu(0, 0xffff_8000_1000_0000, 0x3c5, &CPREGS)
        .cpu(1, 0x4000_0000, 0x3c5, &CPREGS[..2]);
    w.finish()
}

#[test]
fn a_stream_gives_its_vcpus_machine_and_ram() {
    let bytes = sample();
    let s = read(&bytes[..]).unwrap();
    assert_eq!(s.machine_type.as_deref(), Some("virt-10.0"));
    assert_eq!(s.qemu_version(), Some((10, 0)));
    assert_eq!(s.page_size, PAGE);
    assert_eq!(s.ram_blocks, vec![("mach-virt.ram".to_owned(), 6 * PAGE)]);
    assert_eq!(s.vcpus.len(), 2);
    assert_eq!(s.vcpus[0].cpregs, CPREGS);
    assert_eq!(s.vcpus[0].pc, 0xffff_8000_1000_0000);
    assert_eq!(s.vcpus[0].pstate, 0x3c5);
    assert_eq!(s.vcpus[1].cpregs, CPREGS[..2]);
    assert_eq!(s.vcpus[1].subsections, ["cpu/vfp"]);
    assert!(!s.vcpus[1].has_sve());
    let names: Vec<&str> = s.devices.iter().map(|d| d.0.as_str()).collect();
    assert_eq!(names, ["timer", "cpu", "cpu"]);
    assert_eq!(s.len, bytes.len() as u64);
}

#[test]
fn without_ram_keeps_everything_but_the_pages() {
    let bytes = sample();
    let s = read(&bytes[..]).unwrap();
    let small = without_ram(&bytes[..], &s).unwrap();
    // 3 data pages and 3 zero pages, each with its 8-byte header; the first names its block.
    let pages = 3 * (8 + PAGE) + 3 * (8 + 1) + 1 + 13;
    assert_eq!(small.len() as u64, bytes.len() as u64 - pages);
    let t = read(&small[..]).unwrap();
    assert_eq!(t.vcpus, s.vcpus);
    assert_eq!(t.ram_blocks, s.ram_blocks);
    assert_eq!(t.devices, s.devices);
}

#[test]
fn every_truncation_is_one_error_line() {
    let full = sample();
    let s = read(&full[..]).unwrap();
    let bytes = without_ram(&full[..], &s).unwrap();
    for n in 0..bytes.len() {
        let e = read(&bytes[..n]).unwrap_err();
        let line = e.to_string();
        assert!(!line.contains('\n'), "{line}");
        assert!(e.offset.is_some_and(|o| o <= n as u64), "{n}: {line}");
    }
}

#[test]
fn every_damaged_byte_outside_the_pages_is_read_or_refused() {
    let bytes = sample();
    let s = read(&bytes[..]).unwrap();
    let small = without_ram(&bytes[..], &s).unwrap();
    for i in 0..small.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut b = small.clone();
            b[i] ^= flip;
            if let Err(e) = read(&b[..]) {
                assert!(!e.to_string().contains('\n'));
            }
        }
    }
}

#[test]
fn the_errors_say_what_and_which_qemu() {
    let bytes = sample();
    let kind = |b: &[u8]| read(b).unwrap_err().kind;
    let mut b = bytes.clone();
    b[0] = b'X';
    assert_eq!(kind(&b), StreamErrorKind::NotAStream);
    let mut b = bytes.clone();
    b[7] = 2;
    assert_eq!(kind(&b), StreamErrorKind::Version(2));
    // Without the description.
    let s = read(&bytes[..]).unwrap();
    let cut = bytes
        .iter()
        .rposition(|&x| x == section::VMDESCRIPTION)
        .unwrap();
    assert_eq!(kind(&bytes[..cut]), StreamErrorKind::NoDescription);
    // A RAM record QEMU does not write, in a stream whose machine type was read.
    let at = s.ram_records[1].start;
    let mut b = bytes.clone();
    b[usize::try_from(at).unwrap() + 6] |= 0x01;
    let e = read(&b[..]).unwrap_err();
    assert!(matches!(e.kind, StreamErrorKind::RamRecord(..)), "{e}");
    assert_eq!(e.offset, Some(at));
    assert!(
        e.to_string().ends_with(&format!(
            "(at byte {at}); written by QEMU 10.0 (machine type virt-10.0)"
        )),
        "{e}"
    );
}

#[test]
fn a_description_that_disagrees_with_the_stream_is_refused() {
    let bytes = sample();
    let cut = bytes
        .iter()
        .rposition(|&x| x == section::VMDESCRIPTION)
        .unwrap();
    let mut desc: Value = serde_json::from_slice(&bytes[cut + 5..]).unwrap();
    let with = |desc: &Value| {
        let text = desc.to_string();
        let mut b = bytes[..cut].to_vec();
        b.push(section::VMDESCRIPTION);
        b.extend(u32::try_from(text.len()).unwrap().to_be_bytes());
        b.extend(text.as_bytes());
        read(&b[..]).map_err(|e| e.kind)
    };
    assert!(with(&desc).is_ok());
    // One device fewer than the stream holds.
    let all = desc["devices"].clone();
    desc["devices"].as_array_mut().unwrap().pop();
    assert!(matches!(with(&desc), Err(StreamErrorKind::Device { .. })));
    // One more.
    desc["devices"] = all.clone();
    desc["devices"].as_array_mut().unwrap().push(all[0].clone());
    assert_eq!(
        with(&desc),
        Err(StreamErrorKind::MissingDevices {
            described: 4,
            found: 3
        })
    );
    // A field longer than it is.
    desc["devices"] = all.clone();
    desc["devices"][0]["fields"][0]["size"] = json!(16);
    assert!(with(&desc).is_err());
    // A subsection that is not there.
    desc["devices"] = all;
    desc["devices"][1]["subsections"][0]["vmsd_name"] = json!("cpu/sve");
    assert!(matches!(
        with(&desc),
        Err(StreamErrorKind::Subsection { .. })
    ));
}

#[test]
fn a_cpu_section_without_qemus_fields_is_refused() {
    let mut w = Writer::new();
    w.ram("mach-virt.ram", 1);
    w.device("cpu", 0, &[("env.pc", "uint64", 8, 1, vec![0; 8])], &[]);
    let e = read(&w.finish()[..]).unwrap_err();
    assert_eq!(
        e.kind,
        StreamErrorKind::Cpu {
            vcpu: 0,
            why: "no field \"cpsr\"".into()
        }
    );
}

#[test]
fn a_stream_without_vcpus_is_refused() {
    let mut w = Writer::new();
    w.ram("mach-virt.ram", 1);
    assert_eq!(
        read(&w.finish()[..]).unwrap_err().kind,
        StreamErrorKind::NoVcpu
    );
}

#[test]
fn a_capability_that_changes_the_stream_is_refused() {
    let mut w = Writer::new();
    w.configuration("virt-7.2");
    w.u8(section::SUBSECTION)
        .idstr("configuration/capabilities")
        .be32(1)
        .be32(1)
        .idstr("x-ignore-shared");
    w.ram("mach-virt.ram", 1).cpu(0, 0, 0x3c5, &CPREGS);
    let e = read(&w.finish()[..]).unwrap_err();
    assert_eq!(
        e.kind,
        StreamErrorKind::Capability("x-ignore-shared".into())
    );
    assert!(e.to_string().contains("QEMU 7.2"), "{e}");
}

#[test]
fn machine_versions() {
    assert_eq!(machine_version("virt-7.2"), Some((7, 2)));
    assert_eq!(machine_version("virt-11.1"), Some((11, 1)));
    assert_eq!(machine_version("virt"), None);
    assert_eq!(machine_version("virt-x.1"), None);
}

#[test]
fn an_array_of_structures_described_once_takes_each_element() {
    // QEMU 7.2's cpu/sve: `env.vfp.zregs`, a structure of 112 bytes, array_len 32.
    let elem = json!({"vmsd_name": "zreg", "version": 1, "fields": [
        {"name": "d", "type": "uint64", "size": 8, "array_len": 2}]});
    let fields = json!([{"name": "regs", "type": "struct", "size": 16, "array_len": 3,
        "struct": elem}]);
    let mut w = Writer::new();
    w.ram("mach-virt.ram", 1)
        .raw_device("gic", &[7; 48], fields.clone())
        .cpu(0, 0, 0x3c5, &CPREGS);
    assert_eq!(read(&w.finish()[..]).unwrap().vcpus[0].cpregs, CPREGS);
    // One byte short of three elements.
    let mut w = Writer::new();
    w.ram("mach-virt.ram", 1)
        .raw_device("gic", &[7; 47], fields)
        .cpu(0, 0, 0x3c5, &CPREGS);
    assert!(read(&w.finish()[..]).is_err());
}

#[test]
fn a_huge_array_of_empty_structures_is_walked_once() {
    let fields = json!([{"name": "none", "type": "struct", "size": 0,
        "array_len": u64::MAX, "struct": {"vmsd_name": "e", "version": 1, "fields": []}}]);
    let mut w = Writer::new();
    w.ram("mach-virt.ram", 1)
        .raw_device("x", &[], fields)
        .cpu(0, 0, 0x3c5, &CPREGS);
    assert!(read(&w.finish()[..]).is_ok());
}

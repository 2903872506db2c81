//! Writes the seeds of the `qemu_stream` fuzz target (fuzz/seeds/qemu_stream/): real QEMU
//! migration streams (conformance/qemu keeps them, `conformance/out/qemu/*.stream`) with
//! their guest RAM left out (`armfw::qemu::stream::without_ram`), so each is a few hundred
//! kilobytes and still a stream QEMU would load.
//!
//! `cargo run -p armfw --example qemu_seed -- OUT_DIR STREAM...`

use armfw::qemu::stream;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: qemu_seed OUT_DIR STREAM...");
    std::fs::create_dir_all(&dir).expect("the seed folder");
    for path in args {
        let bytes = std::fs::read(&path).expect("a stream file");
        let s = stream::read(&bytes[..]).unwrap_or_else(|e| panic!("{path}: {e}"));
        let small = stream::without_ram(&bytes[..], &s).expect("a slice reads");
        let again = stream::read(&small[..]).expect("the copy reads");
        assert_eq!(again.vcpus, s.vcpus);
        let name = std::path::Path::new(&path)
            .file_stem()
            .and_then(|n| n.to_str())
            .expect("a file name");
        let out = format!("{dir}/{name}.qevm");
        std::fs::write(&out, &small).expect("the seed");
        println!(
            "{out}: {} bytes (from {}), machine {}, {} vCPU, {} cpregs",
            small.len(),
            bytes.len(),
            s.machine_type.as_deref().unwrap_or("?"),
            s.vcpus.len(),
            s.vcpus[0].cpregs.len()
        );
    }
}

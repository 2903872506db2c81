//! Untrusted QEMU migration streams: reading never panics, and a stream that reads gives the
//! same vCPUs, devices and RAM blocks again once its guest RAM is left out.
#![no_main]

use armfw::qemu::stream;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = stream::read(data) else {
        return;
    };
    let small = stream::without_ram(data, &s).expect("a slice reads");
    let t = stream::read(&small[..]).expect("a stream without its RAM reads");
    assert_eq!(t.vcpus, s.vcpus);
    assert_eq!(t.devices, s.devices);
    assert_eq!(t.ram_blocks, s.ram_blocks);
    assert_eq!(t.machine_type, s.machine_type);
});

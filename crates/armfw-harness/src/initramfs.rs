// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The initramfs an emulated host (or a guest) boots: a cpio archive in the `newc` format
//! the kernel unpacks (Documentation/driver-api/early-userspace/buffer-format.rst).
//!
//! Every entry is owned by root, has mtime 0 and a fresh inode number, so the same inputs
//! give the same bytes. Entries are written in path order, each directory before what it
//! holds; parent directories are added as needed.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

/// An archive being put together.
#[derive(Debug, Default)]
pub struct Archive {
    entries: BTreeMap<String, Entry>,
}

#[derive(Debug)]
enum Entry {
    Dir,
    File { mode: u32, data: Vec<u8> },
    CharDevice { mode: u32, major: u32, minor: u32 },
    Symlink { target: String },
}

// The file-type bits of `st_mode`.
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFLNK: u32 = 0o120_000;

impl Archive {
    /// An empty archive.
    pub fn new() -> Archive {
        Archive::default()
    }

    /// A directory `path` (relative, `/`-separated) and its parents.
    pub fn dir(&mut self, path: &str) {
        let path = path.trim_matches('/');
        if path.is_empty() {
            return;
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.entries.entry(path.to_string()).or_insert(Entry::Dir);
    }

    fn put(&mut self, path: &str, e: Entry) {
        let path = path.trim_matches('/');
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.entries.insert(path.to_string(), e);
    }

    /// A regular file with permission bits `mode` (e.g. `0o755`).
    pub fn file(&mut self, path: &str, mode: u32, data: Vec<u8>) {
        self.put(
            path,
            Entry::File {
                mode: mode & 0o7777,
                data,
            },
        );
    }

    /// A character device (e.g. `dev/console`, 5:1).
    pub fn char_device(&mut self, path: &str, mode: u32, major: u32, minor: u32) {
        self.put(
            path,
            Entry::CharDevice {
                mode: mode & 0o7777,
                major,
                minor,
            },
        );
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.put(
            path,
            Entry::Symlink {
                target: target.to_string(),
            },
        );
    }

    /// `src` (a file, or a directory with everything under it, as `cp -r` copies it) as
    /// `dest`.
    pub fn copy(&mut self, dest: &str, src: &Path) -> io::Result<()> {
        let meta = std::fs::symlink_metadata(src)?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(src)?;
            self.symlink(dest, &target.to_string_lossy());
        } else if meta.is_dir() {
            self.dir(dest);
            let mut children: Vec<_> = std::fs::read_dir(src)?.collect::<io::Result<_>>()?;
            children.sort_by_key(|e| e.file_name());
            for c in children {
                let name = c.file_name();
                self.copy(&format!("{dest}/{}", name.to_string_lossy()), &c.path())?;
            }
        } else {
            self.file(dest, permissions(&meta), std::fs::read(src)?);
        }
        Ok(())
    }

    /// The archive in `newc` format, with its trailer.
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let mut ino = 0u32;
        for (path, e) in &self.entries {
            ino += 1;
            let (mode, nlink, rdev, data): (u32, u32, (u32, u32), &[u8]) = match e {
                Entry::Dir => (S_IFDIR | 0o755, 2, (0, 0), &[]),
                Entry::File { mode, data } => (S_IFREG | mode, 1, (0, 0), data),
                Entry::CharDevice { mode, major, minor } => {
                    (S_IFCHR | mode, 1, (*major, *minor), &[])
                }
                Entry::Symlink { target } => (S_IFLNK | 0o777, 1, (0, 0), target.as_bytes()),
            };
            write_entry(out, path, ino, mode, nlink, rdev, data)?;
        }
        write_entry(out, "TRAILER!!!", 0, 0, 1, (0, 0), &[])
    }
}

/// One header (13 eight-digit hex fields after the magic), the NUL-ended name and the data,
/// each padded to four bytes.
fn write_entry(
    out: &mut impl Write,
    name: &str,
    ino: u32,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
    data: &[u8],
) -> io::Result<()> {
    let size = u32::try_from(data.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a file of 4 GiB or more"))?;
    let namesize = u32::try_from(name.len() + 1)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path too long"))?;
    let fields = [
        ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0,
    ];
    let mut h = String::from("070701");
    for f in fields {
        h.push_str(&format!("{f:08x}"));
    }
    let mut buf = h.into_bytes();
    buf.extend_from_slice(name.as_bytes());
    buf.push(0);
    pad4(&mut buf);
    out.write_all(&buf)?;
    out.write_all(data)?;
    out.write_all(&[0; 3][..(4 - data.len() % 4) % 4])
}

fn pad4(buf: &mut Vec<u8>) {
    while buf.len() % 4 != 0 {
        buf.push(0);
    }
}

#[cfg(unix)]
fn permissions(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn permissions(meta: &std::fs::Metadata) -> u32 {
    if meta.permissions().readonly() {
        0o444
    } else {
        0o644
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, mode, rdevmajor, rdevminor, data) of each entry of a `newc` archive.
    fn entries(mut b: &[u8]) -> Vec<(String, u32, u32, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut off = 0;
        loop {
            assert_eq!(&b[..6], b"070701");
            let field = |i: usize| {
                u32::from_str_radix(std::str::from_utf8(&b[6 + 8 * i..14 + 8 * i]).unwrap(), 16)
                    .unwrap()
            };
            let (mode, size, maj, min, namesize) =
                (field(1), field(6), field(9), field(10), field(11));
            let name = std::str::from_utf8(&b[110..110 + namesize as usize - 1])
                .unwrap()
                .to_string();
            let data_at = (110 + namesize as usize).div_ceil(4) * 4;
            let data = b[data_at..data_at + size as usize].to_vec();
            let next = (data_at + size as usize).div_ceil(4) * 4;
            off += next;
            assert_eq!(off % 4, 0);
            b = &b[next..];
            if name == "TRAILER!!!" {
                assert!(b.is_empty());
                return out;
            }
            out.push((name, mode, maj, min, data));
        }
    }

    #[test]
    fn archive_holds_dirs_files_devices_and_links_in_path_order() {
        let mut a = Archive::new();
        a.file("init", 0o755, b"#!x".to_vec());
        a.char_device("dev/console", 0o600, 5, 1);
        a.symlink("bin/sh", "busybox");
        a.file("armfw/scenarios/project/a.json", 0o644, b"{}\n".to_vec());
        let mut bytes = Vec::new();
        a.write_to(&mut bytes).unwrap();
        let e = entries(&bytes);
        let names: Vec<&str> = e.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "armfw",
                "armfw/scenarios",
                "armfw/scenarios/project",
                "armfw/scenarios/project/a.json",
                "bin",
                "bin/sh",
                "dev",
                "dev/console",
                "init"
            ]
        );
        assert_eq!(e[0].1, 0o040_755);
        assert_eq!((e[3].1, e[3].4.as_slice()), (0o100_644, &b"{}\n"[..]));
        assert_eq!((e[5].1, e[5].4.as_slice()), (0o120_777, &b"busybox"[..]));
        assert_eq!((e[7].1, e[7].2, e[7].3), (0o020_600, 5, 1));
        assert_eq!((e[8].1, e[8].4.as_slice()), (0o100_755, &b"#!x"[..]));
    }
}

//! Everything armfw reads: bounded. A file bigger than [`MAX_INPUT`] is refused before it is
//! read (and a file that grows while being read is cut off at the bound and refused), so no
//! input makes armfw use more than a small multiple of the cap; a path that is not a regular
//! file (a FIFO, a device, a folder) is refused without opening it; `-` reads standard input,
//! with the same bound.

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::Path;

use anyhow::{Context, Result};

use crate::errors::InFile;

/// The largest input armfw reads: 32 MiB (a whole-VM state of 512 vCPUs, the most KVM
/// allows, with every vCPU feature is about 14 MB as JSON; a firmware-only one about 22 KB;
/// profiles and scenarios are a few KB).
pub const MAX_INPUT: u64 = 32 << 20;

/// An input over [`MAX_INPUT`].
#[derive(Debug)]
pub struct TooBig {
    /// Its size, where known before reading.
    pub size: Option<u64>,
}

impl fmt::Display for TooBig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.size {
            Some(n) => write!(f, "too big: {n} bytes, the limit is {MAX_INPUT}"),
            None => write!(f, "too big: more than {MAX_INPUT} bytes, the limit"),
        }
    }
}

impl std::error::Error for TooBig {}

/// Whether `path` names standard input.
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// The bytes of `path` (or of standard input for `-`), at most [`MAX_INPUT`].
pub fn read(path: &Path) -> Result<Vec<u8>> {
    if is_stdin(path) {
        return bounded(io::stdin().lock(), None).context(InFile::with("-", "cannot read"));
    }
    let meta = fs::metadata(path).with_context(|| InFile::with(path, "cannot read"))?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a folder"
        } else {
            "not a regular file (a FIFO or a device; give - to read standard input)"
        };
        return Err(anyhow::anyhow!(io::Error::new(
            io::ErrorKind::InvalidInput,
            what
        )))
        .with_context(|| InFile::with(path, "cannot read"));
    }
    if meta.len() > MAX_INPUT {
        return Err(anyhow::Error::new(TooBig {
            size: Some(meta.len()),
        }))
        .with_context(|| InFile::new(path));
    }
    let f = fs::File::open(path).with_context(|| InFile::with(path, "cannot read"))?;
    bounded(f, Some(meta.len())).with_context(|| InFile::new(path))
}

/// The bytes of a saved state at `path`: the whole file, as [`read`] reads it; or, for a VM
/// bundle ([`armfw::bundle`], tens of megabytes of guest RAM), only its header and snapshot,
/// without reading the rest.
pub fn read_state(path: &Path) -> Result<Vec<u8>> {
    use armfw::bundle::{BundleHeader, HEADER_LEN, MAGIC};
    let stdin = is_stdin(path);
    let mut r: Box<dyn Read> = if stdin {
        Box::new(io::stdin().lock())
    } else {
        match fs::metadata(path) {
            Ok(meta) if meta.is_file() => {
                Box::new(fs::File::open(path).with_context(|| InFile::with(path, "cannot read"))?)
            }
            // Not a regular file (or none): refused as every input is.
            _ => return read(path),
        }
    };
    let mut head = Vec::with_capacity(HEADER_LEN);
    (&mut r)
        .take(HEADER_LEN as u64)
        .read_to_end(&mut head)
        .with_context(|| InFile::with(path, "cannot read"))?;
    if !head.starts_with(&MAGIC) {
        if !stdin {
            // A snapshot file: read whole, its size checked before reading.
            return read(path);
        }
        return bounded(io::Cursor::new(head).chain(r), None)
            .context(InFile::with("-", "cannot read"));
    }
    let header = BundleHeader::parse(&head).with_context(|| InFile::new(path))?;
    let want = header.snapshot_end() - head.len();
    (&mut r)
        .take(want as u64)
        .read_to_end(&mut head)
        .with_context(|| InFile::with(path, "cannot read"))?;
    Ok(head)
}

/// The text of `path` (UTF-8), at most [`MAX_INPUT`] bytes.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = read(path)?;
    String::from_utf8(bytes)
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            )
        })
        .with_context(|| InFile::with(path, "cannot read"))
}

fn bounded(r: impl Read, hint: Option<u64>) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(hint.unwrap_or(0).min(MAX_INPUT) as usize);
    r.take(MAX_INPUT + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_INPUT {
        return Err(TooBig { size: None }.into());
    }
    Ok(bytes)
}

/// A QEMU migration stream read in place: tens of megabytes, nearly all guest RAM, which the
/// reader skips without reading ([`armfw::qemu::stream`]); so no size limit, but it must be a
/// regular file (it is read at offsets).
#[derive(Debug)]
pub struct StreamFile {
    file: fs::File,
    len: u64,
}

impl StreamFile {
    /// Open `path`.
    pub fn open(path: &Path) -> Result<StreamFile> {
        let what = |why: &'static str| {
            Err(anyhow::anyhow!(io::Error::new(
                io::ErrorKind::InvalidInput,
                why
            )))
            .with_context(|| InFile::with(path, "cannot read"))
        };
        if is_stdin(path) {
            return what("a QEMU stream is read in place: give a file, not standard input");
        }
        let meta = fs::metadata(path).with_context(|| InFile::with(path, "cannot read"))?;
        if meta.is_dir() {
            return what("a folder");
        }
        if !meta.is_file() {
            return what("not a regular file (a FIFO or a device)");
        }
        let file = fs::File::open(path).with_context(|| InFile::with(path, "cannot read"))?;
        Ok(StreamFile {
            file,
            len: meta.len(),
        })
    }
}

impl armfw::qemu::ByteSource for StreamFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.read_exact_at(buf, offset)
    }
}

// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The arm64 Linux `Image` header (Documentation/arch/arm64/booting.rst, "Call the kernel
//! image"): the 64 bytes at the start of every uncompressed arm64 kernel.
//!
//! ```text
//! u32 code0;          /* Executable code */
//! u32 code1;          /* Executable code */
//! u64 text_offset;    /* Image load offset, little endian */
//! u64 image_size;     /* Effective Image size, little endian */
//! u64 flags;          /* kernel flags, little endian */
//! u64 res2, res3, res4;
//! u32 magic = 0x644d5241;  /* "ARM\x64" */
//! u32 res5;           /* reserved (PE COFF offset) */
//! ```

use thiserror::Error;

/// The header's `magic` field, "ARM\x64" read as a little-endian u32.
pub const ARM64_IMAGE_MAGIC: u32 = 0x644d_5241;
/// Where a kernel older than 3.17 (image_size 0) must be loaded: text_offset is then
/// 0x80000 whatever the field says.
const PRE_3_17_TEXT_OFFSET: u64 = 0x8_0000;

/// The parts of the header a loader needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    /// The load offset from a 2 MiB aligned base.
    pub text_offset: u64,
    /// The kernel's size in memory, BSS included (0 before Linux 3.17).
    pub image_size: u64,
    /// Bit 0: big-endian kernel; bits 1–2: page size; bit 3: may be placed anywhere.
    pub flags: u64,
}

/// Why a file is not an arm64 Image the VMM can boot.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ImageError {
    /// Shorter than the 64-byte header.
    #[error("{0} bytes is shorter than the 64-byte arm64 Image header")]
    TooShort(usize),
    /// The magic is not "ARM\x64" (a compressed vmlinuz, an EFI zboot image, not a kernel).
    #[error("no arm64 Image magic (found {0:#010x}): not an uncompressed arm64 kernel")]
    BadMagic(u32),
    /// Flags bit 0: a big-endian kernel.
    #[error("big-endian kernel")]
    BigEndian,
}

impl ImageHeader {
    /// The header's size.
    pub const LEN: usize = 64;

    /// Parses the header at the start of `bytes` (the file, or at least its first 64 bytes).
    pub fn parse(bytes: &[u8]) -> Result<ImageHeader, ImageError> {
        let header = bytes
            .get(..Self::LEN)
            .ok_or(ImageError::TooShort(bytes.len()))?;
        let u64_at = |off: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&header[off..off + 8]);
            u64::from_le_bytes(b)
        };
        let mut m = [0u8; 4];
        m.copy_from_slice(&header[56..60]);
        let magic = u32::from_le_bytes(m);
        if magic != ARM64_IMAGE_MAGIC {
            return Err(ImageError::BadMagic(magic));
        }
        let parsed = ImageHeader {
            text_offset: u64_at(8),
            image_size: u64_at(16),
            flags: u64_at(24),
        };
        if parsed.image_size != 0 && parsed.flags & 1 != 0 {
            return Err(ImageError::BigEndian);
        }
        Ok(parsed)
    }

    /// The offset from a 2 MiB aligned base at which the Image must be placed.
    pub fn load_offset(&self) -> u64 {
        if self.image_size == 0 {
            PRE_3_17_TEXT_OFFSET
        } else {
            self.text_offset
        }
    }

    /// The bytes the kernel occupies from its load address: `image_size`, or for a kernel
    /// older than 3.17 the file's length `file_len` (the protocol then promises nothing
    /// more).
    pub fn size_in_memory(&self, file_len: u64) -> u64 {
        if self.image_size == 0 {
            file_len
        } else {
            self.image_size.max(file_len)
        }
    }

    /// The kernel's page size in bytes from flags bits 1–2 (`None`: unspecified).
    pub fn page_size(&self) -> Option<u64> {
        match (self.flags >> 1) & 0b11 {
            1 => Some(4 << 10),
            2 => Some(16 << 10),
            3 => Some(64 << 10),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first 64 bytes of Debian's 6.12.117 arm64 Image, fields as the file has them:
    /// code0 `add x13, x18, #0x16` ("MZ"), code1 `b primary_entry`, text_offset 0,
    /// image_size 0x2b3_0000, flags 0xa (LE, 4 KiB pages, anywhere), magic.
    fn debian_like_header() -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[0..4].copy_from_slice(&0xfa40_5a4d_u32.to_le_bytes());
        h[4..8].copy_from_slice(&0x1473_e83b_u32.to_le_bytes());
        h[8..16].copy_from_slice(&0u64.to_le_bytes());
        h[16..24].copy_from_slice(&0x2b3_0000u64.to_le_bytes());
        h[24..32].copy_from_slice(&0xau64.to_le_bytes());
        h[56..60].copy_from_slice(b"ARM\x64");
        h[60..64].copy_from_slice(&0x40u32.to_le_bytes());
        h
    }

    #[test]
    fn test_parse_debian_header_reads_offset_size_and_flags() {
        let h = ImageHeader::parse(&debian_like_header()).unwrap();
        assert_eq!(
            h,
            ImageHeader {
                text_offset: 0,
                image_size: 0x2b3_0000,
                flags: 0xa
            }
        );
        assert_eq!(h.load_offset(), 0);
        assert_eq!(h.page_size(), Some(4096));
    }

    #[test]
    fn test_parse_gzip_file_returns_bad_magic() {
        let mut h = vec![0u8; 64];
        h[..3].copy_from_slice(&[0x1f, 0x8b, 0x08]);
        assert_eq!(ImageHeader::parse(&h), Err(ImageError::BadMagic(0)));
    }

    #[test]
    fn test_parse_short_file_returns_too_short() {
        assert_eq!(ImageHeader::parse(&[0; 63]), Err(ImageError::TooShort(63)));
    }

    #[test]
    fn test_parse_big_endian_kernel_is_refused() {
        let mut h = debian_like_header();
        h[24] = 0xb;
        assert_eq!(ImageHeader::parse(&h), Err(ImageError::BigEndian));
    }

    #[test]
    fn test_pre_3_17_image_loads_at_0x80000_and_spans_the_file() {
        let mut h = debian_like_header();
        h[16..24].copy_from_slice(&0u64.to_le_bytes());
        let h = ImageHeader::parse(&h).unwrap();
        assert_eq!(h.load_offset(), 0x8_0000);
        assert_eq!(h.size_in_memory(12345), 12345);
    }

    #[test]
    fn test_size_in_memory_is_image_size_when_larger_than_the_file() {
        let h = ImageHeader::parse(&debian_like_header()).unwrap();
        assert_eq!(h.size_in_memory(0x2a2_b8c0), 0x2b3_0000);
    }
}

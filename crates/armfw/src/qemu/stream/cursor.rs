//! A position in a stream, read through a small window.

use super::{ByteSource, StreamErrorKind, WINDOW};

/// A position in the stream with a small read-ahead window.
pub(super) struct Cursor<'s, S: ?Sized> {
    pub(super) src: &'s S,
    pub(super) len: u64,
    pub(super) pos: u64,
    window: Vec<u8>,
    window_at: u64,
}

impl<'s, S: ByteSource + ?Sized> Cursor<'s, S> {
    pub(super) fn new(src: &'s S, pos: u64) -> Self {
        Cursor {
            src,
            len: src.len(),
            pos,
            window: Vec::with_capacity(WINDOW),
            window_at: 0,
        }
    }

    pub(super) fn left(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    pub(super) fn need(&self, what: &'static str, n: u64) -> Result<(), StreamErrorKind> {
        if n > self.left() {
            return Err(StreamErrorKind::Truncated {
                what,
                needed: n,
                left: self.left(),
            });
        }
        Ok(())
    }

    /// Copy `buf.len()` bytes from the current position.
    pub(super) fn fill(
        &mut self,
        what: &'static str,
        buf: &mut [u8],
    ) -> Result<(), StreamErrorKind> {
        let n = buf.len() as u64;
        self.need(what, n)?;
        let end = self.window_at + self.window.len() as u64;
        if self.pos < self.window_at || self.pos + n > end {
            if buf.len() > WINDOW {
                read_at(self.src, self.pos, buf)?;
                self.pos += n;
                return Ok(());
            }
            let take = self.left().min(WINDOW as u64);
            self.window
                .resize(usize::try_from(take).unwrap_or(WINDOW), 0);
            read_at(self.src, self.pos, &mut self.window)?;
            self.window_at = self.pos;
        }
        let start = usize::try_from(self.pos - self.window_at).unwrap_or(0);
        buf.copy_from_slice(&self.window[start..start + buf.len()]);
        self.pos += n;
        Ok(())
    }

    pub(super) fn u8(&mut self, what: &'static str) -> Result<u8, StreamErrorKind> {
        let mut b = [0; 1];
        self.fill(what, &mut b)?;
        Ok(b[0])
    }

    pub(super) fn peek_u8(&mut self) -> Result<Option<u8>, StreamErrorKind> {
        if self.left() == 0 {
            return Ok(None);
        }
        let b = self.u8("section type")?;
        self.pos -= 1;
        Ok(Some(b))
    }

    pub(super) fn be16(&mut self, what: &'static str) -> Result<u16, StreamErrorKind> {
        let mut b = [0; 2];
        self.fill(what, &mut b)?;
        Ok(u16::from_be_bytes(b))
    }

    pub(super) fn be32(&mut self, what: &'static str) -> Result<u32, StreamErrorKind> {
        let mut b = [0; 4];
        self.fill(what, &mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    pub(super) fn be64(&mut self, what: &'static str) -> Result<u64, StreamErrorKind> {
        let mut b = [0; 8];
        self.fill(what, &mut b)?;
        Ok(u64::from_be_bytes(b))
    }

    /// A string of `len` bytes (QEMU's id strings are at most 255).
    pub(super) fn string(
        &mut self,
        what: &'static str,
        len: usize,
    ) -> Result<String, StreamErrorKind> {
        let mut b = vec![0; len];
        self.fill(what, &mut b)?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }

    /// A `u8` length and that many bytes.
    pub(super) fn idstr(&mut self, what: &'static str) -> Result<String, StreamErrorKind> {
        let len = self.u8(what)?;
        self.string(what, usize::from(len))
    }

    pub(super) fn skip(&mut self, what: &'static str, n: u64) -> Result<(), StreamErrorKind> {
        self.need(what, n)?;
        self.pos += n;
        Ok(())
    }
}

pub(super) fn read_at<S: ByteSource + ?Sized>(
    src: &S,
    offset: u64,
    buf: &mut [u8],
) -> Result<(), StreamErrorKind> {
    src.read_at(offset, buf)
        .map_err(|e| StreamErrorKind::Io(e.to_string()))
}

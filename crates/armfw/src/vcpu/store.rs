//! How the model keeps a VM's register values: [`IdIndex`] finds a listed id's position,
//! [`Reg`] holds a value (up to 64 bits in place).

use crate::json::le_u64;

/// The list position of each listed id: an open-addressing hash table (linear probing, at
/// most half full) keyed by the id, so that a register access costs one multiply and a probe
/// or two instead of a search of 360 ids.
#[derive(Clone, Debug)]
pub(super) struct IdIndex {
    /// (id, position); id 0 (never an arm64 id) marks a free slot.
    slots: Box<[(u64, u32)]>,
    shift: u32,
}

impl IdIndex {
    pub(super) fn new(ids: impl Iterator<Item = u64>) -> IdIndex {
        let ids: Vec<u64> = ids.collect();
        let bits = (ids.len() * 2).max(16).next_power_of_two().trailing_zeros();
        let mut index = IdIndex {
            slots: vec![(0, 0); 1 << bits].into_boxed_slice(),
            shift: 64 - bits,
        };
        for (pos, id) in ids.into_iter().enumerate() {
            let pos = u32::try_from(pos).unwrap_or(u32::MAX);
            let mut i = index.home(id);
            while index.slots[i].0 != 0 && index.slots[i].0 != id {
                i = (i + 1) & (index.slots.len() - 1);
            }
            index.slots[i] = (id, pos);
        }
        index
    }

    /// Fibonacci hashing of the id.
    fn home(&self, id: u64) -> usize {
        let h = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift;
        usize::try_from(h).unwrap_or(0)
    }

    pub(super) fn get(&self, id: u64) -> Option<usize> {
        let mut i = self.home(id);
        loop {
            match self.slots[i] {
                (0, _) => return None,
                (k, pos) if k == id => return usize::try_from(pos).ok(),
                _ => i = (i + 1) & (self.slots.len() - 1),
            }
        }
    }
}

/// A register's value: up to 64 bits in place, wider ones (V, P, FFR, Z, SVE_VLS) as bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Reg {
    /// A register of at most 8 bytes.
    Word(u64),
    /// A wider register's little-endian bytes.
    Bytes(Box<[u8]>),
}

impl Reg {
    pub(super) fn from_bytes(b: &[u8]) -> Reg {
        if b.len() <= 8 {
            Reg::Word(le_u64(b))
        } else {
            Reg::Bytes(b.into())
        }
    }

    pub(super) fn word(&self) -> u64 {
        match self {
            Reg::Word(v) => *v,
            Reg::Bytes(b) => le_u64(b),
        }
    }

    /// The value into a buffer of the register's size (zero-padded, or cut to it).
    pub(super) fn read(&self, out: &mut [u8]) {
        let src: &[u8] = match self {
            Reg::Word(v) => &v.to_le_bytes(),
            Reg::Bytes(b) => b,
        };
        let n = src.len().min(out.len());
        out[..n].copy_from_slice(&src[..n]);
        out[n..].fill(0);
    }

    /// Store a buffer of the register's size.
    pub(super) fn write(&mut self, data: &[u8]) {
        match self {
            Reg::Bytes(b) if b.len() == data.len() => b.copy_from_slice(data),
            _ => *self = Reg::from_bytes(data),
        }
    }
}

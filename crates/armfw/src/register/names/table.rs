//! The names themselves, sorted by encoding (one row per register), in three parts by op0
//! and op1, joined into one table at compile time.

use super::SysRegName;

/// A table row (keeps the table below one line per register).
const fn r(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8, name: &'static str) -> SysRegName {
    SysRegName {
        op0,
        op1,
        crn,
        crm,
        op2,
        name,
    }
}

mod debug;
mod el01;
mod el2;

/// The parts of the table, each sorted by encoding and every encoding of one before every
/// encoding of the next: op0 2, then op0 3 with op1 0 to 3, then op0 3 with op1 4 to 7.
const PARTS: [&[SysRegName]; 3] = [debug::ROWS, el01::ROWS, el2::ROWS];

/// How many rows the table has.
const LEN: usize = debug::ROWS.len() + el01::ROWS.len() + el2::ROWS.len();

/// The parts one after the other, at compile time.
const fn concat(parts: [&[SysRegName]; 3]) -> [SysRegName; LEN] {
    let mut out = [r(0, 0, 0, 0, 0, ""); LEN];
    let (mut n, mut p) = (0, 0);
    while p < parts.len() {
        let mut i = 0;
        while i < parts[p].len() {
            out[n] = parts[p][i];
            n += 1;
            i += 1;
        }
        p += 1;
    }
    out
}

/// The whole table.
static ROWS: [SysRegName; LEN] = concat(PARTS);

/// Sorted by encoding, for binary search.
pub static SYSREG_NAMES: &[SysRegName] = &ROWS;

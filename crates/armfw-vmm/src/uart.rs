// SPDX-License-Identifier: Apache-2.0 OR MIT
//! A transmit-only 16550A UART, as much of one as Linux's 8250 driver (`ns16550a` in the
//! device tree) needs for a console: the transmitter is always empty (every byte written
//! to THR leaves at once), nothing is ever received, and the interrupt output is a level
//! that the VMM drives onto a GIC SPI.
//!
//! Registers (byte offsets; DLAB is LCR bit 7):
//!
//! | offset | read | write |
//! | --- | --- | --- |
//! | 0 | RBR (0: nothing received); DLL with DLAB | THR; DLL with DLAB |
//! | 1 | IER; DLM with DLAB | IER (low 4 bits); DLM with DLAB |
//! | 2 | IIR: THRE interrupt (0x2) or none (0x1), FIFO bits 0xc0 when enabled | FCR |
//! | 3 | LCR | LCR |
//! | 4 | MCR | MCR (low 5 bits) |
//! | 5 | LSR: THRE and TEMT (0x60) always | ignored |
//! | 6 | MSR: DCD, DSR, CTS (0xb0); in loopback, the MCR outputs | ignored |
//! | 7 | SCR | SCR |
//!
//! The THRE interrupt follows the 16550's rules: it is pending after a byte was written to
//! THR (the byte has gone at once) and after IER is written with ETBEI set (THR is empty);
//! reading IIR while it is the interrupt being reported clears it. The output is pending
//! THRE with ETBEI set. Linux tests exactly this at start-up (`UART_BUG_THRE`).

/// IER: enable the transmitter-holding-register-empty interrupt.
pub const IER_ETBEI: u8 = 0x02;
/// IIR: no interrupt pending.
pub const IIR_NO_INT: u8 = 0x01;
/// IIR: THR empty is the interrupt pending.
pub const IIR_THRI: u8 = 0x02;
/// IIR: FIFOs enabled (both bits).
pub const IIR_FIFO: u8 = 0xc0;
/// LSR: THR empty and transmitter empty.
pub const LSR_IDLE: u8 = 0x60;
/// LCR: divisor latch access.
pub const LCR_DLAB: u8 = 0x80;
/// MCR: loopback.
pub const MCR_LOOP: u8 = 0x10;
/// MSR with the modem lines up: DCD, DSR, CTS.
pub const MSR_LINES_UP: u8 = 0xb0;

/// The UART's state. Drive it with [`Uart16550::read`] and [`Uart16550::write`]; after
/// each access, set the interrupt line to [`Uart16550::irq_level`].
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Uart16550 {
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    dll: u8,
    dlm: u8,
    fifo_enabled: bool,
    thre_pending: bool,
}

impl Uart16550 {
    /// A UART after reset: every register 0, no interrupt.
    pub fn new() -> Uart16550 {
        Uart16550::default()
    }

    /// A read of the register at `offset`.
    pub fn read(&mut self, offset: u64) -> u8 {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            0 if dlab => self.dll,
            0 => 0,
            1 if dlab => self.dlm,
            1 => self.ier,
            2 => {
                let fifo = if self.fifo_enabled { IIR_FIFO } else { 0 };
                if self.irq_level() {
                    // Reading IIR while THRE is the interrupt reported clears it.
                    self.thre_pending = false;
                    IIR_THRI | fifo
                } else {
                    IIR_NO_INT | fifo
                }
            }
            3 => self.lcr,
            4 => self.mcr,
            5 => LSR_IDLE,
            6 if self.mcr & MCR_LOOP != 0 => {
                // Loopback: RTS -> CTS, DTR -> DSR, OUT1 -> RI, OUT2 -> DCD.
                let m = self.mcr;
                ((m & 0x02) << 3) | ((m & 0x01) << 5) | ((m & 0x04) << 4) | ((m & 0x08) << 4)
            }
            6 => MSR_LINES_UP,
            7 => self.scr,
            _ => 0,
        }
    }

    /// A write of `value` to the register at `offset`. Returns the byte transmitted, if the
    /// write was to THR (outside loopback, where the byte would go to the receiver, which
    /// this UART does not have).
    pub fn write(&mut self, offset: u64, value: u8) -> Option<u8> {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            0 if dlab => self.dll = value,
            0 => {
                self.thre_pending = true;
                if self.mcr & MCR_LOOP == 0 {
                    return Some(value);
                }
            }
            1 if dlab => self.dlm = value,
            1 => {
                self.ier = value & 0x0f;
                if self.ier & IER_ETBEI != 0 {
                    self.thre_pending = true;
                }
            }
            2 => self.fifo_enabled = value & 0x01 != 0,
            3 => self.lcr = value,
            4 => self.mcr = value & 0x1f,
            7 => self.scr = value,
            _ => {}
        }
        None
    }

    /// The interrupt output: THRE pending with ETBEI set.
    pub fn irq_level(&self) -> bool {
        self.thre_pending && self.ier & IER_ETBEI != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_thr_write_outside_loopback_transmits_the_byte() {
        let mut uart = Uart16550::new();
        assert_eq!(uart.write(0, b'x'), Some(b'x'));
    }

    #[test]
    fn test_lsr_always_reports_an_idle_transmitter_and_no_data() {
        let mut uart = Uart16550::new();
        uart.write(0, b'x');
        assert_eq!(uart.read(5), 0x60);
    }

    #[test]
    fn test_reset_uart_reports_no_interrupt() {
        let mut uart = Uart16550::new();
        assert_eq!(uart.read(2), IIR_NO_INT);
        assert!(!uart.irq_level());
    }

    #[test]
    fn test_enabling_etbei_raises_thre_and_iir_read_clears_it() {
        let mut uart = Uart16550::new();
        uart.write(1, IER_ETBEI);
        assert!(uart.irq_level());
        assert_eq!(uart.read(2), IIR_THRI);
        assert!(!uart.irq_level());
        assert_eq!(uart.read(2), IIR_NO_INT);
    }

    /// Linux's start-up test (serial8250_do_startup): IER=THRI, IIR, IER=0, IER=THRI, IIR.
    /// A UART that does not re-assert THRE the second time gets UART_BUG_THRE.
    #[test]
    fn test_linux_thre_retest_sees_thre_asserted_again() {
        let mut uart = Uart16550::new();
        uart.write(1, IER_ETBEI);
        let iir1 = uart.read(2);
        uart.write(1, 0);
        uart.write(1, IER_ETBEI);
        let iir2 = uart.read(2);
        uart.write(1, 0);
        assert_eq!((iir1, iir2), (IIR_THRI, IIR_THRI));
        assert!(!uart.irq_level());
    }

    #[test]
    fn test_thr_write_with_etbei_pends_thre_again() {
        let mut uart = Uart16550::new();
        uart.write(1, IER_ETBEI);
        uart.read(2);
        uart.write(0, b'a');
        assert!(uart.irq_level());
    }

    #[test]
    fn test_thre_pending_is_masked_while_etbei_is_clear() {
        let mut uart = Uart16550::new();
        uart.write(0, b'a');
        assert!(!uart.irq_level());
        assert_eq!(uart.read(2), IIR_NO_INT);
    }

    #[test]
    fn test_dlab_switches_offsets_0_and_1_to_the_divisor_latch() {
        let mut uart = Uart16550::new();
        uart.write(3, LCR_DLAB | 0x03);
        assert_eq!(uart.write(0, 0x01), None);
        uart.write(1, 0x02);
        assert_eq!((uart.read(0), uart.read(1)), (0x01, 0x02));
        uart.write(3, 0x03);
        assert_eq!(uart.read(1), 0);
        assert_eq!(uart.read(3), 0x03);
    }

    #[test]
    fn test_fifo_enable_sets_iir_fifo_bits() {
        let mut uart = Uart16550::new();
        uart.write(2, 0x07);
        assert_eq!(uart.read(2), IIR_FIFO | IIR_NO_INT);
    }

    #[test]
    fn test_loopback_maps_mcr_outputs_to_msr_and_swallows_thr() {
        let mut uart = Uart16550::new();
        uart.write(4, MCR_LOOP | 0x0f);
        assert_eq!(uart.read(6), 0xf0);
        uart.write(4, MCR_LOOP | 0x02);
        assert_eq!(uart.read(6), 0x10);
        assert_eq!(uart.write(0, b'z'), None);
    }

    #[test]
    fn test_msr_outside_loopback_reports_lines_up() {
        let mut uart = Uart16550::new();
        assert_eq!(uart.read(6), MSR_LINES_UP);
    }

    #[test]
    fn test_scratch_register_keeps_its_value() {
        let mut uart = Uart16550::new();
        uart.write(7, 0x5a);
        assert_eq!(uart.read(7), 0x5a);
    }

    #[test]
    fn test_ier_keeps_only_the_four_enable_bits() {
        let mut uart = Uart16550::new();
        uart.write(1, 0xff);
        assert_eq!(uart.read(1), 0x0f);
    }
}

// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The VMM's devices: the 16550 console (its line assembler and the guest lines it reports)
//! and the MMIO exits that reach it, with the UART's interrupt line.

use std::io::Write;
use std::sync::mpsc::Sender;
use std::time::Instant;

use kvm_bindings::{KVM_ARM_IRQ_TYPE_SHIFT, KVM_ARM_IRQ_TYPE_SPI};

use super::{Outcome, Shared, VmmError, ctx, lock};
use crate::console::{ConsoleState, INIT_KEY, LineAssembler, parse_guest_line};
use crate::layout::{UART_BASE, UART_SIZE, UART_SPI};
use crate::uart::Uart16550;

/// The 16550 and what its output has said so far.
#[derive(Debug)]
pub(crate) struct Console {
    uart: Uart16550,
    pub(super) lines: LineAssembler,
    irq_level: bool,
    prefix: String,
    pub(super) guest: Vec<(String, String)>,
    pub(super) init_at: Option<Instant>,
    /// The guest line to pause at, and where to say it came.
    pause_at: Option<(String, String)>,
    pub(super) pause_tx: Option<Sender<Outcome>>,
}

impl Console {
    pub(crate) fn new(prefix: &str, pause_at: Option<(String, String)>) -> Console {
        Console {
            uart: Uart16550::new(),
            lines: LineAssembler::new(),
            irq_level: false,
            prefix: prefix.to_string(),
            guest: Vec::new(),
            init_at: None,
            pause_at,
            pause_tx: None,
        }
    }

    /// The console as restored from a bundle.
    pub(crate) fn resume(&mut self, state: &ConsoleState) {
        self.uart = state.uart.clone();
        self.irq_level = state.irq_level;
        self.lines = LineAssembler::resume(&state.partial_line);
    }

    /// The console as a bundle carries it.
    pub(crate) fn state(&self) -> ConsoleState {
        ConsoleState {
            uart: self.uart.clone(),
            irq_level: self.irq_level,
            partial_line: self.lines.partial(),
        }
    }

    pub(super) fn line(&mut self, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}{line}", self.prefix);
        if let Some((key, value)) = parse_guest_line(line) {
            if key == INIT_KEY && self.init_at.is_none() {
                self.init_at = Some(Instant::now());
            }
            if self.pause_at.as_ref() == Some(&(key.clone(), value.clone())) {
                if let Some(tx) = self.pause_tx.take() {
                    let _ = tx.send(Outcome::PauseNow);
                }
            }
            self.guest.push((key, value));
        }
    }
}

impl Shared {
    pub(super) fn mmio_read(&self, addr: u64, data: &mut [u8]) -> Result<(), VmmError> {
        data.fill(0);
        let (Some(offset), Some(first)) = (uart_offset(addr), data.first_mut()) else {
            return Ok(());
        };
        let mut console = lock(&self.console);
        *first = console.uart.read(offset);
        // Reading IIR can clear the interrupt.
        self.update_irq(&mut console)
    }

    pub(super) fn mmio_write(&self, addr: u64, data: &[u8]) -> Result<(), VmmError> {
        let (Some(offset), Some(&value)) = (uart_offset(addr), data.first()) else {
            return Ok(());
        };
        let mut console = lock(&self.console);
        if let Some(byte) = console.uart.write(offset, value) {
            if let Some(line) = console.lines.push(byte) {
                console.line(&line);
            }
        }
        self.update_irq(&mut console)
    }

    /// Drives the UART's SPI to the UART's interrupt output (KVM_IRQ_LINE, level).
    fn update_irq(&self, console: &mut Console) -> Result<(), VmmError> {
        let level = console.uart.irq_level();
        if level != console.irq_level {
            let irq = (KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT) | (32 + UART_SPI);
            self.vm
                .set_irq_line(irq, level)
                .map_err(ctx("KVM_IRQ_LINE (UART)"))?;
            console.irq_level = level;
        }
        Ok(())
    }
}

fn uart_offset(addr: u64) -> Option<u64> {
    (UART_BASE..UART_BASE + UART_SIZE)
        .contains(&addr)
        .then(|| addr - UART_BASE)
}

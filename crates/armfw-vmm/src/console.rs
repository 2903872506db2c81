// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The guest's console, line by line, and the machine-readable lines its `/init` prints.
//!
//! The guest's init writes `@@GUEST <key> <value...>` lines (see
//! conformance/linux-guest's init script); everything else on the console is the kernel's
//! or the shell's and is only passed on.

/// The marker of a machine-readable line from the guest's init.
pub const GUEST_MARK: &str = "@@GUEST";

/// The key of the first line the guest's init prints: the VMM measures the boot time to
/// init up to it.
pub const INIT_KEY: &str = "init";

/// Longest line kept; longer lines are cut (a guest that never prints a newline cannot
/// make the VMM's memory grow).
pub const MAX_LINE: usize = 4096;

/// Assembles console bytes into lines: `\n` ends a line, `\r` is dropped.
#[derive(Clone, Debug, Default)]
pub struct LineAssembler {
    line: Vec<u8>,
}

impl LineAssembler {
    /// An empty assembler.
    pub fn new() -> LineAssembler {
        LineAssembler::default()
    }

    /// Adds one byte; returns the line it completed, if any (without the newline).
    pub fn push(&mut self, byte: u8) -> Option<String> {
        match byte {
            b'\n' => Some(self.take()),
            b'\r' => None,
            _ => {
                if self.line.len() < MAX_LINE {
                    self.line.push(byte);
                }
                None
            }
        }
    }

    /// An assembler that has `partial` so far (cut to [`MAX_LINE`] bytes): what
    /// [`LineAssembler::partial`] gave before a save.
    pub fn resume(partial: &str) -> LineAssembler {
        let mut line = partial.as_bytes().to_vec();
        line.truncate(MAX_LINE);
        LineAssembler { line }
    }

    /// The line so far, not yet ended.
    pub fn partial(&self) -> String {
        String::from_utf8_lossy(&self.line).into_owned()
    }

    /// The partial line so far, if any (at the end of a run).
    pub fn flush(&mut self) -> Option<String> {
        (!self.line.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let line = String::from_utf8_lossy(&self.line).into_owned();
        self.line.clear();
        line
    }
}

/// The console device as a saved VM carries it: the UART's registers, its interrupt
/// line's level and the line the guest had begun to print.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleState {
    /// The 16550A.
    pub uart: crate::uart::Uart16550,
    /// The level the VMM last drove the UART's SPI to.
    pub irq_level: bool,
    /// The console line not yet ended.
    pub partial_line: String,
}

/// armfw-vmm's own devices in a bundle ([`armfw::bundle::Devices::vmm`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmmDevices {
    /// The console.
    pub console: ConsoleState,
}

/// A `@@GUEST <key> <value>` line: `Some((key, value))`, the value trimmed (possibly
/// empty). Text before the marker (a kernel message that interrupted the line) is ignored.
pub fn parse_guest_line(line: &str) -> Option<(String, String)> {
    let at = line.find(GUEST_MARK)?;
    let rest = line[at + GUEST_MARK.len()..].strip_prefix(' ')?;
    let rest = rest.trim();
    let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
    (!key.is_empty()).then(|| (key.to_string(), value.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(asm: &mut LineAssembler, s: &str) -> Vec<String> {
        s.bytes().filter_map(|b| asm.push(b)).collect()
    }

    #[test]
    fn test_crlf_lines_come_out_without_cr() {
        let mut asm = LineAssembler::new();
        assert_eq!(feed(&mut asm, "a b\r\nc\r\n"), vec!["a b", "c"]);
    }

    #[test]
    fn test_partial_line_is_kept_until_flush() {
        let mut asm = LineAssembler::new();
        assert!(feed(&mut asm, "abc").is_empty());
        assert_eq!(asm.flush().as_deref(), Some("abc"));
        assert_eq!(asm.flush(), None);
    }

    #[test]
    fn test_overlong_line_is_cut_at_max_line() {
        let mut asm = LineAssembler::new();
        let lines = feed(&mut asm, &format!("{}\n", "x".repeat(MAX_LINE + 10)));
        assert_eq!(lines[0].len(), MAX_LINE);
    }

    #[test]
    fn test_guest_line_splits_key_and_value() {
        assert_eq!(
            parse_guest_line("@@GUEST cpus_online 0-1"),
            Some(("cpus_online".into(), "0-1".into()))
        );
        assert_eq!(
            parse_guest_line("@@GUEST dmesg psci: PSCIv1.1 detected in firmware."),
            Some((
                "dmesg".into(),
                "psci: PSCIv1.1 detected in firmware.".into()
            ))
        );
    }

    #[test]
    fn test_guest_line_without_value_has_empty_value() {
        assert_eq!(
            parse_guest_line("@@GUEST end"),
            Some(("end".into(), String::new()))
        );
    }

    #[test]
    fn test_guest_line_after_kernel_text_is_found() {
        assert_eq!(
            parse_guest_line("[    3.1] random: crng@@GUEST init 3.14"),
            Some(("init".into(), "3.14".into()))
        );
    }

    #[test]
    fn test_other_lines_are_not_guest_lines() {
        assert_eq!(parse_guest_line("Run /init as init process"), None);
        assert_eq!(parse_guest_line("@@GUESTX y"), None);
        assert_eq!(parse_guest_line("@@GUEST "), None);
    }
}

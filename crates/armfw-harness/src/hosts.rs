// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Host specs: which emulated hosts a harness script boots.
//!
//! A spec is a comma-separated list of `SERIES:CPU`. SERIES is a Debian kernel series
//! (`6.1`, `6.12` or `7`: the newest arm64 kernel of each) and CPU a QEMU CPU model
//! (lowercase letters, digits, `.` and `-`). `all` means the same in every script:
//! - as SERIES, every series: 6.1, 6.12, 7 ([`ALL_SERIES`]);
//! - as CPU, the default CPU set: max, cortex-a72, neoverse-n1, cortex-a53, cortex-a76, a64fx,
//!   cortex-a57, cortex-a35 ([`ALL_CPUS`]: every QEMU 7.2 model with EL2 that the three kernels
//!   boot).
//!
//! The hosts come out in the order written, each once (`all:all` is 6.1:max, 6.1:cortex-a72,
//! ..., 7:cortex-a53). `armfw-harness hosts SPEC` prints them one a line for the scripts.

use std::fmt;

/// A Debian kernel series the harness can boot.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub enum Series {
    /// Linux 6.1 (bookworm).
    V6_1,
    /// Linux 6.12 (bookworm-security).
    V6_12,
    /// Linux 7.x (sid).
    V7,
}

impl Series {
    /// The series as the scripts write it (`6.1`, `6.12`, `7`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Series::V6_1 => "6.1",
            Series::V6_12 => "6.12",
            Series::V7 => "7",
        }
    }

    /// A series by its name.
    pub fn from_name(s: &str) -> Option<Series> {
        ALL_SERIES.into_iter().find(|x| x.as_str() == s)
    }
}

/// Every series, in order: what `all` means as SERIES.
pub const ALL_SERIES: [Series; 3] = [Series::V6_1, Series::V6_12, Series::V7];

/// The default CPU models, in order: what `all` means as CPU.
pub const ALL_CPUS: [&str; 8] = [
    "max",
    "cortex-a72",
    "neoverse-n1",
    "cortex-a53",
    "cortex-a76",
    "a64fx",
    "cortex-a57",
    "cortex-a35",
];

/// One emulated host: a kernel series on a CPU model.
#[derive(Clone, Debug, Eq, Hash, PartialEq)]
pub struct Host {
    /// The kernel series.
    pub series: Series,
    /// The QEMU CPU model.
    pub cpu: String,
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.series.as_str(), self.cpu)
    }
}

/// Why a host spec is not one.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// An item without a colon.
    #[error("'{0}' is not SERIES:CPU")]
    NotSeriesCpu(String),
    /// A series other than 6.1, 6.12, 7 or all.
    #[error("unknown kernel series '{0}' (6.1, 6.12, 7 or all)")]
    UnknownSeries(String),
    /// A CPU model with characters QEMU's names do not have.
    #[error("bad CPU model '{0}'")]
    BadCpu(String),
    /// No hosts at all.
    #[error("no hosts given")]
    Empty,
}

/// The hosts of `spec` (see the module docs).
pub fn parse(spec: &str) -> Result<Vec<Host>, SpecError> {
    if spec.is_empty() {
        return Err(SpecError::Empty);
    }
    let mut hosts: Vec<Host> = Vec::new();
    for item in spec.split(',') {
        let (s, c) = item
            .split_once(':')
            .ok_or_else(|| SpecError::NotSeriesCpu(item.to_string()))?;
        let series = match s {
            "all" => ALL_SERIES.to_vec(),
            s => vec![Series::from_name(s).ok_or_else(|| SpecError::UnknownSeries(s.into()))?],
        };
        let cpus: Vec<&str> = match c {
            "all" => ALL_CPUS.to_vec(),
            c if is_cpu_model(c) => vec![c],
            c => return Err(SpecError::BadCpu(c.to_string())),
        };
        for &series in &series {
            for &cpu in &cpus {
                let h = Host {
                    series,
                    cpu: cpu.to_string(),
                };
                if !hosts.contains(&h) {
                    hosts.push(h);
                }
            }
        }
    }
    Ok(hosts)
}

/// `^[a-z0-9][a-z0-9.-]*$`.
fn is_cpu_model(c: &str) -> bool {
    let ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    c.as_bytes().first().is_some_and(|&b| ok(b))
        && c.bytes().all(|b| ok(b) || b == b'.' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(spec: &str) -> Vec<String> {
        parse(spec).unwrap().iter().map(Host::to_string).collect()
    }

    #[test]
    fn parse_plain_list_keeps_order() {
        assert_eq!(
            names("6.12:cortex-a72,7:max,6.1:max"),
            ["6.12:cortex-a72", "7:max", "6.1:max"]
        );
    }

    #[test]
    fn parse_all_all_is_every_series_times_the_default_cpus() {
        let hosts = names("all:all");
        assert_eq!(hosts.len(), 24);
        assert_eq!(hosts[0], "6.1:max");
        assert_eq!(hosts[3], "6.1:cortex-a53");
        assert_eq!(hosts[7], "6.1:cortex-a35");
        assert_eq!(hosts[8], "6.12:max");
        assert_eq!(hosts[23], "7:cortex-a35");
    }

    #[test]
    fn parse_all_series_with_one_cpu() {
        assert_eq!(
            names("all:max,all:cortex-a72"),
            [
                "6.1:max",
                "6.12:max",
                "7:max",
                "6.1:cortex-a72",
                "6.12:cortex-a72",
                "7:cortex-a72"
            ]
        );
    }

    #[test]
    fn parse_repeats_are_dropped() {
        assert_eq!(
            names("7:max,all:max,7:max"),
            ["7:max", "6.1:max", "6.12:max"]
        );
    }

    #[test]
    fn parse_any_qemu_cpu_name_is_accepted() {
        assert_eq!(
            names("7:neoverse-v1,6.1:a64fx"),
            ["7:neoverse-v1", "6.1:a64fx"]
        );
    }

    #[test]
    fn parse_bad_items_are_errors() {
        assert_eq!(parse("7"), Err(SpecError::NotSeriesCpu("7".into())));
        assert_eq!(parse("7:max,"), Err(SpecError::NotSeriesCpu("".into())));
        assert_eq!(
            parse("6.2:max"),
            Err(SpecError::UnknownSeries("6.2".into()))
        );
        assert_eq!(parse("7:Max"), Err(SpecError::BadCpu("Max".into())));
        assert_eq!(parse("7:-max"), Err(SpecError::BadCpu("-max".into())));
        assert_eq!(parse("7:"), Err(SpecError::BadCpu("".into())));
        assert_eq!(parse(""), Err(SpecError::Empty));
    }
}

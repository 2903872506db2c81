//! Kernel releases and the firmware rules that changed between them.
//!
//! A profile says what a probe can see on a host (registers, defaults, accepted values,
//! capabilities). What no probe can see without running guests lives here, keyed by the
//! release in which it changed. Each rule cites the change.

use std::fmt;

/// A kernel release as `major.minor.patch`, parsed from `uname -r` (e.g.
/// `6.12.117+deb12-arm64`). Debian's 6.1 kernels report `6.1.0-NN-arm64`: their patch level is
/// not in the release string, so rules are keyed by `major.minor` except where a rule names a
/// patch level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Release {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch level (0 where the release string does not carry it).
    pub patch: u32,
}

impl Release {
    /// A release from its parts.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Release {
        Release {
            major,
            minor,
            patch,
        }
    }

    /// Parse the leading `major.minor[.patch]` of a release string.
    pub fn parse(s: &str) -> Option<Release> {
        let end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let mut parts = s[..end].split('.').filter(|p| !p.is_empty());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next().map_or(Some(0), |p| p.parse().ok())?;
        Some(Release {
            major,
            minor,
            patch,
        })
    }

    /// Whether this release is at least `major.minor`.
    pub const fn at_least(self, major: u32, minor: u32) -> bool {
        self.major > major || (self.major == major && self.minor >= minor)
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The behaviour rules of one release that a profile cannot show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// The release the rules are for.
    pub release: Release,
    /// An SMC with immediate 0 from EL1 reaches the SMCCC handler (Linux 6.4, "KVM: arm64:
    /// Start handling SMCs from EL1"). Before, every SMC returned x0 = -1 and left x1..x3.
    pub smc_reaches_handler: bool,
    /// An unknown firmware register id gives ENOENT (Linux 5.2, 99adb567632b); EINVAL before.
    pub unknown_fw_reg_is_enoent: bool,
    /// SYSTEM_OFF2 takes type 0 as an alias of HIBERNATE_OFF (PSCI 1.3 issue F.b).
    pub off2_type_zero_is_hibernate: bool,
}

impl Rules {
    /// The rules of `release`.
    pub const fn for_release(release: Release) -> Rules {
        Rules {
            release,
            smc_reaches_handler: release.at_least(6, 4),
            unknown_fw_reg_is_enoent: release.at_least(5, 2),
            off2_type_zero_is_hibernate: release.at_least(6, 13),
        }
    }
}

impl Rules {
    /// The errno for a firmware register id the kernel does not have.
    pub const fn unknown_fw_reg_errno(self) -> crate::abi::Errno {
        if self.unknown_fw_reg_is_enoent {
            crate::abi::Errno::ENOENT
        } else {
            crate::abi::Errno::EINVAL
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_parses_debian_uname_strings() {
        assert_eq!(
            Release::parse("6.12.117+deb12-arm64"),
            Some(Release::new(6, 12, 117))
        );
        assert_eq!(
            Release::parse("7.2.13+deb14-arm64"),
            Some(Release::new(7, 2, 13))
        );
        assert_eq!(
            Release::parse("6.1.0-37-arm64"),
            Some(Release::new(6, 1, 0))
        );
        assert_eq!(Release::parse("7.3-rc7"), Some(Release::new(7, 3, 0)));
        assert_eq!(Release::parse("arm64"), None);
        assert_eq!(Release::parse("6"), None);
    }

    #[test]
    fn smc_handling_starts_at_6_4() {
        assert!(!Rules::for_release(Release::new(6, 3, 99)).smc_reaches_handler);
        assert!(Rules::for_release(Release::new(6, 4, 0)).smc_reaches_handler);
        assert!(Rules::for_release(Release::new(7, 0, 0)).smc_reaches_handler);
    }
}

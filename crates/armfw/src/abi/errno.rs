//! The errnos KVM answers on the paths armfw models.

use std::fmt;

/// A Linux errno as returned by a KVM ioctl (positive value, as in errno(3)).
///
/// Only the values KVM gives on the paths armfw models have names; [`Errno::name`] falls back to
/// `E<number>` for any other value, so a real backend can report whatever the kernel said.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Errno(pub i32);

impl Errno {
    /// Operation not permitted.
    pub const EPERM: Errno = Errno(1);
    /// No such entry: an unknown firmware register (since Linux 5.2).
    pub const ENOENT: Errno = Errno(2);
    /// Interrupted system call.
    pub const EINTR: Errno = Errno(4);
    /// No such device or address: an unknown device attribute.
    pub const ENXIO: Errno = Errno(6);
    /// Argument list too long: KVM_GET_REG_LIST with a short buffer.
    pub const E2BIG: Errno = Errno(7);
    /// Exec format error: the vCPU has not been initialised (no KVM_ARM_VCPU_INIT).
    pub const ENOEXEC: Errno = Errno(8);
    /// Out of memory.
    pub const ENOMEM: Errno = Errno(12);
    /// Bad address.
    pub const EFAULT: Errno = Errno(14);
    /// Device or resource busy: a change after the VM has run.
    pub const EBUSY: Errno = Errno(16);
    /// File exists: an SMCCC filter range that overlaps another.
    pub const EEXIST: Errno = Errno(17);
    /// Invalid argument.
    pub const EINVAL: Errno = Errno(22);
    /// Function not implemented.
    pub const ENOSYS: Errno = Errno(38);
    /// Operation not supported.
    pub const EOPNOTSUPP: Errno = Errno(95);

    const NAMES: [(Errno, &'static str); 13] = [
        (Errno::EPERM, "EPERM"),
        (Errno::ENOENT, "ENOENT"),
        (Errno::EINTR, "EINTR"),
        (Errno::ENXIO, "ENXIO"),
        (Errno::E2BIG, "E2BIG"),
        (Errno::ENOEXEC, "ENOEXEC"),
        (Errno::ENOMEM, "ENOMEM"),
        (Errno::EFAULT, "EFAULT"),
        (Errno::EBUSY, "EBUSY"),
        (Errno::EEXIST, "EEXIST"),
        (Errno::EINVAL, "EINVAL"),
        (Errno::ENOSYS, "ENOSYS"),
        (Errno::EOPNOTSUPP, "EOPNOTSUPP"),
    ];

    /// The errno's symbolic name (`"EINVAL"`), or `"E<n>"` for a value without a name here.
    pub fn name(self) -> String {
        Self::NAMES
            .iter()
            .find(|(e, _)| *e == self)
            .map_or_else(|| format!("E{}", self.0), |(_, n)| (*n).to_string())
    }

    /// The errno with this symbolic name, if it is one of the named values.
    pub fn from_name(name: &str) -> Option<Errno> {
        Self::NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(e, _)| *e)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// So that a backend can return an errno as an error (armfw-kvm's accessors do).
impl std::error::Error for Errno {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_values_match_linux_asm_generic_errno_base() {
        assert_eq!(Errno::ENOENT.0, 2);
        assert_eq!(Errno::ENOEXEC.0, 8);
        assert_eq!(Errno::EBUSY.0, 16);
        assert_eq!(Errno::EEXIST.0, 17);
        assert_eq!(Errno::EINVAL.0, 22);
    }

    #[test]
    fn errno_name_round_trips() {
        assert_eq!(Errno::from_name("EBUSY"), Some(Errno::EBUSY));
        assert_eq!(Errno::EBUSY.name(), "EBUSY");
        assert_eq!(Errno(99).name(), "E99");
        assert_eq!(Errno::from_name("E99"), None);
    }
}

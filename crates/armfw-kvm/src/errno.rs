// SPDX-License-Identifier: Apache-2.0 OR MIT
//! errno values, as KVM's ioctls return them.

use std::fmt;

/// An errno value returned by a failed ioctl or system call.
///
/// Wherever this crate returns `Err(Errno)`, the number is the one the kernel returned:
/// the crate never invents errno values for its own failures.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub struct Errno(pub i32);

impl Errno {
    /// The calling thread's current errno.
    pub fn last() -> Errno {
        Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    /// The errno number.
    pub fn raw(self) -> i32 {
        self.0
    }

    /// The symbolic name, as in errno(3) (`"EINVAL"`, `"ENOENT"`, ...), including the
    /// kernel-internal values that occasionally reach userspace (`"ENOTSUPP"`, 524).
    /// `None` for a number that Linux does not define.
    pub fn name(self) -> Option<&'static str> {
        errno_name(self.0)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", std::io::Error::from_raw_os_error(self.0)),
            None => write!(f, "errno {}", self.0),
        }
    }
}

impl std::error::Error for Errno {}

/// The same number as the core's errno type (which names only the values KVM's firmware
/// paths return and knows nothing of the calling thread).
impl From<Errno> for armfw::abi::Errno {
    fn from(e: Errno) -> armfw::abi::Errno {
        armfw::abi::Errno(e.0)
    }
}

impl From<kvm_ioctls::Error> for Errno {
    fn from(e: kvm_ioctls::Error) -> Errno {
        Errno(e.errno())
    }
}

macro_rules! errno_names {
    ($n:expr; $($name:ident)*; $($num:literal $kname:ident)*) => {
        match $n {
            $(libc::$name => Some(stringify!($name)),)*
            $($num => Some(stringify!($kname)),)*
            _ => None,
        }
    };
}

/// Linux's errno names (include/uapi/asm-generic/errno-base.h, errno.h), without the
/// aliases EWOULDBLOCK, EDEADLOCK and ENOTSUP, plus the kernel-internal values of
/// include/linux/errno.h.
fn errno_name(n: i32) -> Option<&'static str> {
    errno_names!(n;
        EPERM ENOENT ESRCH EINTR EIO ENXIO E2BIG ENOEXEC EBADF ECHILD EAGAIN ENOMEM EACCES
        EFAULT ENOTBLK EBUSY EEXIST EXDEV ENODEV ENOTDIR EISDIR EINVAL ENFILE EMFILE ENOTTY
        ETXTBSY EFBIG ENOSPC ESPIPE EROFS EMLINK EPIPE EDOM ERANGE EDEADLK ENAMETOOLONG ENOLCK
        ENOSYS ENOTEMPTY ELOOP ENOMSG EIDRM ECHRNG EL2NSYNC EL3HLT EL3RST ELNRNG EUNATCH ENOCSI
        EL2HLT EBADE EBADR EXFULL ENOANO EBADRQC EBADSLT EBFONT ENOSTR ENODATA ETIME ENOSR
        ENONET ENOPKG EREMOTE ENOLINK EADV ESRMNT ECOMM EPROTO EMULTIHOP EDOTDOT EBADMSG
        EOVERFLOW ENOTUNIQ EBADFD EREMCHG ELIBACC ELIBBAD ELIBSCN ELIBMAX ELIBEXEC EILSEQ
        ERESTART ESTRPIPE EUSERS ENOTSOCK EDESTADDRREQ EMSGSIZE EPROTOTYPE ENOPROTOOPT
        EPROTONOSUPPORT ESOCKTNOSUPPORT EOPNOTSUPP EPFNOSUPPORT EAFNOSUPPORT EADDRINUSE
        EADDRNOTAVAIL ENETDOWN ENETUNREACH ENETRESET ECONNABORTED ECONNRESET ENOBUFS EISCONN
        ENOTCONN ESHUTDOWN ETOOMANYREFS ETIMEDOUT ECONNREFUSED EHOSTDOWN EHOSTUNREACH EALREADY
        EINPROGRESS ESTALE EUCLEAN ENOTNAM ENAVAIL EISNAM EREMOTEIO EDQUOT ENOMEDIUM
        EMEDIUMTYPE ECANCELED ENOKEY EKEYEXPIRED EKEYREVOKED EKEYREJECTED EOWNERDEAD
        ENOTRECOVERABLE ERFKILL EHWPOISON;
        512 ERESTARTSYS 513 ERESTARTNOINTR 514 ERESTARTNOHAND 515 ENOIOCTLCMD
        516 ERESTART_RESTARTBLOCK 517 EPROBE_DEFER 518 EOPENSTALE 519 ENOPARAM
        521 EBADHANDLE 522 ENOTSYNC 523 EBADCOOKIE 524 ENOTSUPP 525 ETOOSMALL
        526 ESERVERFAULT 527 EBADTYPE 528 EJUKEBOX 529 EIOCBQUEUED 530 ERECALLCONFLICT
        531 ENOGRACE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_of_einval_is_einval() {
        assert_eq!(Errno(22).name(), Some("EINVAL"));
    }

    #[test]
    fn name_of_kernel_internal_enotsupp_is_known() {
        assert_eq!(Errno(524).name(), Some("ENOTSUPP"));
    }

    #[test]
    fn name_of_unknown_number_is_none() {
        assert_eq!(Errno(4095).name(), None);
    }

    #[test]
    fn display_shows_name_first() {
        assert!(Errno(libc::ENOENT).to_string().starts_with("ENOENT ("));
    }
}

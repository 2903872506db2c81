//! The SMCCC filter (Linux 6.4, `Documentation/virt/kvm/devices/vm.rst` §6): ranges of
//! function ids that KVM handles, denies, or forwards to userspace.

use crate::abi::Errno;

/// What the filter does with a function id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FilterAction {
    /// `KVM_SMCCC_FILTER_HANDLE` (0): KVM handles the call (the default).
    Handle,
    /// `KVM_SMCCC_FILTER_DENY` (1): the guest gets NOT_SUPPORTED.
    Deny,
    /// `KVM_SMCCC_FILTER_FWD_TO_USER` (2): KVM exits with `KVM_EXIT_HYPERCALL`.
    Forward,
}

impl FilterAction {
    /// The KVM value (`KVM_SMCCC_FILTER_*`).
    pub const fn kvm_value(self) -> u8 {
        match self {
            FilterAction::Handle => 0,
            FilterAction::Deny => 1,
            FilterAction::Forward => 2,
        }
    }

    /// The action with this KVM value (0..=2).
    pub const fn from_kvm_value(v: u8) -> Option<FilterAction> {
        Some(match v {
            0 => FilterAction::Handle,
            1 => FilterAction::Deny,
            2 => FilterAction::Forward,
            _ => return None,
        })
    }
}

/// The first and last id of the SMC32 and SMC64 architecture ranges that KVM reserves as
/// HANDLE on the first filter write (Linux `kvm_smccc_filter_insert_reserved()`).
pub const RESERVED_RANGES: [(u32, u32); 2] =
    [(0x8000_0000, 0x8000_ffff), (0xc000_0000, 0xc000_ffff)];

/// The filter of one VM: disjoint ranges `[first, last]` with an action each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SmcccFilter {
    ranges: Vec<(u32, u32, FilterAction)>,
}

impl SmcccFilter {
    /// Whether any range has been inserted (KVM then consults the filter for every call).
    pub fn is_configured(&self) -> bool {
        !self.ranges.is_empty()
    }

    /// The ranges, ascending: `(first, last, action)`, the reserved ones included.
    pub fn ranges(&self) -> &[(u32, u32, FilterAction)] {
        &self.ranges
    }

    /// The action for `func_id`: HANDLE where no range covers it.
    pub fn action(&self, func_id: u32) -> FilterAction {
        let i = self.ranges.partition_point(|r| r.1 < func_id);
        match self.ranges.get(i) {
            Some(&(first, _, action)) if first <= func_id => action,
            _ => FilterAction::Handle,
        }
    }

    /// Insert a range with KVM's checks, in KVM's order (Linux `kvm_smccc_set_filter()`):
    /// non-zero pad, then a zero count, a wrapping range or an unknown action (EINVAL); then
    /// a VM that has run (EBUSY); then, on the first write, the reserved ranges are inserted;
    /// then an overlap (EEXIST).
    pub(crate) fn insert(
        &mut self,
        base: u32,
        nr_functions: u32,
        action: u8,
        pad: [u8; 15],
        has_run: bool,
    ) -> Result<(), Errno> {
        if pad.iter().any(|&b| b != 0) {
            return Err(Errno::EINVAL);
        }
        let Some(action) = FilterAction::from_kvm_value(action) else {
            return Err(Errno::EINVAL);
        };
        if nr_functions == 0 {
            return Err(Errno::EINVAL);
        }
        let Some(last) = base.checked_add(nr_functions - 1) else {
            return Err(Errno::EINVAL);
        };
        if has_run {
            return Err(Errno::EBUSY);
        }
        if self.ranges.is_empty() {
            for (first, last) in RESERVED_RANGES {
                self.ranges.push((first, last, FilterAction::Handle));
            }
        }
        if self.ranges.iter().any(|&(f, l, _)| base <= l && f <= last) {
            return Err(Errno::EEXIST);
        }
        let at = self.ranges.partition_point(|r| r.0 < base);
        self.ranges.insert(at, (base, last, action));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(f: &mut SmcccFilter, base: u32, n: u32, action: u8) -> Result<(), Errno> {
        f.insert(base, n, action, [0; 15], false)
    }

    #[test]
    fn filter_unconfigured_handles_everything() {
        let f = SmcccFilter::default();
        assert_eq!(f.action(0x8400_0000), FilterAction::Handle);
        assert!(!f.is_configured());
    }

    #[test]
    fn filter_first_insert_reserves_the_architecture_ranges() {
        let mut f = SmcccFilter::default();
        assert_eq!(insert(&mut f, 0x8200_0010, 1, 2), Ok(()));
        assert_eq!(f.ranges().len(), 3);
        assert_eq!(insert(&mut f, 0x8000_8000, 1, 1), Err(Errno::EEXIST));
        assert_eq!(insert(&mut f, 0xc000_0000, 1, 1), Err(Errno::EEXIST));
        assert_eq!(insert(&mut f, 0x8000_ffff, 2, 1), Err(Errno::EEXIST));
        assert_eq!(insert(&mut f, 0x8001_0000, 1, 1), Ok(()));
    }

    #[test]
    fn filter_overlap_is_eexist_and_lookup_finds_the_range() {
        let mut f = SmcccFilter::default();
        assert_eq!(insert(&mut f, 0xc400_0003, 1, 1), Ok(()));
        assert_eq!(insert(&mut f, 0xc400_0003, 1, 1), Err(Errno::EEXIST));
        assert_eq!(insert(&mut f, 0xc400_0000, 4, 1), Err(Errno::EEXIST));
        assert_eq!(f.action(0xc400_0003), FilterAction::Deny);
        assert_eq!(f.action(0xc400_0004), FilterAction::Handle);
    }

    #[test]
    fn filter_validation_order_matches_kvm() {
        let mut f = SmcccFilter::default();
        assert_eq!(
            f.insert(0x8400_0000, 1, 1, [0xff; 15], true),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            f.insert(0xc400_0003, 0, 1, [0; 15], true),
            Err(Errno::EINVAL)
        );
        assert_eq!(f.insert(0, 0, 1, [0; 15], true), Err(Errno::EINVAL));
        assert_eq!(
            f.insert(0xffff_ffff, 0xffff_ffff, 1, [0; 15], true),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            f.insert(0x8400_0000, 1, 3, [0; 15], true),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            f.insert(0x8400_0000, 1, 1, [0; 15], true),
            Err(Errno::EBUSY)
        );
        assert!(!f.is_configured());
    }

    #[test]
    fn filter_range_may_end_at_the_last_id() {
        let mut f = SmcccFilter::default();
        assert_eq!(insert(&mut f, 0xffff_fff0, 16, 2), Ok(()));
        assert_eq!(f.action(0xffff_ffff), FilterAction::Forward);
    }
}

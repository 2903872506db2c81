//! Pool baselines: the firmware configuration every host of a pool accepts (see
//! [`baseline()`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::VersionSet;
use crate::abi::{Errno, FwReg, PsciVersion};
use crate::json::hex;
use crate::profile::Profile;
use crate::register;

/// The four firmware feature bitmaps, in register order.
const BITMAPS: [FwReg; 4] = [
    FwReg::StdBmap,
    FwReg::StdHypBmap,
    FwReg::VendorHypBmap,
    FwReg::VendorHypBmap2,
];

/// The spread of one WORKAROUND register's host level over a pool (WORKAROUND_2 levels as KVM
/// compares them: 0 or 3). A host without the register counts as level 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WorkaroundSpread {
    /// The register.
    pub reg: FwReg,
    /// The lowest host level.
    pub lowest: u64,
    /// A host (index in the pool) at the lowest level.
    pub lowest_host: usize,
    /// The highest host level.
    pub highest: u64,
    /// A host (index in the pool) at the highest level.
    pub highest_host: usize,
}

impl WorkaroundSpread {
    /// Whether every host has the same level, so VMs move freely for this register.
    pub const fn is_uniform(&self) -> bool {
        self.lowest == self.highest
    }
}

/// The firmware configuration every host of a pool accepts, from [`baseline()`]: what it
/// holds and why a VM created with it moves between the hosts of the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Baseline {
    /// How many hosts the pool has.
    pub hosts: usize,
    /// The PSCI versions every host offers.
    pub psci_versions: VersionSet,
    /// The PSCI version VMs are pinned to: the newest of [`Baseline::psci_versions`].
    pub psci_version: PsciVersion,
    /// The bitmap values, by bitmap index (STD, STD_HYP, VENDOR_HYP, VENDOR_HYP_2); `None`
    /// where no host has the register.
    bitmaps: [Option<u64>; 4],
    /// WORKAROUND_1, _2 and _3 across the pool.
    pub workarounds: [WorkaroundSpread; 3],
    /// Whether every host has KVM_CAP_ARM_SYSTEM_SUSPEND.
    pub system_suspend: bool,
    /// Whether every host has the SMCCC filter.
    pub smccc_filter: bool,
}

/// Why a pool has no baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BaselineError {
    /// No hosts.
    #[error("the pool is empty")]
    EmptyPool,
    /// A host cannot give vCPUs PSCI_0_2.
    #[error("host {host} of the pool lacks KVM_CAP_ARM_PSCI_0_2")]
    NoPsci02 {
        /// The host's index in the pool.
        host: usize,
    },
    /// The hosts offer no PSCI version in common.
    #[error("the hosts of the pool offer no PSCI version in common")]
    NoCommonPsciVersion,
    /// Some hosts have a bitmap register and another lacks it, and no value of the register
    /// means its absence.
    #[error("host {host} of the pool lacks {reg}, which other hosts have")]
    BitmapMissing {
        /// The register.
        reg: FwReg,
        /// The host's index in the pool.
        host: usize,
    },
}

/// Why a baseline could not be applied to a VM. The VM is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// vCPU 0 does not exist or is not initialised (registers are reached through a vCPU).
    #[error("vCPU 0 is not initialised; apply the baseline after KVM_ARM_VCPU_INIT")]
    NoVcpu,
    /// The VM has run: bitmaps are locked (EBUSY).
    #[error("the VM has already run; apply the baseline before the first KVM_RUN")]
    HasRun,
    /// The VM's host lacks a register the baseline sets to a value other than its absence.
    #[error("the host lacks {0}, which the baseline sets; it is not a host of the pool")]
    MissingRegister(FwReg),
    /// The VM's host refused a write of the CPU baseline: the baseline does not cover it.
    #[error(
        "writing {} = {value:#x}: {errno}; the CPU baseline does not cover the host",
        crate::vcpu::names::reg_name(*.id)
    )]
    CpuRegister {
        /// The register's ONE_REG id.
        id: u64,
        /// The value.
        value: u64,
        /// KVM's answer.
        errno: Errno,
    },
    /// The VM's host refused a write: it is not a host of the pool.
    #[error("writing {reg} = {value:#x}: {errno}; the host is not a host of the pool")]
    Register {
        /// The register.
        reg: FwReg,
        /// The value.
        value: u64,
        /// KVM's answer.
        errno: Errno,
    },
}

/// The baseline of a pool of hosts. Does not allocate: a pool of 100 000 profiles is one pass.
///
/// A VM created on any host of the pool with the baseline applied ([`Baseline::apply`], before
/// its first KVM_RUN) saves a state that [`super::check`] finds compatible (with a plan at
/// most) on every other host of the pool, as far as the VM's settings can make it:
///
/// - PSCI_VERSION: the newest version every host offers. KVM keeps a written version VM-wide
///   (`kvm_arm_set_fw_reg`), so the guest never sees a version some host lacks.
/// - The service bitmaps: the bits on by default on every host. Bits outside the baseline are
///   off from the start, so no host has to offer them. A bitmap that only some hosts have is
///   possible only where a value means the register's absence (VENDOR_HYP_BMAP_2 = 0), and
///   then that value is the baseline.
/// - The WORKAROUND levels are the hosts' own (SET stores nothing), so no VM setting changes
///   them: the baseline reports their spread. A VM cannot move between hosts at different
///   levels ([`super::Rule::WorkaroundAboveHost`], [`super::Rule::WorkaroundBelowHost`]);
///   [`Baseline::any_to_any`] says whether the pool has no such pair.
/// - The capabilities every host has: a VM that enables system suspend or installs SMCCC
///   filter ranges is portable only where every host has them.
pub fn baseline<'a>(
    pool: impl IntoIterator<Item = &'a Profile>,
) -> Result<Baseline, BaselineError> {
    let mut hosts = 0usize;
    let mut versions = VersionSet::default();
    let mut bitmaps: [Option<u64>; 4] = [None; 4];
    // The first host seen with, and without, each bitmap register.
    let mut with: [Option<usize>; 4] = [None; 4];
    let mut without: [Option<usize>; 4] = [None; 4];
    let was = [
        FwReg::SmcccArchWorkaround1,
        FwReg::SmcccArchWorkaround2,
        FwReg::SmcccArchWorkaround3,
    ];
    let mut workarounds = was.map(|reg| WorkaroundSpread {
        reg,
        lowest: u64::MAX,
        lowest_host: 0,
        highest: 0,
        highest_host: 0,
    });
    let mut system_suspend = true;
    let mut smccc_filter = true;
    for (host, p) in pool.into_iter().enumerate() {
        hosts += 1;
        if !p.capabilities().psci_0_2 {
            return Err(BaselineError::NoPsci02 { host });
        }
        let offered = VersionSet::from_versions(p.psci_versions());
        versions = if host == 0 {
            offered
        } else {
            versions.intersect(offered)
        };
        for reg in BITMAPS {
            let Some(i) = reg.bitmap_index() else {
                continue;
            };
            let (Some(value), Some(w), Some(wo)) =
                (bitmaps.get_mut(i), with.get_mut(i), without.get_mut(i))
            else {
                continue;
            };
            match p.register(reg) {
                Some(r) => {
                    *value = Some(value.map_or(r.default, |v| v & r.default));
                    w.get_or_insert(host);
                }
                None => {
                    wo.get_or_insert(host);
                }
            }
        }
        for s in &mut workarounds {
            // A host's value is its level's canonical encoding (profiles hold no legacy
            // WORKAROUND_2 values), so values compare as levels do.
            let level = p.workaround_level(s.reg).unwrap_or(0);
            if level < s.lowest {
                s.lowest = level;
                s.lowest_host = host;
            }
            if level > s.highest || host == 0 {
                s.highest = level;
                s.highest_host = host;
            }
        }
        system_suspend &= p.capabilities().system_suspend;
        smccc_filter &= p.capabilities().smccc_filter;
    }
    if hosts == 0 {
        return Err(BaselineError::EmptyPool);
    }
    let psci_version = versions
        .newest()
        .ok_or(BaselineError::NoCommonPsciVersion)?;
    for reg in BITMAPS {
        let Some(i) = reg.bitmap_index() else {
            continue;
        };
        if let (Some(Some(_)), Some(Some(host))) = (with.get(i), without.get(i)) {
            match register::firmware(reg).absence {
                Some(a) => {
                    if let Some(v) = bitmaps.get_mut(i) {
                        *v = v.map(|v| v & a);
                    }
                }
                None => return Err(BaselineError::BitmapMissing { reg, host: *host }),
            }
        }
    }
    Ok(Baseline {
        hosts,
        psci_versions: versions,
        psci_version,
        bitmaps,
        workarounds,
        system_suspend,
        smccc_filter,
    })
}

impl Baseline {
    /// The baseline value of a bitmap register (`None` for other registers and where no host
    /// of the pool has it).
    pub fn bitmap(&self, reg: FwReg) -> Option<u64> {
        reg.bitmap_index()
            .and_then(|i| self.bitmaps.get(i).copied().flatten())
    }

    /// The registers to write at VM creation, in KVM's order: PSCI_VERSION, then the bitmaps.
    pub fn registers(&self) -> impl Iterator<Item = (FwReg, u64)> + '_ {
        let psci = (FwReg::PsciVersion, u64::from(self.psci_version.0));
        std::iter::once(psci).chain(
            FwReg::ALL
                .into_iter()
                .filter_map(|r| self.bitmap(r).map(|v| (r, v))),
        )
    }

    /// Whether every WORKAROUND level is the same on every host, so a VM created with the
    /// baseline can move between any two hosts of the pool.
    pub fn any_to_any(&self) -> bool {
        self.workarounds.iter().all(WorkaroundSpread::is_uniform)
    }

    /// The JSON form ([`BaselineJson`]); `pool` names the hosts (the profiles the baseline
    /// was made of).
    pub fn to_json(&self, pool: &[Profile]) -> Value {
        serde_json::to_value(self.document(pool)).unwrap_or(Value::Null)
    }

    /// The `armfw baseline --json` document.
    pub fn document(&self, pool: &[Profile]) -> BaselineJson {
        let name = |i: usize| pool.get(i).map(|p| p.name().to_string());
        BaselineJson {
            format: BASELINE_FORMAT.to_string(),
            pool: pool.iter().map(|p| p.name().to_string()).collect(),
            hosts: self.hosts,
            no_baseline: None,
            psci_version: Some(hex(self.psci_version.0.into())),
            psci_versions: self.psci_versions.iter().map(|v| hex(v.0.into())).collect(),
            registers: self
                .registers()
                .map(|(r, v)| BaselineRegisterJson {
                    name: r.name().to_string(),
                    id: hex(r.id()),
                    value: hex(v),
                })
                .collect(),
            workarounds: self
                .workarounds
                .iter()
                .map(|s| WorkaroundJson {
                    name: s.reg.name().to_string(),
                    lowest: hex(s.lowest),
                    lowest_host: name(s.lowest_host),
                    highest: hex(s.highest),
                    highest_host: name(s.highest_host),
                    uniform: s.is_uniform(),
                })
                .collect(),
            system_suspend: Some(self.system_suspend),
            smccc_filter: Some(self.smccc_filter),
            any_to_any: self.any_to_any(),
            cpu: None,
            no_cpu_baseline: None,
        }
    }
}

/// The format name and version of `armfw baseline --json` ([`BaselineJson`]). Version 2
/// added the CPU part ([`BaselineJson::cpu`]).
pub const BASELINE_FORMAT: &str = "armfw-baseline/2";

/// `armfw baseline --json`: one document (docs/schemas/armfw-baseline-2.schema.json), also
/// when the pool has no baseline (`no_baseline` says why; the baseline's keys are then empty
/// or `null`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineJson {
    /// Always [`BASELINE_FORMAT`].
    pub format: String,
    /// The hosts' profile names, in the order given.
    pub pool: Vec<String>,
    /// How many hosts.
    pub hosts: usize,
    /// Why the pool has no baseline; `null` when it has one.
    pub no_baseline: Option<String>,
    /// The PSCI version the baseline pins.
    pub psci_version: Option<String>,
    /// The PSCI versions every host offers.
    pub psci_versions: Vec<String>,
    /// The registers the baseline writes, in register order.
    pub registers: Vec<BaselineRegisterJson>,
    /// The spread of each WORKAROUND level over the pool.
    pub workarounds: Vec<WorkaroundJson>,
    /// Whether every host has KVM_CAP_ARM_SYSTEM_SUSPEND.
    pub system_suspend: Option<bool>,
    /// Whether every host has the SMCCC filter.
    pub smccc_filter: Option<bool>,
    /// Whether a VM created with the baseline can move between any two hosts (of the hosts
    /// the CPU baseline covers, where there is one).
    pub any_to_any: bool,
    /// The CPU baseline; `null` where the pool has none.
    pub cpu: Option<super::cpu::CpuBaselineJson>,
    /// Why the pool has no CPU baseline; `null` when it has one.
    pub no_cpu_baseline: Option<String>,
}

impl BaselineJson {
    /// The document with the CPU part: the CPU baseline of the pool, or why it has none. A
    /// pool whose CPU baseline leaves hosts out, or that has none, is not any-to-any.
    pub fn with_cpu(
        mut self,
        pool: &[Profile],
        cpu: Result<&super::cpu::CpuBaseline, &super::cpu::CpuBaselineError>,
    ) -> BaselineJson {
        match cpu {
            Ok(c) => {
                self.any_to_any &= c.left_out.is_empty();
                self.cpu = Some(c.document(pool));
            }
            Err(e) => {
                self.any_to_any = false;
                self.no_cpu_baseline = Some(e.describe(pool));
            }
        }
        self
    }

    /// The document for a pool without a baseline.
    pub fn none(pool: &[Profile], why: &str) -> BaselineJson {
        BaselineJson {
            format: BASELINE_FORMAT.to_string(),
            pool: pool.iter().map(|p| p.name().to_string()).collect(),
            hosts: pool.len(),
            no_baseline: Some(why.to_string()),
            psci_version: None,
            psci_versions: Vec::new(),
            registers: Vec::new(),
            workarounds: Vec::new(),
            system_suspend: None,
            smccc_filter: None,
            any_to_any: false,
            cpu: None,
            no_cpu_baseline: None,
        }
    }
}

/// A register the baseline writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineRegisterJson {
    /// Its name.
    pub name: String,
    /// Its ONE_REG id.
    pub id: String,
    /// The value.
    pub value: String,
}

/// One WORKAROUND register's spread of host levels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkaroundJson {
    /// The register's name.
    pub name: String,
    /// The lowest host level.
    pub lowest: String,
    /// A host at the lowest level.
    pub lowest_host: Option<String>,
    /// The highest host level.
    pub highest: String,
    /// A host at the highest level.
    pub highest_host: Option<String>,
    /// Whether every host is at the same level.
    pub uniform: bool,
}

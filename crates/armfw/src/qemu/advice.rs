//! What would make a QEMU load work: another QEMU release, registers QEMU must leave out or
//! tolerate, or a VM configured otherwise at creation. Computed from the guest's own ID
//! registers and the destination's rules, never from a list of known cases.

use crate::Profile;
use crate::compat::whole::{MMFR3, unobservable};
use crate::compat::{RegisterExplanation, explain_refusal};
use crate::vcpu::names::reg_name;

use super::policy::{HostCpu, Incoming, LoadPrediction, LoadStop, QemuRelease, predict};

/// One way to make the move work.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Remedy {
    /// This QEMU release loads the stream on the destination.
    Release(QemuRelease),
    /// Ids in the stream that the destination does not list and that the guest cannot
    /// observe (its own ID registers show their features absent): a QEMU that leaves them
    /// out, or tolerates them, loads it. (id, the ID-register field).
    LeaveOut(Vec<(u64, &'static str)>),
    /// Ids in the stream that the destination does not list and that the guest may use: no
    /// QEMU can drop them safely; only a destination that lists them takes the VM.
    Observable(Vec<u64>),
    /// A saved value the destination's KVM refuses, and why.
    Value {
        /// The register.
        id: u64,
        /// The saved value.
        saved: u64,
        /// What the destination takes instead, and the remedy.
        explanation: RegisterExplanation,
    },
}

impl Remedy {
    /// One line for reports.
    pub fn text(&self) -> String {
        let names =
            |ids: &mut dyn Iterator<Item = u64>| ids.map(reg_name).collect::<Vec<_>>().join(", ");
        match self {
            Remedy::Release(r) => format!(
                "QEMU {}.{} loads it on this destination",
                r.version().0,
                r.version().1
            ),
            Remedy::LeaveOut(list) => {
                let mut fields: Vec<&str> = list.iter().map(|l| l.1).collect();
                fields.dedup();
                format!(
                    "leave out (or tolerate) {}: the guest cannot observe them, its {} = 0",
                    names(&mut list.iter().map(|l| l.0)),
                    fields.join(", ")
                )
            }
            Remedy::Observable(ids) => format!(
                "no QEMU can leave out {}: the guest's ID registers show their features, so only a destination that lists them takes it",
                names(&mut ids.iter().copied())
            ),
            Remedy::Value {
                id,
                saved,
                explanation,
            } => format!(
                "{} = {saved:#x}: the destination takes {}; {}",
                reg_name(*id),
                explanation.accepts,
                explanation.remedy
            ),
        }
    }
}

/// The remedies for a load `prediction` says fails (none for one that works): the other
/// releases that load it, what the ids on the stream side only mean to the guest, and why
/// each refused value is refused.
pub fn remedies(
    prediction: &LoadPrediction,
    incoming: &[Incoming],
    dest: &Profile,
    cpu: HostCpu,
) -> Vec<Remedy> {
    let Some(stop) = &prediction.stop else {
        return Vec::new();
    };
    let mut out: Vec<Remedy> = QemuRelease::ALL
        .into_iter()
        .filter(|&r| r != prediction.release && predict(r, incoming, dest, cpu).loads())
        .map(Remedy::Release)
        .collect();
    let Some(inc) = stop.vcpu().and_then(|v| incoming.get(v)) else {
        return out;
    };
    match stop {
        LoadStop::Length { .. } | LoadStop::Unknown { .. } => {
            let listed = &prediction.destination;
            let mmfr3 = inc.cpregs.iter().find(|r| r.0 == MMFR3).map_or(0, |r| r.1);
            let only: Vec<u64> = inc
                .cpregs
                .iter()
                .map(|r| r.0)
                .filter(|id| listed.binary_search(id).is_err())
                .collect();
            let (hidden, seen): (Vec<u64>, Vec<u64>) = only
                .iter()
                .partition(|&&id| unobservable(id, mmfr3).is_some());
            if !hidden.is_empty() {
                out.push(Remedy::LeaveOut(
                    hidden
                        .iter()
                        .filter_map(|&id| unobservable(id, mmfr3).map(|f| (id, f)))
                        .collect(),
                ));
            }
            if !seen.is_empty() {
                out.push(Remedy::Observable(seen));
            }
        }
        LoadStop::Refused { writes, .. } => {
            for &(id, errno) in writes {
                let saved = inc.cpregs.iter().find(|r| r.0 == id).map(|r| r.1);
                // A register the stream does not carry was written with the destination's
                // own value: nothing of the guest's to explain.
                let Some(saved) = saved else { continue };
                let mut explanation = explain_refusal(dest, prediction.features, id, saved, errno);
                if crate::abi::OneRegId(id).is_firmware_class() {
                    // QEMU writes back what KVM gave the guest and has no option to choose it.
                    explanation.remedy = "QEMU keeps the value KVM gave the guest at creation and has no option to choose another, so only a destination whose KVM takes it; a VMM that pins the firmware at creation (armfw baseline) moves such VMs".into();
                }
                out.push(Remedy::Value {
                    id,
                    saved,
                    explanation,
                });
            }
        }
        LoadStop::Core { .. } | LoadStop::Create { .. } => {}
    }
    out
}

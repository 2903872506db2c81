//! Fleet mobility: for every ordered pair of hosts, whether a VM created with the defaults of
//! the first can move to the second, and the groups of hosts a VM can move between freely.
//!
//! Each pair is the migration check of [`super::check`] (firmware state) or
//! [`super::whole::plan`] (the whole VM), so the answer is the same as `armfw check` gives
//! for that pair. Hosts with identical profiles (the same facts under different names) are
//! checked once: a fleet of many hosts over few distinct profiles costs as many checks as
//! ordered pairs of distinct profiles.

use crate::Profile;
use crate::Snapshot;
use crate::abi::CpuFeatures;
use crate::compat::Verdict;

/// What moves: the firmware state, or the whole VM with these vCPU features.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The firmware state (snapshot format 1.0).
    Firmware,
    /// The whole VM (snapshot format 2.0), with the vCPU features.
    Whole(CpuFeatures),
    /// The whole VM with the vCPU features, created with the fleet's own pool baseline: its
    /// CPU baseline ([`super::cpu_baseline`]) and, where the fleet has one, its firmware
    /// baseline ([`super::baseline()`]). A host the CPU baseline leaves out cannot create
    /// such a VM ([`Mobility::uncreatable`] says why).
    Baseline(CpuFeatures),
}

/// How a VM of one host fares on another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Move {
    /// A restore as today's VMMs do it succeeds and the guest sees the same.
    Restores,
    /// Only armfw's plan restores it.
    WithPlan,
    /// Refused; the first reason.
    Refused(String),
}

impl Move {
    /// Whether the VM can move (with armfw's plan where needed).
    pub fn reachable(&self) -> bool {
        !matches!(self, Move::Refused(_))
    }
}

/// The mobility of a fleet. Host indices are positions in the profile list given to
/// [`mobility`]. Hosts with the same facts form one class, and the answers are kept per
/// class, so a fleet of many hosts over few profiles stays small.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mobility {
    /// Each host's class.
    classes: Vec<usize>,
    /// `class_moves[c][d]`: a VM of a host of class `c` moved to a host of class `d` (for
    /// `c == d`, to another host with the same facts).
    class_moves: Vec<Vec<Move>>,
    /// Hosts a VM cannot even be created on with the scope's features, with the reason.
    pub uncreatable: Vec<(usize, String)>,
    /// Groups of hosts between which a VM can move in both directions (the strongly
    /// connected parts of the reachability graph), largest first, each sorted.
    pub groups: Vec<Vec<usize>>,
    /// How many distinct profiles the fleet has.
    pub distinct: usize,
}

impl Mobility {
    /// How many hosts.
    pub fn hosts(&self) -> usize {
        self.classes.len()
    }

    /// A VM of host `a` moved to host `b` (`None` for `a == b` or a host out of range).
    pub fn get(&self, a: usize, b: usize) -> Option<&Move> {
        if a == b {
            return None;
        }
        let (c, d) = (*self.classes.get(a)?, *self.classes.get(b)?);
        self.class_moves.get(c)?.get(d)
    }

    /// Every ordered pair of distinct hosts with its move, row by row.
    pub fn pairs(&self) -> impl Iterator<Item = (usize, usize, &Move)> + '_ {
        let n = self.hosts();
        (0..n).flat_map(move |a| (0..n).filter_map(move |b| self.get(a, b).map(|m| (a, b, m))))
    }

    /// Whether every move between distinct hosts is possible.
    pub fn all_reachable(&self) -> bool {
        // Per class pair: a class with one host has no move to itself.
        let mut count = vec![0usize; self.class_moves.len()];
        for &c in &self.classes {
            count[c] += 1;
        }
        self.class_moves.iter().enumerate().all(|(c, row)| {
            row.iter()
                .enumerate()
                .all(|(d, m)| m.reachable() || (c == d && count[c] < 2) || count[c] == 0)
        })
    }
}

/// The pool baselines a [`Scope::Baseline`] fleet creates its VMs with.
struct Baselines {
    cpu: Result<super::CpuBaseline, String>,
    firmware: Option<super::Baseline>,
}

/// The state a VM of the host at `index` of `profiles` has after its first run, in `scope`:
/// created with the host's defaults, or with the fleet's baselines.
fn default_state(
    profiles: &[Profile],
    index: usize,
    scope: Scope,
    baselines: Option<&Baselines>,
) -> Result<Snapshot, String> {
    let profile = &profiles[index];
    match (scope, baselines) {
        (Scope::Firmware, _) => Snapshot::created_on(profile, 1).map_err(|e| e.to_string()),
        (Scope::Baseline(_), Some(b)) => {
            let cpu = b
                .cpu
                .as_ref()
                .map_err(|e| format!("no CPU baseline: {e}"))?;
            if let Some(l) = cpu.left_out.iter().find(|l| l.host == index) {
                return Err(format!("left out of the baseline: {}", l.reason));
            }
            Snapshot::created_with_baseline(profile, 1, cpu, b.firmware.as_ref(), true)
                .map_err(|e| e.to_string())
        }
        (Scope::Whole(f) | Scope::Baseline(f), _) => {
            Snapshot::created_whole_on(profile, 1, f, true).map_err(|e| e.to_string())
        }
    }
}

/// One pair's move.
fn check_move(state: &Snapshot, dest: &Profile, scope: Scope) -> Move {
    match scope {
        Scope::Firmware => {
            let r = super::check(state, dest);
            match r.verdict {
                Verdict::Compatible => Move::Restores,
                Verdict::CompatibleWithPlan => Move::WithPlan,
                Verdict::Incompatible => {
                    Move::Refused(r.findings().find(|f| f.is_refused()).map_or_else(
                        || "refused".to_string(),
                        |f| format!("{}: {}", f.subject, f.rule.name()),
                    ))
                }
            }
        }
        Scope::Whole(_) | Scope::Baseline(_) => {
            let plan = super::whole::plan(state, dest);
            let vmm_ok = super::whole::vmm_outcomes(state, dest)
                .iter()
                .all(super::whole::PolicyOutcome::succeeds);
            match super::whole::verdict(vmm_ok, plan.firmware.verdict, plan.restores()) {
                Verdict::Compatible => Move::Restores,
                Verdict::CompatibleWithPlan => Move::WithPlan,
                Verdict::Incompatible => {
                    let why = match &plan.result {
                        Some(Err(stop)) => super::whole::stop_line(stop),
                        _ => plan.refused.first().cloned().unwrap_or_default(),
                    };
                    // The first refused operation is the reason; the rest follow from it.
                    Move::Refused(why.split("; ").next().unwrap_or_default().to_string())
                }
            }
        }
    }
}

/// The mobility of `profiles` in `scope`.
pub fn mobility(profiles: &[Profile], scope: Scope) -> Mobility {
    // Identical profiles but for the name give identical answers: check each class once.
    let (classes, reps) = classes(profiles);
    let baselines = match scope {
        Scope::Baseline(f) => Some(Baselines {
            cpu: super::cpu_baseline(profiles, Some(f)).map_err(|e| e.describe(profiles)),
            firmware: super::baseline(profiles).ok(),
        }),
        _ => None,
    };
    let states: Vec<Result<Snapshot, String>> = reps
        .iter()
        .map(|&r| default_state(profiles, r, scope, baselines.as_ref()))
        .collect();
    let class_moves: Vec<Vec<Move>> = states
        .iter()
        .map(|s| {
            reps.iter()
                .map(|&d| match s {
                    Ok(state) => check_move(state, &profiles[d], scope),
                    Err(e) => Move::Refused(e.clone()),
                })
                .collect()
        })
        .collect();
    let uncreatable = (0..profiles.len())
        .filter_map(|a| match &states[classes[a]] {
            Err(e) => Some((a, e.clone())),
            Ok(_) => None,
        })
        .collect();
    // Groups over the classes, then their hosts: the hosts of one class can move between
    // themselves when a VM of the class moves onto the class.
    let class_groups = strongly_connected(reps.len(), |c, d| class_moves[c][d].reachable());
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for g in class_groups {
        let hosts: Vec<usize> = (0..profiles.len())
            .filter(|&h| g.contains(&classes[h]))
            .collect();
        let single = g.len() == 1 && !class_moves[g[0]][g[0]].reachable();
        if single {
            groups.extend(hosts.into_iter().map(|h| vec![h]));
        } else {
            groups.push(hosts);
        }
    }
    groups.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    Mobility {
        classes,
        class_moves,
        uncreatable,
        groups,
        distinct: reps.len(),
    }
}

/// The classes of identical profiles (the same facts under other names): each profile's
/// class, and each class's first profile, in pool order.
pub(crate) fn classes(profiles: &[Profile]) -> (Vec<usize>, Vec<usize>) {
    let mut classes: Vec<usize> = Vec::with_capacity(profiles.len());
    let mut reps: Vec<usize> = Vec::new();
    for (i, p) in profiles.iter().enumerate() {
        match reps.iter().position(|&r| same_facts(&profiles[r], p)) {
            Some(c) => classes.push(c),
            None => {
                classes.push(reps.len());
                reps.push(i);
            }
        }
    }
    (classes, reps)
}

/// Whether two profiles hold the same facts (everything but the name).
fn same_facts(a: &Profile, b: &Profile) -> bool {
    a.shares_facts_with(b)
        || a.kernel() == b.kernel()
            && a.cpu() == b.cpu()
            && a.registers() == b.registers()
            && a.psci_versions() == b.psci_versions()
            && a.capabilities() == b.capabilities()
            && a.vcpu() == b.vcpu()
}

/// The strongly connected components of the graph on `0..n` with edges `edge(a, b)`, largest
/// first, each sorted (Kosaraju's algorithm; `n` is a fleet's host count).
fn strongly_connected(n: usize, edge: impl Fn(usize, usize) -> bool) -> Vec<Vec<usize>> {
    let mut order = Vec::with_capacity(n);
    let mut seen = vec![false; n];
    for s in 0..n {
        if seen[s] {
            continue;
        }
        // Iterative depth-first search: (node, next neighbour to try).
        let mut stack = vec![(s, 0)];
        seen[s] = true;
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            if let Some(w) = (*next..n).find(|&w| !seen[w] && edge(v, w)) {
                *next = w + 1;
                seen[w] = true;
                stack.push((w, 0));
            } else {
                order.push(v);
                stack.pop();
            }
        }
    }
    let mut comp = vec![usize::MAX; n];
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for &s in order.iter().rev() {
        if comp[s] != usize::MAX {
            continue;
        }
        let id = groups.len();
        let mut group = vec![s];
        comp[s] = id;
        let mut stack = vec![s];
        while let Some(v) = stack.pop() {
            for (w, c) in comp.iter_mut().enumerate() {
                if *c == usize::MAX && edge(w, v) {
                    *c = id;
                    group.push(w);
                    stack.push(w);
                }
            }
        }
        group.sort_unstable();
        groups.push(group);
    }
    groups.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_the_strongly_connected_parts() {
        // 0 <-> 1 -> 2 <-> 3, 4 alone.
        let edges = [(0, 1), (1, 0), (1, 2), (2, 3), (3, 2)];
        let g = strongly_connected(5, |a, b| edges.contains(&(a, b)));
        assert_eq!(g, vec![vec![0, 1], vec![2, 3], vec![4]]);
    }

    #[test]
    fn identical_profiles_are_checked_once_and_answer_alike() {
        let a = crate::profile::builtin_named("linux-6.12.117-max").unwrap();
        let mut parts = a.clone().into_parts();
        parts.name = "linux-6.12.117-max-copy".into();
        let copy = Profile::new(parts).unwrap();
        let b = crate::profile::builtin_named("linux-7.2.13-max").unwrap();
        let m = mobility(&[a, copy, b], Scope::Whole(CpuFeatures::NONE));
        assert_eq!(m.distinct, 2);
        assert_eq!(m.get(0, 1), Some(&Move::Restores));
        assert_eq!(m.get(0, 2), m.get(1, 2));
        assert_eq!(m.get(0, 2), Some(&Move::WithPlan));
        assert!(matches!(m.get(2, 0), Some(Move::Refused(_))));
        assert_eq!(m.get(1, 1), None);
        assert_eq!(m.pairs().count(), 6);
        assert!(!m.all_reachable());
        assert_eq!(m.groups, vec![vec![0, 1], vec![2]]);
    }
}

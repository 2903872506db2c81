//! `armfw fleet`: the mobility of a fleet, for all pairs of hosts at once.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Result;
use armfw::Profile;
use armfw::compat::fleet::{self, Mobility, Move, Scope};
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::output::{outln, print_rows, shown};

/// `armfw fleet --json`: the format name.
pub const FLEET_FORMAT: &str = "armfw-fleet/1";

/// How `armfw fleet` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The reachability matrix, reasons as footnotes, then the groups.
    Table,
    /// The mobility graph in Graphviz DOT (`dot -Tsvg`): hosts grouped by mutual
    /// reachability, one edge per reachable direction, the refusals listed beside it.
    Dot,
}

/// Arguments of `armfw fleet`.
#[derive(Debug, Args)]
#[command(after_help = "\
For every ordered pair of hosts: whether a VM created with the first host's defaults (and \
run) can move to the second, as `armfw check --from A --to B` says: restores (today's VMMs \
restore it unchanged), plan (only armfw's plan restores it) or refused (the first reason). \
Then the groups of hosts between which a VM can move in both directions. Hosts whose \
profiles hold the same facts are checked once.

Exit codes: 0 every move is possible (with armfw's plan where needed); 1 some move is \
refused; 2 bad input (an unknown profile or unreadable file); 141 standard output closed \
early.")]
pub struct FleetArgs {
    /// The hosts (built-in profile names or profile files), at least two.
    #[arg(required = true, num_args = 2.., value_name = "PROFILE")]
    profiles: Vec<String>,
    /// Move whole VMs (every register KVM lists) instead of their firmware state.
    #[arg(long)]
    whole: bool,
    /// With --whole: the VMs' vCPU features, comma-separated (default none).
    #[arg(long, value_parser = crate::parse_features, default_value = "", requires = "whole")]
    features: armfw::abi::CpuFeatures,
    /// What to print.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Print JSON (format armfw-fleet/1) instead.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

/// The JSON document.
#[derive(Serialize)]
struct FleetJson<'a> {
    format: &'static str,
    whole: bool,
    features: armfw::abi::CpuFeatures,
    hosts: Vec<&'a str>,
    distinct_profiles: usize,
    pairs: Vec<PairJson<'a>>,
    groups: Vec<Vec<&'a str>>,
}

#[derive(Serialize)]
struct PairJson<'a> {
    from: &'a str,
    to: &'a str,
    result: &'static str,
    reason: Option<&'a str>,
}

fn result_name(m: &Move) -> &'static str {
    match m {
        Move::Restores => "restores",
        Move::WithPlan => "plan",
        Move::Refused(_) => "refused",
    }
}

/// `armfw fleet`.
pub fn fleet(a: FleetArgs) -> Result<ExitCode> {
    let profiles: Vec<Profile> = a
        .profiles
        .iter()
        .map(|n| crate::load_profile(Some(n)))
        .collect::<Result<_>>()?;
    let scope = if a.whole {
        Scope::Whole(a.features)
    } else {
        Scope::Firmware
    };
    let m = fleet::mobility(&profiles, scope);
    let names: Vec<&str> = profiles.iter().map(Profile::name).collect();
    if a.json {
        let pairs = m
            .pairs()
            .map(|(i, j, mv)| PairJson {
                from: names[i],
                to: names[j],
                result: result_name(mv),
                reason: match mv {
                    Move::Refused(why) => Some(why),
                    _ => None,
                },
            })
            .collect();
        let doc = FleetJson {
            format: FLEET_FORMAT,
            whole: a.whole,
            features: a.features,
            hosts: names.clone(),
            distinct_profiles: m.distinct,
            pairs,
            groups: m
                .groups
                .iter()
                .map(|g| g.iter().map(|&i| names[i]).collect())
                .collect(),
        };
        outln!("{}", serde_json::to_string_pretty(&doc)?)?;
    } else if a.format == Format::Dot {
        outln!("{}", dot(&m, &names))?;
    } else {
        print_table(&m, &names)?;
    }
    Ok(if m.all_reachable() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::migrate::EXIT_INCOMPATIBLE)
    })
}

/// The distinct refusal reasons, numbered in order of first appearance.
fn footnotes(m: &Mobility) -> Vec<&str> {
    let mut notes: Vec<&str> = Vec::new();
    for (_, _, mv) in m.pairs() {
        if let Move::Refused(why) = mv {
            if !notes.contains(&why.as_str()) {
                notes.push(why);
            }
        }
    }
    notes
}

fn print_table(m: &Mobility, names: &[&str]) -> Result<()> {
    let notes = footnotes(m);
    let mut rows = vec![{
        let mut head = vec!["from \\ to".to_string()];
        head.extend((1..=names.len()).map(|i| format!("[{i}]")));
        head
    }];
    for (i, name) in names.iter().enumerate() {
        let mut cells = vec![format!("[{}] {}", i + 1, shown(name))];
        for j in 0..names.len() {
            cells.push(match m.get(i, j) {
                None => "-".to_string(),
                Some(Move::Restores) => "ok".to_string(),
                Some(Move::WithPlan) => "plan".to_string(),
                Some(Move::Refused(why)) => {
                    let n = notes.iter().position(|x| x == why).unwrap_or(0) + 1;
                    format!("no({n})")
                }
            });
        }
        rows.push(cells);
    }
    print_rows(&rows)?;
    outln!()?;
    outln!(
        "ok: today's VMMs restore it unchanged; plan: only armfw's plan restores it; no(n): refused, for reason n"
    )?;
    for (i, why) in notes.iter().enumerate() {
        outln!("({}) {}", i + 1, shown(why))?;
    }
    outln!()?;
    for (i, g) in m.groups.iter().enumerate() {
        let members: Vec<String> = g.iter().map(|&h| shown(names[h]).into_owned()).collect();
        outln!("group {}: {}", i + 1, members.join(", "))?;
    }
    for (h, why) in &m.uncreatable {
        outln!(
            "{}: no such VM can be created: {}",
            shown(names[*h]),
            shown(why)
        )?;
    }
    Ok(())
}

/// A DOT string literal.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The mobility graph in DOT.
fn dot(m: &Mobility, names: &[&str]) -> String {
    let mut out = String::from("digraph mobility {\n  rankdir=LR;\n  node [shape=box];\n");
    for (i, g) in m.groups.iter().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_{i} {{");
        let _ = writeln!(out, "    label={};", quoted(&format!("group {}", i + 1)));
        for &h in g {
            let _ = writeln!(out, "    h{h} [label={}];", quoted(names[h]));
        }
        out.push_str("  }\n");
    }
    let mut refusals = Vec::new();
    for (a, b, mv) in m.pairs() {
        match mv {
            Move::Restores => {
                let _ = writeln!(out, "  h{a} -> h{b};");
            }
            Move::WithPlan => {
                let _ = writeln!(out, "  h{a} -> h{b} [style=dashed, label=\"plan\"];");
            }
            Move::Refused(why) => {
                let line = format!("{} -> {}: {why}", names[a], names[b]);
                refusals.push(line.replace('\\', "\\\\").replace('"', "\\\""));
            }
        }
    }
    if !refusals.is_empty() {
        // Left-justified lines (`\l`), each escaped for a DOT string.
        let label = refusals.join("\\l") + "\\l";
        let _ = writeln!(
            out,
            "  refusals [shape=note, label=\"refused:\\l{label}\"];"
        );
    }
    out.push('}');
    out
}

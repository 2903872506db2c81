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
    /// The same graph as an SVG picture a browser opens, drawn by armfw: a column per
    /// group, an arrow per reachable direction (dashed: only with armfw's plan), the
    /// refusals listed beside it.
    Svg,
}

/// Arguments of `armfw fleet`.
#[derive(Debug, Args)]
#[command(after_help = "\
For every ordered pair of hosts: whether a VM created with the first host's defaults (and \
run) can move to the second, as `armfw check --from A --to B` says: restores (today's VMMs \
restore it unchanged), plan (only armfw's plan restores it) or refused (the first reason). \
Then the groups of hosts between which a VM can move in both directions. Hosts whose \
profiles hold the same facts are checked once. With --whole, the table ends with advice: \
how many moves VMs created with the fleet's own pool baseline make, and the hosts that \
break it; --baseline shows that fleet.

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
    /// With --whole: VMs created with the fleet's own pool baseline (`armfw baseline` of
    /// the same hosts: its CPU and firmware parts) instead of each host's defaults.
    #[arg(long, requires = "whole")]
    baseline: bool,
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
    baseline: bool,
    hosts: Vec<&'a str>,
    distinct_profiles: usize,
    pairs: Vec<PairJson<'a>>,
    groups: Vec<Vec<&'a str>>,
    uncreatable: Vec<UncreatableJson<'a>>,
}

#[derive(Serialize)]
struct UncreatableJson<'a> {
    host: &'a str,
    reason: &'a str,
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
    let scope = match (a.whole, a.baseline) {
        (true, true) => Scope::Baseline(a.features),
        (true, false) => Scope::Whole(a.features),
        (false, _) => Scope::Firmware,
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
            baseline: a.baseline,
            hosts: names.clone(),
            distinct_profiles: m.distinct,
            pairs,
            groups: m
                .groups
                .iter()
                .map(|g| g.iter().map(|&i| names[i]).collect())
                .collect(),
            uncreatable: m
                .uncreatable
                .iter()
                .map(|(h, why)| UncreatableJson {
                    host: names[*h],
                    reason: why,
                })
                .collect(),
        };
        outln!("{}", serde_json::to_string_pretty(&doc)?)?;
    } else if a.format == Format::Dot {
        outln!("{}", dot(&m, &names))?;
    } else if a.format == Format::Svg {
        outln!("{}", svg(&m, &names))?;
    } else {
        print_table(&m, &names)?;
        if let Scope::Whole(f) = scope {
            advice(&profiles, &m, f)?;
        }
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

/// How many ordered pairs of distinct hosts can move.
fn reachable_pairs(m: &Mobility) -> usize {
    m.pairs().filter(|(_, _, mv)| mv.reachable()).count()
}

/// What the fleet's own pool baseline would change: the moves VMs created with it can make,
/// and the hosts it leaves out.
fn advice(profiles: &[Profile], m: &Mobility, features: armfw::abi::CpuFeatures) -> Result<()> {
    let with = fleet::mobility(profiles, Scope::Baseline(features));
    let (now, then) = (reachable_pairs(m), reachable_pairs(&with));
    let largest = |m: &Mobility| match m.groups.first().map_or(0, Vec::len) {
        1 => "1 host".to_string(),
        n => format!("{n} hosts"),
    };
    let total = m.pairs().count();
    outln!()?;
    outln!(
        "advice: VMs created with the fleet's pool baseline (armfw baseline of these hosts; --baseline) make {then} of the {total} moves, and the largest group a VM moves in freely has {}; with each host's defaults, {now} moves and {}",
        largest(&with),
        largest(m)
    )?;
    for (h, why) in &with.uncreatable {
        outln!(
            "  breaks the baseline: {}: {}",
            shown(profiles[*h].name()),
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

/// Text for SVG: the five XML escapes.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The mobility graph as an SVG picture, an arc diagram: the hosts one per row, each group's
/// rows in a dashed frame; an arc per reachable direction (downward moves on the right,
/// upward ones on the left, so no arc crosses a host; solid: today's VMMs restore it;
/// dashed and labelled `plan`: only armfw's plan does); beside it the refused moves, a line
/// per source and reason, with the reasons as numbered notes.
fn svg(m: &Mobility, names: &[&str]) -> String {
    const BOX_H: usize = 24;
    // Wide enough for the longest name (about 7.5 px a character at 13 px).
    let box_w = 24 + names.iter().map(|n| n.len()).max().unwrap_or(8) * 15 / 2;
    const ROW: usize = 34;
    const TOP: usize = 56;
    const STEP: usize = 14;
    // The rows, group by group.
    let order: Vec<usize> = m.groups.iter().flatten().copied().collect();
    let mut row = vec![0usize; names.len()];
    for (r, &h) in order.iter().enumerate() {
        row[h] = r;
    }
    let bulge = |a: usize, b: usize| 16 + STEP * row[a].abs_diff(row[b]);
    let span = 16 + STEP * names.len();
    let box_x = 20 + span;
    let right = box_x + box_w;
    let text_x = right + span + 20;
    let mid = |h: usize| TOP + row[h] * ROW + BOX_H / 2;
    let notes = footnotes(m);
    // The refusals by source and reason: one line each, the destinations listed (or "every
    // other host").
    let mut refused: Vec<String> = Vec::new();
    for a in 0..names.len() {
        for (n, note) in notes.iter().enumerate() {
            let to: Vec<&str> = (0..names.len())
                .filter(|&b| matches!(m.get(a, b), Some(Move::Refused(w)) if w == note))
                .map(|b| names[b])
                .collect();
            if to.is_empty() {
                continue;
            }
            let list = if to.len() + 1 == names.len() {
                "every other host".to_string()
            } else {
                to.join(", ")
            };
            refused.push(format!("{} → {list} ({})", names[a], n + 1));
        }
    }
    let lines = 2 + refused.len() + notes.len();
    let height = (TOP + names.len() * ROW + 20).max(TOP + lines * 18 + 20);
    let longest = refused
        .iter()
        .map(|l| l.chars().count())
        .chain(notes.iter().map(|n| n.len() + 6))
        .max()
        .unwrap_or(10);
    const LEGEND: &str = "frames: hosts a VM moves between both ways; solid arrow: today's VMMs restore it; dashed: only armfw's plan; downward moves on the right, upward on the left";
    let width = (text_x + 8 * longest + 20).max(110 + 7 * LEGEND.len() + 20);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">"#
    );
    out.push_str(concat!(
        "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" ",
        "markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">",
        "<path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#333\"/></marker></defs>\n",
    ));
    let _ = writeln!(
        out,
        r##"<rect width="{width}" height="{height}" fill="#fff"/>"##
    );
    let _ = writeln!(
        out,
        r##"<text x="20" y="24" font-size="16">mobility</text><text x="110" y="24" fill="#555">{}</text>"##,
        xml(LEGEND)
    );
    let mut first = 0;
    for g in &m.groups {
        let y = TOP + first * ROW - 5;
        let h = g.len() * ROW;
        let _ = writeln!(
            out,
            r##"<g class="group"><rect x="{}" y="{y}" width="{}" height="{h}" fill="none" stroke="#999" stroke-dasharray="4 3"/></g>"##,
            box_x - 5,
            box_w + 10,
        );
        first += g.len();
    }
    for (h, name) in names.iter().enumerate() {
        let y = TOP + row[h] * ROW;
        let _ = writeln!(
            out,
            r##"<g class="host"><rect x="{box_x}" y="{y}" width="{box_w}" height="{BOX_H}" rx="4" fill="#eef" stroke="#335"/><text x="{}" y="{}">{}</text></g>"##,
            box_x + 8,
            y + 17,
            xml(name)
        );
    }
    for (a, b, mv) in m.pairs() {
        let plan = match mv {
            Move::Restores => false,
            Move::WithPlan => true,
            Move::Refused(_) => continue,
        };
        let (ya, yb) = (mid(a), mid(b));
        let k = bulge(a, b);
        let (x, cx, label_x) = if row[a] < row[b] {
            (right, right + k, right + k * 3 / 4 + 4)
        } else {
            (box_x, box_x - k, box_x - k * 3 / 4 - 30)
        };
        let style = if plan {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = write!(
            out,
            r##"<g class="{}"><path d="M {x} {ya} C {cx} {ya}, {cx} {yb}, {x} {yb}" fill="none" stroke="#333"{style} marker-end="url(#arrow)"/>"##,
            if plan { "plan" } else { "restores" }
        );
        if plan {
            let _ = write!(
                out,
                r##"<text x="{label_x}" y="{}" fill="#555" font-size="11">plan</text>"##,
                (ya + yb) / 2 + 4
            );
        }
        out.push_str("</g>\n");
    }
    let mut y = TOP + 12;
    let _ = writeln!(
        out,
        r#"<text x="{text_x}" y="{y}" font-weight="bold">refused:</text>"#
    );
    for line in &refused {
        y += 18;
        let _ = writeln!(out, r#"<text x="{text_x}" y="{y}">{}</text>"#, xml(line));
    }
    y += 18;
    for (i, why) in notes.iter().enumerate() {
        y += 18;
        let _ = writeln!(
            out,
            r#"<text x="{text_x}" y="{y}">({}) {}</text>"#,
            i + 1,
            xml(why)
        );
    }
    out.push_str("</svg>");
    out
}

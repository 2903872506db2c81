//! `armfw fleet`: every pair as `armfw check` answers it, groups, the DOT graph rendered by
//! Graphviz, bad input.

use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_armfw");

fn armfw(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("armfw runs")
}

const HOSTS: [&str; 6] = [
    "linux-6.1.192-max",
    "linux-6.12.117-max",
    "linux-7.2.13-max",
    "linux-6.1.192-cortex-a72",
    "linux-6.12.117-cortex-a72",
    "linux-7.2.13-cortex-a72",
];

fn fleet_json(extra: &[&str], hosts: &[&str]) -> (i32, Value) {
    let mut args = vec!["fleet", "--json"];
    args.extend_from_slice(extra);
    args.extend_from_slice(hosts);
    let o = armfw(&args);
    let doc = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {o:?}"));
    (o.status.code().unwrap(), doc)
}

#[test]
fn every_pair_is_what_check_says() {
    for extra in [
        &[][..],
        &["--whole"][..],
        &["--whole", "--features", "pmu_v3"][..],
    ] {
        let (code, doc) = fleet_json(extra, &HOSTS);
        assert_eq!(doc["format"], "armfw-fleet/1");
        let pairs = doc["pairs"].as_array().unwrap();
        assert_eq!(pairs.len(), HOSTS.len() * (HOSTS.len() - 1));
        let mut refused = false;
        for p in pairs {
            let (from, to) = (p["from"].as_str().unwrap(), p["to"].as_str().unwrap());
            let mut args = vec!["check", "--json", "--from", from, "--to", to];
            if extra.contains(&"--whole") {
                args.extend_from_slice(extra);
            }
            let c = armfw(&args).status.code().unwrap();
            let want = match c {
                0 => "restores",
                3 => "plan",
                _ => "refused",
            };
            assert_eq!(p["result"], want, "{extra:?} {from} -> {to}");
            assert_eq!(p["reason"].is_string(), want == "refused", "{p}");
            refused |= want == "refused";
        }
        assert_eq!(code, if refused { 1 } else { 0 });
    }
}

#[test]
fn identical_profiles_form_one_group_and_are_counted_once() {
    let d = std::env::temp_dir().join(format!("armfw-fleet-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../armfw/profiles/linux-7.2.13-max.json"
    ))
    .unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["name"] = "rack-2-host-17".into();
    let copy = d.join("copy.json");
    std::fs::write(&copy, v.to_string()).unwrap();
    let copy = copy.to_str().unwrap();
    let (code, doc) = fleet_json(
        &["--whole"],
        &["linux-7.2.13-max", copy, "linux-6.12.117-max"],
    );
    assert_eq!(code, 1, "7.2 -> 6.12 is refused");
    assert_eq!(doc["distinct_profiles"], 2);
    assert_eq!(
        doc["groups"][0],
        serde_json::json!(["linux-7.2.13-max", "rack-2-host-17"])
    );
    let pair = |a: &str, b: &str| {
        doc["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["from"] == a && p["to"] == b)
            .unwrap()["result"]
            .clone()
    };
    assert_eq!(pair("linux-7.2.13-max", "rack-2-host-17"), "restores");
    assert_eq!(pair("linux-6.12.117-max", "rack-2-host-17"), "plan");
}

#[test]
fn the_mobility_graph_renders_with_graphviz() {
    let mut args = vec!["fleet", "--whole", "--format", "dot"];
    args.extend_from_slice(&HOSTS);
    let o = armfw(&args);
    assert_eq!(o.status.code(), Some(1));
    let dot = String::from_utf8(o.stdout).unwrap();
    assert!(dot.starts_with("digraph mobility {"), "{dot}");
    // .ci/run installs Graphviz; elsewhere the rendering is skipped if `dot` is missing.
    let Some(out) = render("dot", &["-Tsvg"], dot.as_bytes()) else {
        return;
    };
    let svg = String::from_utf8(out.stdout).unwrap();
    assert!(svg.contains("<svg"), "{svg}");
    for h in HOSTS {
        // Graphviz writes a hyphen as an entity.
        let drawn = format!(">{}</text>", h.replace('-', "&#45;"));
        assert!(svg.contains(&drawn), "{h} not drawn");
    }
    // The two plan moves (6.12 -> 7.2 on both CPU models) are dashed edges labelled plan.
    assert_eq!(svg.matches(">plan<").count(), 2, "{svg}");
    assert!(svg.contains("refused:"));
}

/// Runs `program args` with `input` on stdin and asserts it succeeds with nothing on stderr;
/// `None` where the program is missing (allowed outside CI, which installs it).
fn render(program: &str, args: &[&str], input: &[u8]) -> Option<Output> {
    use std::io::Write;
    let child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have {program}: {e}"
            );
            eprintln!("skipped: no {program} ({e})");
            return None;
        }
    };
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    // It renders without a complaint.
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out)
}

#[test]
fn the_svg_picture_renders_with_librsvg() {
    let mut args = vec!["fleet", "--whole", "--format", "svg"];
    args.extend_from_slice(&HOSTS);
    let o = armfw(&args);
    assert_eq!(o.status.code(), Some(1));
    let svg = String::from_utf8(o.stdout).unwrap();
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{svg}"
    );
    for h in HOSTS {
        assert_eq!(
            svg.matches(&format!(">{h}</text>")).count(),
            1,
            "{h} drawn once"
        );
    }
    // The JSON of the same fleet: one arrow per reachable direction, dashed for a plan.
    let (_, doc) = fleet_json(&["--whole"], &HOSTS);
    let count = |r: &str| {
        doc["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["result"] == r)
            .count()
    };
    assert_eq!(
        svg.matches(r#"<g class="restores">"#).count(),
        count("restores")
    );
    assert_eq!(svg.matches(r#"<g class="plan">"#).count(), count("plan"));
    // Each refused pair on its source's line for its reason (or "every other host").
    for p in doc["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["result"] == "refused")
    {
        let (from, to) = (p["from"].as_str().unwrap(), p["to"].as_str().unwrap());
        let listed = svg.lines().any(|l| {
            l.contains(&format!(">{from} → ")) && (l.contains(to) || l.contains("every other host"))
        });
        assert!(listed, "{from} -> {to} not listed");
    }
    assert_eq!(
        svg.matches(r#"<g class="group">"#).count(),
        doc["groups"].as_array().unwrap().len()
    );
    // A real renderer draws it: librsvg to PNG (.ci/run installs it).
    let Some(out) = render("rsvg-convert", &["--format", "png"], svg.as_bytes()) else {
        return;
    };
    assert!(out.stdout.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    // The PNG has the SVG's size (IHDR width and height, big-endian, at bytes 16..24).
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let width: u32 = svg
        .split("width=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(be(&out.stdout[16..20]), width);
}

#[test]
fn the_baseline_fleet_and_the_advice() {
    let pool = [
        "linux-6.12.117-cortex-a72",
        "linux-7.2.13-cortex-a72",
        "linux-7.2.13-cortex-a57",
        "linux-7.2.13-cortex-a53",
    ];
    let (code, plain) = fleet_json(&["--whole"], &pool);
    assert_eq!(code, 1);
    let (_, based) = fleet_json(&["--whole", "--baseline"], &pool);
    assert_eq!(based["baseline"], true);
    // The a53 breaks the baseline (its WORKAROUND levels); the other three move freely.
    let left: Vec<&str> = based["uncreatable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["host"].as_str().unwrap())
        .collect();
    assert_eq!(left, ["linux-7.2.13-cortex-a53"]);
    assert_eq!(
        based["groups"][0],
        serde_json::json!([
            "linux-6.12.117-cortex-a72",
            "linux-7.2.13-cortex-a72",
            "linux-7.2.13-cortex-a57"
        ])
    );
    let reachable = |d: &Value| {
        d["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["result"] != "refused")
            .count()
    };
    assert!(
        reachable(&based) > reachable(&plain),
        "{} vs {}",
        reachable(&based),
        reachable(&plain)
    );
    // The table's advice counts the same.
    let mut args = vec!["fleet", "--whole"];
    args.extend_from_slice(&pool);
    let text = String::from_utf8(armfw(&args).stdout).unwrap();
    let want = format!(
        "make {} of the 12 moves, and the largest group a VM moves in freely has 3 hosts; with each host's defaults, {} moves and 1 host",
        reachable(&based),
        reachable(&plain)
    );
    assert!(text.contains(&want), "{text}");
    assert!(text.contains("breaks the baseline: linux-7.2.13-cortex-a53: left out of the baseline: SMCCC_ARCH_WORKAROUND_"), "{text}");
}

#[test]
fn bad_hosts_are_one_line_errors() {
    let o = armfw(&["fleet", "linux-7.2.13-max", "no-such-host"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no-such-host"), "{err}");
    let o = armfw(&["fleet", "linux-7.2.13-max"]);
    assert_eq!(o.status.code(), Some(2));
}

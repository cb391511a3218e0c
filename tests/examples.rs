//! The public examples (`tests/data/derivatives.tsv`, a copy of the shared examples kept
//! in the repository so that a lone clone tests itself): jacob's answer must equal the
//! expected one numerically (both are checked against finite differences) and be no
//! larger than it.

use std::collections::HashMap;
mod common;
use common::jacob;

/// Size of an expression as written: one per operator, name and number.
fn size(text: &str, kinds: &HashMap<String, jacob::Kind>) -> u64 {
    let mut g = jacob::Graph::new();
    let parsed = jacob::parse(text, &mut g, kinds).unwrap_or_else(|e| panic!("{text}: {e}"));
    g.cost(parsed.root)
}

struct Example {
    command: String,
    expr: String,
    wrt: String,
    flags: Vec<String>,
    layout: String,
    layout_flag: Option<String>,
    expected: String,
}

fn examples() -> Vec<Example> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/derivatives.tsv");
    let text = std::fs::read_to_string(path).expect("the public examples are in tests/data");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("command\t") && !l.trim().is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            let dash = |s: &str| {
                if s == "-" {
                    String::new()
                } else {
                    s.to_string()
                }
            };
            Example {
                command: c[0].into(),
                expr: c[1].into(),
                wrt: c[2].into(),
                flags: dash(c[3]).split_whitespace().map(String::from).collect(),
                layout: if c[4] == "-" {
                    "mixed".into()
                } else {
                    c[4].into()
                },
                layout_flag: (c[4] != "-").then(|| c[4].to_string()),
                expected: c[5].into(),
            }
        })
        .collect()
}

fn check_claim(of: &str, e: &Example, layout: &str, claim: &str) -> (i32, String) {
    let mut args: Vec<&str> = vec![
        "check", of, "--wrt", &e.wrt, "--layout", layout, "--claim", claim, "--points", "4",
    ];
    args.extend(e.flags.iter().map(String::as_str));
    let (code, out, err) = jacob(&args);
    (code, format!("{out}{err}"))
}

#[test]
fn every_public_example_is_right_and_short() {
    let examples = examples();
    assert!(
        examples.len() >= 18,
        "the examples file has {} rows",
        examples.len()
    );
    for e in &examples {
        // `--layout` only where the row gives one, as the file's header says (`hess` has
        // no layouts: a Hessian is symmetric).
        let mut args: Vec<&str> = vec![&e.command, &e.expr, "--wrt", &e.wrt];
        if let Some(layout) = &e.layout_flag {
            args.extend(["--layout", layout]);
        }
        args.extend(e.flags.iter().map(String::as_str));
        let (code, out, err) = jacob(&args);
        assert_eq!(code, 0, "{} {}: {err}", e.command, e.expr);
        let ours = out.trim();
        // A Hessian is checked as the Jacobian of the gradient.
        let (of, layout) = if e.command == "hess" {
            let mut grad: Vec<&str> = vec!["diff", &e.expr, "--wrt", &e.wrt];
            grad.extend(e.flags.iter().map(String::as_str));
            (jacob(&grad).1.trim().to_string(), "mixed".to_string())
        } else {
            (e.expr.clone(), e.layout.clone())
        };
        let (code, report) = check_claim(&of, e, &layout, ours);
        assert_eq!(
            code, 0,
            "{}: jacob printed {ours}, which disagrees with finite differences:\n{report}",
            e.expr
        );
        let (code, report) = check_claim(&of, e, &layout, &e.expected);
        assert_eq!(
            code, 0,
            "{}: the expected {} should pass the same check:\n{report}",
            e.expr, e.expected
        );
        let mut kinds = HashMap::new();
        for pair in e.flags.chunks(2) {
            if pair[0] == "--symmetric" {
                for name in pair[1].split(',') {
                    kinds.insert(name.to_string(), jacob::Kind::Symmetric);
                }
            }
        }
        let (ours_size, expected_size) = (size(ours, &kinds), size(&e.expected, &kinds));
        assert!(
            ours_size <= expected_size,
            "{}: {ours} has size {ours_size}, larger than the expected {} ({expected_size})",
            e.expr,
            e.expected
        );
    }
}

/// The suite is self-contained: no test reads a file outside the repository, so that
/// `cargo test` passes on a clone with nothing beside it.
#[test]
fn no_test_reads_outside_the_repository() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut files = Vec::new();
    for dir in ["tests", "tests/common", "benches", "src"] {
        let Ok(entries) = std::fs::read_dir(format!("{root}/{dir}")) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    assert!(files.len() > 10, "too few sources found under {root}");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for (i, line) in text.lines().enumerate() {
            // Built at run time, so that this file does not match itself.
            let patterns = [
                ["/..", "/shared"].concat(),
                ["../", "../"].concat(),
                ["shared/", "examples"].concat(),
            ];
            let outside = patterns.iter().any(|p| line.contains(p.as_str()));
            assert!(
                !outside,
                "{}:{}: reads outside the repository: {line}",
                path.display(),
                i + 1
            );
        }
    }
}

//! Regressions found by fuzzing (`fuzz/`, target `pipeline`): each minimized input runs
//! through the same in-process path as the fuzz target and must not panic.
//!
//! [`replay`] mirrors `fuzz/fuzz_targets/pipeline.rs`: byte 0 picks the layout (bits 0–1)
//! and a declaration of the variable (bits 2–4), byte 1 picks `--wrt` among the names of
//! the expression, the rest is the expression. Every command must exit 0, 1 (only
//! `check`) or 2, and the text that `diff`, `hess` and `simplify` print must read back.

mod common;

use common::jacob;

/// The binary's worker thread has a 1 GiB stack; the fuzz target and these tests use
/// 256 MiB, which is plenty for anything the binary survives.
const STACK_BYTES: usize = 256 << 20;

/// Names that are never symbols.
const RESERVED: [&str; 7] = ["I", "eye", "ones", "where", "vector", "matrix", "kron"];

/// Runs jacob and checks the exit code is one SPEC §4 allows.
fn run(args: &[&str]) -> (i32, String, String) {
    let (code, out, err) = jacob(args);
    assert!(
        (0..=2).contains(&code),
        "jacob {args:?}: exit {code}: {err}"
    );
    (code, out, err)
}

/// The distinct names in `expr` that could be symbols, in order of appearance.
fn names(expr: &str) -> Vec<String> {
    let b = expr.as_bytes();
    let mut found: Vec<String> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let name = &expr[start..i];
            let is_func = jacob::FUNCTION_NAMES.iter().any(|(n, _)| *n == name);
            if !is_func && !RESERVED.contains(&name) && !found.iter().any(|f| f == name) {
                found.push(name.to_string());
            }
        } else {
            i += 1;
        }
    }
    found
}

/// `printed`, jacob's own text output, must parse back under the same declarations.
fn parses_back(what: &str, expr: &str, printed: &str, decl: &[&str]) {
    let printed = printed.trim_end_matches('\n');
    let mut args = vec!["shape"];
    args.extend_from_slice(decl);
    args.extend(["--", printed]);
    let (code, _, err) = run(&args);
    assert_eq!(
        code, 0,
        "{what} of {expr:?} printed {printed:?}, which jacob cannot read back: {err}"
    );
}

/// The `result` field of the JSON object jacob printed.
fn json_result(what: &str, out: &str) -> String {
    let j: serde_json::Value = serde_json::from_str(out.trim_end())
        .unwrap_or_else(|e| panic!("{what} printed invalid JSON ({e}): {out:?}"));
    assert!(j["latex"].is_string(), "{what}: no latex: {out}");
    j["result"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no result: {out}"))
        .to_string()
}

/// The fuzz target's pipeline on one input.
fn pipeline(data: &[u8]) {
    let [opts, pick, rest @ ..] = data else {
        return;
    };
    let expr = String::from_utf8_lossy(rest).into_owned();
    if expr == "-" {
        return;
    }
    let layout = ["mixed", "numerator", "denominator", "mixed"][usize::from(opts & 3)];
    let ids = names(&expr);
    let wrt = if ids.is_empty() {
        "x".to_string()
    } else {
        ids[usize::from(*pick) % ids.len()].clone()
    };
    let flag = match (opts >> 2) & 7 {
        4 => Some("--scalar"),
        5 => Some("--vector"),
        6 => Some("--matrix"),
        7 => Some("--symmetric"),
        _ => None,
    };
    let mut decl: Vec<&str> = Vec::new();
    if let Some(flag) = flag {
        decl.extend([flag, wrt.as_str()]);
    }
    let call = |cmd: &[&str]| {
        let mut args = cmd.to_vec();
        args.extend_from_slice(&decl);
        args.extend(["--", expr.as_str()]);
        run(&args)
    };
    let (e, w) = (expr.as_str(), wrt.as_str());
    let (code, out, _) = call(&["diff", "--wrt", w, "--layout", layout, "--format", "json"]);
    if code == 0 {
        parses_back("diff", e, &json_result("diff", &out), &decl);
    }
    let (code, out, _) = call(&["hess", "--wrt", w]);
    if code == 0 {
        parses_back("hess", e, &out, &decl);
    }
    let (code, out, _) = call(&["simplify", "--format", "json"]);
    if code == 0 {
        parses_back("simplify", e, &json_result("simplify", &out), &decl);
    }
    call(&["shape"]);
    call(&["eval", "--random"]);
    call(&["check", "--wrt", w, "--layout", layout, "--points", "1"]);
}

/// Runs [`pipeline`] on a thread with a large stack; a panic there fails the test.
fn replay(data: &[u8]) {
    let data = data.to_vec();
    let worker = std::thread::Builder::new()
        .stack_size(STACK_BYTES)
        .spawn(move || pipeline(&data))
        .expect("the worker thread starts");
    if let Err(p) = worker.join() {
        std::panic::resume_unwind(p);
    }
}

/// The harness itself: every seed of `fuzz/seeds` goes through cleanly.
#[test]
fn seeds_replay_cleanly() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("fuzz/seeds exists")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    paths.sort();
    assert!(!paths.is_empty());
    for p in paths {
        replay(&std::fs::read(&p).expect("a seed reads"));
    }
}

/// Fuzz finding (minimized from `crash-18e449ac…`): with a vector `a`, the Jacobian of
/// `norm2(X*w)+a` by `w` in denominator layout is `X'*X*w*ones'/norm2(X*w)`, but jacob
/// prints `X'*X*w*ones/norm2(X*w)`, which it cannot read back (`(n×1)*ones` needs a
/// row). The printer drops the transpose of a 1×n `ones`; the LaTeX printer keeps it.
#[test]

fn jacobian_of_a_broadcast_sum_reads_back() {
    replay(b"\x06\x01norm2(X*w)+a");
}

/// The same bug in `simplify`: `ones'*x` is 1×1, but its text `ones*x` reads back as a
/// column.
#[test]

fn a_row_of_ones_prints_with_its_transpose() {
    let (code, out, err) = run(&["simplify", "--", "ones'*x"]);
    assert_eq!(code, 0, "{err}");
    let printed = out.trim_end();
    let (code, shape, err) = run(&["shape", "--", printed]);
    assert_eq!(code, 0, "{err}");
    assert!(
        shape.starts_with("1×1"),
        "simplify ones'*x printed {printed:?}, which reads back as {shape:?}"
    );
}

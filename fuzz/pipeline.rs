//! The fuzz target's pipeline, shared by `fuzz_targets/pipeline.rs` and
//! `tests/fuzz_regressions.rs` (both include this file with `#[path]`), so that a
//! replayed finding runs exactly what the fuzzer ran.
//!
//! Input layout: byte 0 picks the layout (bits 0–1) and a declaration of the variable
//! (bits 2–4: 4 `--scalar`, 5 `--vector`, 6 `--matrix`, 7 `--symmetric`), byte 1 picks
//! `--wrt` among the names in the expression, the rest is the expression (lossy UTF-8).
//! The expression goes through `diff` (JSON, so the text and LaTeX printers both run),
//! `hess`, `simplify`, `shape`, `eval --random` and `check`. An exit 2 is fine; a panic,
//! an exit code outside 0–2, invalid JSON, or printed text (of `diff`, `hess` or
//! `simplify`) that jacob cannot read back is a finding.

use std::io::Cursor;

/// The binary's worker thread has a 1 GiB stack; the fuzz target and these tests use
/// 256 MiB, which is plenty for anything the binary survives.
const STACK_BYTES: usize = 256 << 20;

/// Names that are never symbols.
const RESERVED: [&str; 7] = ["I", "eye", "ones", "where", "vector", "matrix", "kron"];

/// Runs jacob in-process and checks the exit code is one SPEC §4 allows; returns
/// (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let argv = std::iter::once("jacob").chain(args.iter().copied());
    let code = jacob::run(argv, &mut Cursor::new(Vec::new()), &mut out, &mut err);
    let (out, err) = (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    );
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

/// Runs [`pipeline`] on a thread with a large stack; a panic there is passed on.
pub fn replay(data: &[u8]) {
    let data = data.to_vec();
    let worker = std::thread::Builder::new()
        .stack_size(STACK_BYTES)
        .spawn(move || pipeline(&data))
        .expect("the worker thread starts");
    if let Err(p) = worker.join() {
        std::panic::resume_unwind(p);
    }
}

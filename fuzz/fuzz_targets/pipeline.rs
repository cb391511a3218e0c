//! Fuzz target `pipeline`: one input through every stage of jacob, in-process.
//!
//! Input layout: byte 0 picks the layout and a declaration for the variable, byte 1
//! picks the variable (`--wrt`) among the names in the expression, the rest is the
//! expression (lossy UTF-8). The expression goes through `diff` (JSON, so the text and
//! LaTeX printers both run), `hess`, `simplify`, `shape`, `eval --random` and `check`.
//! An `Err` (exit 2) is fine; a panic, stack overflow, timeout or OOM is a finding, and
//! so is printed text (of `diff`, `hess` or `simplify`) that jacob cannot read back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Cursor;

/// The binary runs on a 1 GiB stack; 256 MiB is plenty for anything that would be
/// safe there and keeps each run's thread cheap.
const STACK_BYTES: usize = 256 << 20;

/// Names that are never symbols.
const RESERVED: [&str; 7] = ["I", "eye", "ones", "where", "vector", "matrix", "kron"];

/// Runs jacob in-process; returns (exit code, stdout, stderr).
fn jacob(args: &[&str]) -> (i32, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let argv = std::iter::once("jacob").chain(args.iter().copied());
    let code = jacob::run(argv, &mut Cursor::new(Vec::new()), &mut out, &mut err);
    assert!((0..=2).contains(&code), "jacob {args:?}: exit code {code}");
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

/// The distinct names in `expr` that could be symbols, in order of appearance.
fn names(expr: &str) -> Vec<String> {
    let b = expr.as_bytes();
    let mut found: Vec<String> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            // A number, exponent included, so `1e5` names nothing.
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

/// Checks that `printed`, jacob's own text output, parses back under the same
/// declarations.
fn parses_back(what: &str, expr: &str, printed: &str, decl: &[&str]) {
    let printed = printed.trim_end_matches('\n');
    let mut args = vec!["shape"];
    args.extend_from_slice(decl);
    args.extend(["--", printed]);
    let (code, _, err) = jacob(&args);
    assert!(
        code == 0,
        "{what} of {expr:?} printed {printed:?}, which jacob cannot read back: {err}"
    );
}

/// The JSON object jacob printed; its `result` field.
fn json_result(what: &str, out: &str) -> String {
    let j: serde_json::Value = serde_json::from_str(out.trim_end())
        .unwrap_or_else(|e| panic!("{what} printed invalid JSON ({e}): {out:?}"));
    for key in ["result", "latex"] {
        assert!(j[key].is_string(), "{what}: JSON without {key}: {out}");
    }
    j["result"].as_str().unwrap_or_default().to_string()
}

fn pipeline(data: &[u8]) {
    let [opts, pick, rest @ ..] = data else {
        return;
    };
    let expr = String::from_utf8_lossy(rest).into_owned();
    if expr == "-" {
        return; // `-` reads expressions from standard input, which is empty here.
    }
    let layout = ["mixed", "numerator", "denominator", "mixed"][usize::from(opts & 3)];
    let ids = names(&expr);
    let wrt = if ids.is_empty() {
        "x".to_string()
    } else {
        ids[usize::from(*pick) % ids.len()].clone()
    };
    let decl_flag = match (opts >> 2) & 7 {
        4 => Some("--scalar"),
        5 => Some("--vector"),
        6 => Some("--matrix"),
        7 => Some("--symmetric"),
        _ => None,
    };
    let mut decl: Vec<&str> = Vec::new();
    if let Some(flag) = decl_flag {
        decl.extend([flag, wrt.as_str()]);
    }
    // The expression goes last, after `--`, so that `-h` or `--x` is never an option.
    let with = |cmd: &[&str]| -> Vec<String> {
        cmd.iter()
            .chain(decl.iter())
            .chain(["--", expr.as_str()].iter())
            .map(|s| s.to_string())
            .collect()
    };
    let call = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        jacob(&a)
    };
    let e = expr.as_str();
    let w = wrt.as_str();

    // diff: text and LaTeX through the JSON output; the text must read back.
    let (code, out, _) = call(with(&[
        "diff", "--wrt", w, "--layout", layout, "--format", "json",
    ]));
    if code == 0 {
        let result = json_result("diff", &out);
        parses_back("diff", e, &result, &decl);
    }
    // hess: the text must read back.
    let (code, out, _) = call(with(&["hess", "--wrt", w]));
    if code == 0 {
        parses_back("hess", e, &out, &decl);
    }
    // simplify: the text must read back.
    let (code, out, _) = call(with(&["simplify", "--format", "json"]));
    if code == 0 {
        let result = json_result("simplify", &out);
        parses_back("simplify", e, &result, &decl);
    }
    call(with(&["shape"]));
    // Numbers: small random sizes (2..=9) come from jacob itself.
    call(with(&["eval", "--random"]));
    call(with(&[
        "check", "--wrt", w, "--layout", layout, "--points", "1",
    ]));
}

fuzz_target!(|data: &[u8]| {
    let data = data.to_vec();
    let worker = std::thread::Builder::new()
        .stack_size(STACK_BYTES)
        .spawn(move || pipeline(&data))
        .expect("the worker thread starts");
    if let Err(p) = worker.join() {
        std::panic::resume_unwind(p);
    }
});

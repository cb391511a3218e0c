//! Robustness: no input crashes, hangs or misleads jacob (SPEC §4). Deep, long and
//! malformed inputs go through the real binary under a time limit; random token soups
//! and byte strings go through the library in-process, inside `catch_unwind`.

use proptest::prelude::*;
use std::ffi::OsString;
use std::io::{Cursor, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a single jacob process may run before the test fails.
const LIMIT: Duration = Duration::from_secs(20);

/// What one run of the binary produced.
struct Outcome {
    /// The exit code; `None` if a signal ended the process (abort, stack overflow).
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Shortens long arguments for messages.
fn show_args(args: &[OsString]) -> String {
    let shown: Vec<String> = args
        .iter()
        .map(|a| {
            let a = a.to_string_lossy();
            if a.chars().count() > 60 {
                format!("{}…", a.chars().take(57).collect::<String>())
            } else {
                a.into_owned()
            }
        })
        .collect();
    format!("{shown:?}")
}

/// Runs the binary with `args` and `stdin`, failing the test if it runs longer than
/// [`LIMIT`].
fn jacob_os(args: &[OsString], stdin: &[u8]) -> Outcome {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_jacob"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the jacob binary starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    let bytes = stdin.to_vec();
    // Writing and reading on their own threads: a large input or output cannot deadlock.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let mut out = child.stdout.take().expect("stdout is piped");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let mut err = child.stderr.take().expect("stderr is piped");
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for jacob") {
            break status;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "jacob {} ran longer than {} s (hang)",
                show_args(args),
                LIMIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    let _ = writer.join();
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Outcome {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        elapsed,
    }
}

fn jacob(args: &[&str], stdin: &[u8]) -> Outcome {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    jacob_os(&args, stdin)
}

/// Shortens long output for assertion messages.
fn brief(text: &str) -> String {
    if text.chars().count() > 400 {
        format!("{}…", text.chars().take(400).collect::<String>())
    } else {
        text.to_string()
    }
}

/// The process ended by itself, with 0 or 2, and did not report a crash.
fn assert_no_crash(what: &str, o: &Outcome) {
    assert!(
        matches!(o.code, Some(0 | 2)),
        "{what}: exit {:?} (a signal if None)\nstderr: {}",
        o.code,
        brief(&o.stderr)
    );
    for bad in ["panicked", "overflow", "RUST_BACKTRACE"] {
        assert!(
            !o.stderr.contains(bad),
            "{what}: stderr mentions {bad:?}: {}",
            brief(&o.stderr)
        );
    }
    if o.code == Some(0) {
        assert!(!o.stdout.trim().is_empty(), "{what}: exit 0 with no answer");
    } else {
        assert!(
            o.stderr.starts_with("error: "),
            "{what}: exit 2 without an error: {}",
            brief(&o.stderr)
        );
    }
}

/// The line of carets under the expression, and the expression line above it.
fn caret(stderr: &str) -> Option<(String, usize, usize)> {
    let lines: Vec<&str> = stderr.lines().collect();
    (1..lines.len()).find_map(|k| {
        let line = lines[k];
        let trimmed = line.trim_start_matches(' ');
        let is_caret = !trimmed.is_empty() && trimmed.chars().all(|c| c == '^');
        is_caret.then(|| {
            let column = line.len() - trimmed.len();
            (lines[k - 1].to_string(), column, trimmed.len())
        })
    })
}

/// An input jacob must refuse: exit 2, nothing on stdout, one `error:` sentence that
/// contains every needle, and a caret under `at` (or no caret when `at` is `None`).
struct Bad<'a> {
    args: &'a [&'a str],
    stdin: &'a [u8],
    needles: &'a [&'a str],
    /// Some(text): a caret line whose column starts `text` in the line above it;
    /// Some(""): a caret line anywhere; None: no caret line.
    at: Option<&'a str>,
}

fn check_bad(b: &Bad) -> Result<(), String> {
    let o = jacob(b.args, b.stdin);
    let what = format!(
        "jacob {:?} (stdin {:?})",
        b.args,
        String::from_utf8_lossy(b.stdin)
    );
    if o.code != Some(2) {
        return Err(format!(
            "{what}: exit {:?}, want 2; stdout {:?} stderr {:?}",
            o.code, o.stdout, o.stderr
        ));
    }
    if !o.stdout.is_empty() {
        return Err(format!(
            "{what}: an answer on stdout along with the error: {:?}",
            o.stdout
        ));
    }
    if !o.stderr.starts_with("error: ") {
        return Err(format!(
            "{what}: stderr does not start with `error: `: {:?}",
            o.stderr
        ));
    }
    let errors = o.stderr.lines().filter(|l| l.contains("error:")).count();
    if errors != 1 {
        return Err(format!(
            "{what}: {errors} `error:` lines, want one: {:?}",
            o.stderr
        ));
    }
    if o.stderr.contains("panicked") {
        return Err(format!("{what}: panicked: {:?}", o.stderr));
    }
    for needle in b.needles {
        if !o.stderr.contains(needle) {
            return Err(format!(
                "{what}: the message lacks {needle:?}: {:?}",
                o.stderr
            ));
        }
    }
    match (b.at, caret(&o.stderr)) {
        (None, None) | (Some(""), Some(_)) => {}
        (None, Some(_)) => {
            return Err(format!(
                "{what}: a caret line where there is no place: {:?}",
                o.stderr
            ));
        }
        (Some(_), None) => return Err(format!("{what}: no caret line: {:?}", o.stderr)),
        (Some(at), Some((shown, column, _))) => {
            let under: String = shown.chars().skip(column).collect();
            if !under.starts_with(at) {
                return Err(format!(
                    "{what}: the caret is under {under:?}, want it under {at:?}: {:?}",
                    o.stderr
                ));
            }
        }
    }
    Ok(())
}

fn check_all_bad(cases: &[Bad]) {
    let failures: Vec<String> = cases.iter().filter_map(|b| check_bad(b).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn nested(open: &str, inner: &str, close: &str, depth: usize) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

fn relu_network(layers: usize) -> String {
    let mut e = String::from("x");
    for i in 1..=layers {
        e = format!("relu(W{i}*{e})");
    }
    format!("norm2({e} - y)^2")
}

// ---------------------------------------------------------------- depth

#[test]
fn a_1000_layer_relu_network_differentiates_with_shared_subexpressions() {
    let net = format!("{}\n", relu_network(1000));
    for wrt in ["W1", "x"] {
        let o = jacob(&["diff", "-", "--wrt", wrt], net.as_bytes());
        let what = format!("diff of the 1,000-layer network by {wrt}");
        assert_eq!(o.code, Some(0), "{what}: stderr {}", brief(&o.stderr));
        assert!(o.stderr.is_empty(), "{what}: stderr {}", brief(&o.stderr));
        assert_eq!(o.stdout.lines().count(), 1, "{what}: one line of answer");
        assert!(
            o.stdout.contains(" where "),
            "{what}: no where bindings: {}",
            brief(&o.stdout)
        );
        // Linear in size: shared forward passes are named, not copied.
        assert!(
            o.stdout.len() < 200_000,
            "{what}: {} bytes of answer",
            o.stdout.len()
        );
    }
}

#[test]
fn parentheses_10000_deep_simplify_to_x() {
    let e = nested("(", "x", ")", 10_000);
    let o = jacob(&["simplify", &e], b"");
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (Some(0), "x\n"),
        "stderr {}",
        brief(&o.stderr)
    );
    let o = jacob(&["diff", &e, "--wrt", "x"], b"");
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (Some(0), "eye(rows(x))\n"),
        "stderr {}",
        brief(&o.stderr)
    );
    // Calls count as nesting too, and a minus inside each level changes nothing.
    let calls = nested("relu(", "x", ")", 10_000);
    let o = jacob(&["simplify", "-"], calls.as_bytes());
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (Some(0), "relu(x)\n"),
        "stderr {}",
        brief(&o.stderr)
    );
    let minus = nested("(-", "x", ")", 10_000);
    let o = jacob(&["simplify", "-"], minus.as_bytes());
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (Some(0), "x\n"),
        "stderr {}",
        brief(&o.stderr)
    );
}

#[test]
fn parentheses_10001_deep_are_refused_with_a_caret() {
    for e in [
        nested("(", "x", ")", 10_001),
        nested("relu(", "x", ")", 10_001),
    ] {
        let o = jacob(&["simplify", &e], b"");
        assert_eq!(o.code, Some(2), "stderr {}", brief(&o.stderr));
        assert!(o.stdout.is_empty());
        assert!(o.stderr.starts_with("error: "), "{}", brief(&o.stderr));
        assert!(o.stderr.contains("nests deeper"), "{}", brief(&o.stderr));
        let (shown, column, width) = caret(&o.stderr).expect("a caret line");
        // The window around a long line keeps the caret on the 10,001st `(`.
        assert!(
            shown.chars().count() < 200,
            "the line shown is not windowed: {} chars",
            shown.chars().count()
        );
        assert_eq!(
            shown.chars().nth(column),
            Some('('),
            "caret under {shown:?} at {column}"
        );
        assert_eq!(width, 1);
    }
}

#[test]
fn parentheses_200000_deep_are_refused_quickly() {
    let e = nested("(", "x", ")", 200_000);
    for cmd in [&["simplify", "-"][..], &["diff", "-", "--wrt", "x"]] {
        let o = jacob(cmd, e.as_bytes());
        assert_no_crash("200,000 nested parentheses", &o);
        assert_eq!(o.code, Some(2));
        assert!(o.stderr.contains("nests deeper"), "{}", brief(&o.stderr));
        assert!(caret(&o.stderr).is_some(), "no caret: {}", brief(&o.stderr));
        assert!(o.elapsed < Duration::from_secs(5), "took {:?}", o.elapsed);
    }
}

#[test]
fn long_chains_of_postfix_and_prefix_operators_never_crash() {
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "100,000 transposes",
            format!("x{}", "'".repeat(100_000)),
            vec![],
        ),
        (
            "100,000 minus signs",
            format!("{}x", "-".repeat(100_000)),
            vec![],
        ),
        (
            "100,000 spaced minus signs",
            format!("{}x", "- ".repeat(100_000)),
            vec![],
        ),
        (
            "x - - - … y",
            format!("x {}y", "- ".repeat(100_001)),
            vec![],
        ),
        (
            "t^t^…^t, 50,000 `^`",
            vec!["t"; 50_001].join("^"),
            vec!["--scalar", "t"],
        ),
        (
            "x.^t.^…, 50,000 `.^`",
            format!("x.^{}", vec!["t"; 50_000].join(".^")),
            vec!["--scalar", "t"],
        ),
        ("2^-2^-…, 50,000 `^-`", vec!["2"; 50_001].join("^-"), vec![]),
    ];
    for (what, e, flags) in &cases {
        for cmd in [&["simplify", "-"][..], &["diff", "-", "--wrt", "x"]] {
            if what.starts_with("t^t") && cmd[0] == "diff" {
                continue; // by t, below
            }
            let mut args = cmd.to_vec();
            args.extend(flags.iter().copied());
            let o = jacob(&args, e.as_bytes());
            assert_no_crash(&format!("{what}: {args:?}"), &o);
        }
    }
    // The derivative of a tower of powers: 10,000 levels keeps the debug build quick.
    let tower = vec!["t"; 10_001].join("^");
    let o = jacob(
        &["diff", "-", "--scalar", "t", "--wrt", "t"],
        tower.as_bytes(),
    );
    assert_no_crash("diff of t^t^…^t by t", &o);
    // The simple ones have known answers.
    let o = jacob(
        &["simplify", "-"],
        format!("x{}", "'".repeat(100_000)).as_bytes(),
    );
    assert_eq!(o.stdout, "x\n");
    let o = jacob(
        &["simplify", "-"],
        format!("{}x", "-".repeat(100_001)).as_bytes(),
    );
    assert_eq!(o.stdout, "-x\n");
}

// ---------------------------------------------------------------- long flat inputs

#[test]
fn a_sum_of_100000_terms_is_read_and_simplified() {
    let e = vec!["x"; 100_000].join(" + ");
    let o = jacob(&["simplify", "-"], e.as_bytes());
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (Some(0), "100000*x\n"),
        "stderr {}",
        brief(&o.stderr)
    );
    let o = jacob(&["diff", "-", "--wrt", "x"], e.as_bytes());
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (Some(0), "100000*eye(rows(x))\n"),
        "stderr {}",
        brief(&o.stderr)
    );
    // Alternating signs: 50,000 x's and 50,000 y's, all but the first subtracted.
    let e = ["x", "y"].repeat(50_000).join(" - ");
    let o = jacob(&["simplify", "-"], e.as_bytes());
    assert_eq!(o.code, Some(0), "stderr {}", brief(&o.stderr));
    assert!(
        ["-49998*x - 50000*y\n", "-50000*y - 49998*x\n"].contains(&o.stdout.as_str()),
        "{}",
        brief(&o.stdout)
    );
}

#[test]
fn a_product_of_20000_factors_is_read_and_simplified() {
    let e = vec!["A"; 20_000].join("*");
    let o = jacob(&["simplify", "-"], e.as_bytes());
    assert_eq!(o.code, Some(0), "stderr {}", brief(&o.stderr));
    assert!(o.stdout.starts_with("A*A"), "{}", brief(&o.stdout));
    let e = vec!["x"; 20_000].join(".*");
    let o = jacob(&["simplify", "-"], e.as_bytes());
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (Some(0), "x.^20000\n"),
        "stderr {}",
        brief(&o.stderr)
    );
    let o = jacob(&["diff", "-", "--wrt", "x"], e.as_bytes());
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (Some(0), "20000*diag(x.^19999)\n"),
        "stderr {}",
        brief(&o.stderr)
    );
}

#[test]
fn long_names_and_numbers_are_handled() {
    let name = "x".repeat(100_000);
    let o = jacob(&["simplify", "-"], name.as_bytes());
    assert_eq!((o.code, o.stdout.trim()), (Some(0), name.as_str()));
    let big = format!("1{}*x", "0".repeat(100_000));
    let o = jacob(&["simplify", "-"], big.as_bytes());
    assert_eq!(o.code, Some(2), "{}", brief(&o.stdout));
    assert!(o.stderr.contains("too large"), "{}", brief(&o.stderr));
    let (shown, _, width) = caret(&o.stderr).expect("a caret line");
    assert!(
        shown.chars().count() < 200 && width <= 70,
        "the caret line is not windowed"
    );
}

// ---------------------------------------------------------------- bad input

#[test]
fn syntax_errors_are_one_sentence_with_a_caret() {
    check_all_bad(&[
        Bad {
            args: &["simplify", ""],
            stdin: b"",
            needles: &["empty"],
            at: Some(""),
        },
        Bad {
            args: &["simplify", "   "],
            stdin: b"",
            needles: &["empty"],
            at: Some(""),
        },
        Bad {
            args: &["simplify", "x +"],
            stdin: b"",
            needles: &["ends too early"],
            at: Some(""),
        },
        Bad {
            args: &["simplify", "x *"],
            stdin: b"",
            needles: &["ends too early"],
            at: Some(""),
        },
        Bad {
            args: &["simplify", "* x"],
            stdin: b"",
            needles: &["`*` needs an operand on its left"],
            at: Some("* x"),
        },
        Bad {
            args: &["simplify", "x ++ y"],
            stdin: b"",
            needles: &["`+` needs an operand"],
            at: Some("+ y"),
        },
        Bad {
            args: &["simplify", "x * / y"],
            stdin: b"",
            needles: &["`/` needs an operand"],
            at: Some("/ y"),
        },
        Bad {
            args: &["simplify", "x .* .^ y"],
            stdin: b"",
            needles: &["`.^` needs an operand"],
            at: Some(".^ y"),
        },
        Bad {
            args: &["simplify", "(x + y"],
            stdin: b"",
            needles: &["never closed"],
            at: Some("(x"),
        },
        Bad {
            args: &["simplify", "sum(x"],
            stdin: b"",
            needles: &["never closed"],
            at: Some("(x"),
        },
        Bad {
            args: &["simplify", "x + y)"],
            stdin: b"",
            needles: &["no matching `(`"],
            at: Some(")"),
        },
        Bad {
            args: &["simplify", ")("],
            stdin: b"",
            needles: &["no matching `(`"],
            at: Some(")("),
        },
        Bad {
            args: &["simplify", "()"],
            stdin: b"",
            needles: &["operand before `)`"],
            at: Some(")"),
        },
        Bad {
            args: &["simplify", "relu()"],
            stdin: b"",
            needles: &["operand before `)`"],
            at: Some(")"),
        },
        Bad {
            args: &["simplify", "x,y"],
            stdin: b"",
            needles: &["unexpected `,`"],
            at: Some(",y"),
        },
        Bad {
            args: &["simplify", "x = y"],
            stdin: b"",
            needles: &["unexpected `=`"],
            at: Some("= y"),
        },
        Bad {
            args: &["diff", "rleu(x)", "--wrt", "x"],
            stdin: b"",
            needles: &["unknown function `rleu`", "did you mean `relu`"],
            at: Some("rleu"),
        },
        Bad {
            args: &["simplify", "sofmax(x)"],
            stdin: b"",
            needles: &["did you mean `softmax`"],
            at: Some("sofmax"),
        },
        Bad {
            args: &["simplify", "relu"],
            stdin: b"",
            needles: &["is a function"],
            at: Some("relu"),
        },
        Bad {
            args: &["simplify", "relu(x, y)"],
            stdin: b"",
            needles: &["relu takes 1 argument, but 2 were given"],
            at: Some("relu("),
        },
        Bad {
            args: &["simplify", "kron(A)"],
            stdin: b"",
            needles: &["kron takes 2 arguments"],
            at: Some("kron("),
        },
        Bad {
            args: &["simplify", "2x"],
            stdin: b"",
            needles: &["implicit multiplication", "`2*x`"],
            at: Some("x"),
        },
        Bad {
            args: &["simplify", "2x + y"],
            stdin: b"",
            needles: &["implicit multiplication", "`2*x`"],
            at: Some("x + y"),
        },
        Bad {
            args: &["simplify", "A x"],
            stdin: b"",
            needles: &["implicit multiplication", "`A*x`"],
            at: Some("x"),
        },
        Bad {
            args: &["simplify", "x′*A*x"],
            stdin: b"",
            needles: &["U+2032", "transpose"],
            at: Some("′"),
        },
        Bad {
            args: &["simplify", "x − y"],
            stdin: b"",
            needles: &["U+2212", "`-`"],
            at: Some("−"),
        },
        Bad {
            args: &["simplify", "A×x"],
            stdin: b"",
            needles: &["U+00D7", "`*`"],
            at: Some("×"),
        },
        Bad {
            args: &["simplify", "α*x"],
            stdin: b"",
            needles: &["U+03B1", "alpha"],
            at: Some("α"),
        },
        Bad {
            args: &["simplify", "1e400*x"],
            stdin: b"",
            needles: &["too large"],
            at: Some("1e400"),
        },
        Bad {
            args: &["simplify", "x^2"],
            stdin: b"",
            needles: &["x (n×1)", "`.^`"],
            at: Some("^"),
        },
        Bad {
            args: &["simplify", "alpha^x"],
            stdin: b"",
            needles: &["exponent x (n×1)", "scalar"],
            at: Some("^"),
        },
    ]);
}

#[test]
fn control_characters_and_bad_encodings_are_refused() {
    check_all_bad(&[
        Bad {
            args: &["simplify", "-"],
            stdin: b"x\0+y\n",
            needles: &["line 1", "U+0000"],
            at: Some(""),
        },
        Bad {
            args: &["simplify", "-"],
            stdin: b"x\x07+y\n",
            needles: &["line 1", "U+0007"],
            at: Some(""),
        },
        Bad {
            args: &["simplify", "-"],
            stdin: b"x + \x1b[31my\n",
            needles: &["line 1", "U+001B"],
            at: Some(""),
        },
        Bad {
            args: &["simplify", "-"],
            stdin: b"x + \xff\xfe y\n",
            needles: &["line 1", "UTF-8"],
            at: None,
        },
        Bad {
            args: &["simplify", "x\x07+y"],
            stdin: b"",
            needles: &["U+0007"],
            at: Some(""),
        },
    ]);
    // Invalid UTF-8 on the command line.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        let args = vec![
            OsString::from("simplify"),
            OsString::from_vec(b"x + \xff".to_vec()),
        ];
        let o = jacob_os(&args, b"");
        assert_eq!(o.code, Some(2));
        assert!(
            o.stderr.starts_with("error: ") && o.stderr.contains("UTF-8"),
            "{}",
            o.stderr
        );
    }
}

#[test]
fn control_characters_are_not_echoed_raw() {
    for input in [&b"x\0+y\n"[..], b"x\x07+y\n", b"x + \x1b[31my\n"] {
        let o = jacob(&["simplify", "-"], input);
        assert_eq!(o.code, Some(2));
        assert!(
            !o.stderr.chars().any(|c| c.is_control() && c != '\n'),
            "raw control character in {:?}",
            o.stderr
        );
    }
}

#[test]
fn shape_errors_name_both_shapes() {
    check_all_bad(&[
        Bad {
            args: &["diff", "A*y*b'+A*x", "--wrt", "x"],
            stdin: b"",
            needles: &["cannot add A*y*b' (n×m) and A*x (n×1)"],
            at: Some("+A*x"),
        },
        Bad {
            args: &["simplify", "x - A"],
            stdin: b"",
            needles: &["cannot subtract A (n×m) from x (n×1)"],
            at: Some("- A"),
        },
        Bad {
            args: &["simplify", "x*y"],
            stdin: b"",
            needles: &["cannot multiply x (n×1) by y (m×1)"],
            at: Some("*y"),
        },
        Bad {
            args: &["simplify", "x.*y'"],
            stdin: b"",
            needles: &["x (n×1)", "y' (1×m)", "elementwise"],
            at: Some(".*"),
        },
        Bad {
            args: &["simplify", "A/x"],
            stdin: b"",
            needles: &["x (n×1)", "./"],
            at: Some("/x"),
        },
        Bad {
            args: &["simplify", "det(x)"],
            stdin: b"",
            needles: &["det needs a square matrix", "x (n×1)"],
            at: Some("det("),
        },
        Bad {
            args: &["simplify", "inv(A*x)"],
            stdin: b"",
            needles: &["inv needs a square matrix", "A*x (n×1)"],
            at: Some("inv("),
        },
        Bad {
            args: &["shape", "det(A)", "--dim", "A=2x3"],
            stdin: b"",
            needles: &["A"],
            at: None,
        },
        Bad {
            args: &["hess", "A*x", "--wrt", "x"],
            stdin: b"",
            needles: &["Hessian needs a scalar", "n×1"],
            at: None,
        },
    ]);
}

#[test]
fn inputs_that_may_be_accepted_do_not_crash() {
    // `logdet(x*y')` unifies n with m; `softmax(A*B')` unifies the columns with 1.
    for e in ["logdet(x*y')", "softmax(A*B')"] {
        let o = jacob(&["simplify", e], b"");
        assert_no_crash(e, &o);
    }
}

#[test]
fn bad_flags_and_declarations_are_refused() {
    check_all_bad(&[
        Bad {
            args: &["diff", "x'*A*x", "--wrt", "A*x"],
            stdin: b"",
            needles: &["--wrt `A*x`", "not an expression"],
            at: None,
        },
        Bad {
            args: &["diff", "x'*A*x", "--wrt", "x+1"],
            stdin: b"",
            needles: &["not an expression"],
            at: None,
        },
        Bad {
            args: &["diff", "x'*A*x", "--wrt", ""],
            stdin: b"",
            needles: &["--wrt"],
            at: None,
        },
        Bad {
            args: &["diff", "relu(x)", "--wrt", "relu"],
            stdin: b"",
            needles: &["reserved"],
            at: None,
        },
        Bad {
            args: &[
                "diff", "x*2", "--wrt", "x", "--scalar", "x", "--vector", "x",
            ],
            stdin: b"",
            needles: &["`x` is declared both a scalar and a vector"],
            at: None,
        },
        Bad {
            args: &["diff", "x'*x", "--wrt", "x", "--symmetric", "x"],
            stdin: b"",
            needles: &["--symmetric `x`", "square matrix"],
            at: None,
        },
        Bad {
            args: &["diff", "x", "--wrt", "x", "--scalar", "2x"],
            stdin: b"",
            needles: &["--scalar `2x` is not a name"],
            at: None,
        },
        Bad {
            args: &["simplify", "x", "--dim", "x=0"],
            stdin: b"",
            needles: &["--dim `x=0`"],
            at: None,
        },
        Bad {
            args: &["simplify", "x", "--dim", "x"],
            stdin: b"",
            needles: &["--dim `x`"],
            at: None,
        },
        Bad {
            args: &["diff", "x", "--wrt", "x", "--layout", "sideways"],
            stdin: b"",
            needles: &["sideways"],
            at: None,
        },
        Bad {
            args: &["diff", "x"],
            stdin: b"",
            needles: &["--wrt"],
            at: None,
        },
        Bad {
            args: &["frobnicate", "x"],
            stdin: b"",
            needles: &["frobnicate"],
            at: None,
        },
        Bad {
            args: &["eval", "A", "--set", "A=[[1,2],[3]]"],
            stdin: b"",
            needles: &["different lengths"],
            at: None,
        },
        Bad {
            args: &["eval", "x", "--set", "x=[1,nan]"],
            stdin: b"",
            needles: &["finite"],
            at: None,
        },
        Bad {
            args: &["eval", "x", "--set", "x=[1e999]"],
            stdin: b"",
            needles: &["finite"],
            at: None,
        },
        Bad {
            args: &["eval", "x", "--set", "x"],
            stdin: b"",
            needles: &["--set `x`"],
            at: None,
        },
        Bad {
            args: &["eval", "inv(A)", "--set", "A=[[1,2],[2,4]]"],
            stdin: b"",
            needles: &["singular"],
            at: None,
        },
        Bad {
            args: &["eval", "log(x)", "--set", "x=[1,-2]"],
            stdin: b"",
            needles: &["log"],
            at: None,
        },
        Bad {
            args: &["eval", "A*x", "--set", "x=[1,2]"],
            stdin: b"",
            needles: &["no value for A"],
            at: None,
        },
        Bad {
            args: &["eval", "x*x'", "--random", "--dim", "x=100000"],
            stdin: b"",
            needles: &["too large"],
            at: None,
        },
        Bad {
            args: &["check", "x", "--wrt", "x", "--dim", "x=100000"],
            stdin: b"",
            needles: &["too large"],
            at: None,
        },
    ]);
}

#[test]
fn where_bindings_that_are_circular_or_shadow_the_variable_are_refused() {
    check_all_bad(&[
        Bad {
            args: &["diff", "h where h = W*h", "--wrt", "W"],
            stdin: b"",
            needles: &["`h`", "circular"],
            at: Some("h"),
        },
        Bad {
            args: &["simplify", "x where x = x"],
            stdin: b"",
            needles: &["`x`", "circular"],
            at: Some("x"),
        },
        Bad {
            args: &["simplify", "h where h = g, g = x"],
            stdin: b"",
            needles: &["`g`", "circular"],
            at: Some("g, g"),
        },
        Bad {
            args: &["diff", "sum(x) where x = A*y", "--wrt", "x"],
            stdin: b"",
            needles: &["shadows the variable x"],
            at: Some("x = A*y"),
        },
        Bad {
            args: &["simplify", "x where I = x"],
            stdin: b"",
            needles: &["`I` is a reserved name"],
            at: Some("I = x"),
        },
        Bad {
            args: &["simplify", "x where relu = x"],
            stdin: b"",
            needles: &["reserved"],
            at: Some("relu = x"),
        },
        Bad {
            args: &["simplify", "x where h ="],
            stdin: b"",
            needles: &["ends too early"],
            at: Some(""),
        },
        Bad {
            args: &["simplify", "h where h = x,"],
            stdin: b"",
            needles: &["ends too early"],
            at: Some(""),
        },
    ]);
}

#[test]
fn a_name_bound_twice_is_refused() {
    let o = jacob(&["diff", "h where h = x, h = y", "--wrt", "x"], b"");
    assert_eq!(o.code, Some(2), "stdout {:?}", o.stdout);
    assert!(o.stderr.contains("`h`"), "{}", o.stderr);
    assert!(caret(&o.stderr).is_some(), "{}", o.stderr);
}

#[test]
fn constant_folding_never_shows_infinity_or_nan_as_a_number() {
    for e in [
        "1e308*10",
        "1e308+1e308",
        "0/0",
        "1e200*1e200*x",
        "(1e300)^2",
    ] {
        let o = jacob(&["simplify", e], b"");
        assert!(matches!(o.code, Some(0 | 2)), "{e}: exit {:?}", o.code);
        if o.code == Some(0) {
            let answer = o.stdout.trim();
            assert!(
                !answer.contains("inf")
                    && !answer.contains("NaN")
                    && !answer.contains("/0")
                    && answer != "0",
                "simplify {e:?} answers {answer:?}"
            );
        } else {
            assert!(o.stderr.starts_with("error: "), "{e}: {}", o.stderr);
        }
    }
}

#[test]
fn syntax_hints_suggest_valid_jacob() {
    for e in ["x.'", "x.y", "1.2.3", "x where h", "where"] {
        let o = jacob(&["simplify", e], b"");
        assert_eq!(o.code, Some(2), "{e}");
        for bad in ["*.`", ".*.`", "`where*", "unexpected `w`"] {
            assert!(!o.stderr.contains(bad), "simplify {e:?}: {}", o.stderr);
        }
    }
}

#[test]
fn eval_random_refuses_a_symbol_too_large_to_hold() {
    let o = jacob(&["eval", "A", "--random", "--dim", "A=100000x100000"], b"");
    assert_eq!(o.code, Some(2), "stderr {}", brief(&o.stderr));
    assert!(
        o.stderr.starts_with("error: ") && o.stderr.contains("too large"),
        "{}",
        brief(&o.stderr)
    );
}

#[test]
fn eval_errors_do_not_show_internal_size_names() {
    for e in ["ones*x", "sum(ones)"] {
        let o = jacob(&["eval", e, "--random"], b"");
        assert!(matches!(o.code, Some(0 | 2)), "{e}: exit {:?}", o.code);
        assert!(!o.stderr.contains("d0"), "eval {e:?}: {}", o.stderr);
    }
}

#[test]
fn the_second_of_two_bindings_of_a_name_gets_the_caret() {
    check_all_bad(&[
        Bad {
            args: &["simplify", "h where h = x, h = y"],
            stdin: b"",
            needles: &["`h` is bound twice"],
            at: Some("h = y"),
        },
        Bad {
            args: &["simplify", "h + g where g = x, h = A*x, g = y"],
            stdin: b"",
            needles: &["`g` is bound twice"],
            at: Some("g = y"),
        },
    ]);
    // The same name in nested clauses is not twice in one clause.
    let o = jacob(&["simplify", "(h where h = x) + h where h = y"], b"");
    assert_eq!(o.code, Some(0), "{}", o.stderr);
}

#[test]
fn the_caret_stays_under_its_character_after_escapes_and_tabs() {
    for (input, at) in [
        (&b"x\x07 ++ y\n"[..], "\\x07 ++"),
        (b"\t\tx ++ y\n", "+ y"),
        (b"x\x1b[31m\n", "\\x1b"),
    ] {
        let o = jacob(&["simplify", "-"], input);
        assert_eq!(o.code, Some(2));
        let (shown, column, _) = caret(&o.stderr).expect("a caret line");
        let under: String = shown.chars().skip(column).collect();
        assert!(under.starts_with(at), "caret under {under:?}: {}", o.stderr);
    }
}

#[test]
fn control_characters_in_flags_are_not_echoed_raw() {
    for args in [
        &["diff", "x'*x", "--wrt", "x\x07"][..],
        &["eval", "x", "--set", "x=[1]", "--set", "y\x1b[31m=[2]"],
        &["simplify", "x", "--scalar", "a\x07"],
    ] {
        let o = jacob(args, b"");
        assert!(
            !o.stderr.chars().any(|c| c.is_control() && c != '\n'),
            "{args:?}: raw control character in {:?}",
            o.stderr
        );
    }
}

#[test]
fn syntax_messages_say_what_is_wrong() {
    check_all_bad(&[
        Bad {
            args: &["simplify", "x.'"],
            stdin: b"",
            needles: &["`.*`, `./` and `.^`", "transpose is `'`"],
            at: Some(".'"),
        },
        Bad {
            args: &["simplify", "x.y"],
            stdin: b"",
            needles: &["a lone `.`"],
            at: Some(".y"),
        },
        Bad {
            args: &["simplify", "1.2.3"],
            stdin: b"",
            needles: &["one decimal point"],
            at: Some(".3"),
        },
        Bad {
            args: &["simplify", "1e"],
            stdin: b"",
            needles: &["exponent", "`1e3`"],
            at: Some("e"),
        },
        Bad {
            args: &["simplify", "x where h"],
            stdin: b"",
            needles: &["`h`", "needs `=`"],
            at: Some("h"),
        },
        Bad {
            args: &["simplify", "x where"],
            stdin: b"",
            needles: &["ends too early", "binding"],
            at: Some(""),
        },
        Bad {
            args: &["simplify", "where h = x"],
            stdin: b"",
            needles: &["before `where`"],
            at: Some("where"),
        },
        Bad {
            args: &["simplify", "x + where h = y"],
            stdin: b"",
            needles: &["`+` needs an operand after it"],
            at: Some("where"),
        },
        Bad {
            args: &["simplify", "x where h = y, 2"],
            stdin: b"",
            needles: &["`,` must be followed by a binding"],
            at: Some("2"),
        },
        Bad {
            args: &["simplify", "'x"],
            stdin: b"",
            needles: &["transpose", "must follow an operand"],
            at: Some("'x"),
        },
        Bad {
            args: &["simplify", "exp x"],
            stdin: b"",
            needles: &["`exp` is a function", "`exp(x)`"],
            at: Some("x"),
        },
        Bad {
            args: &["simplify", "(A+B)(x+y)"],
            stdin: b"",
            needles: &["implicit multiplication", "`(A+B)*(x+y)`"],
            at: Some("(x+y)"),
        },
        Bad {
            args: &["simplify", "x'y"],
            stdin: b"",
            needles: &["implicit multiplication", "`x'*y`"],
            at: Some("y"),
        },
    ]);
}

#[test]
fn a_symbol_before_parentheses_is_a_product_not_a_misspelled_function() {
    check_all_bad(&[
        Bad {
            args: &["simplify", "A(x)"],
            stdin: b"",
            needles: &["`A` is not a function", "`A*(x)`"],
            at: Some("A("),
        },
        Bad {
            args: &["simplify", "x(y)"],
            stdin: b"",
            needles: &["`x` is not a function", "`x*(y)`"],
            at: Some("x("),
        },
        Bad {
            args: &["simplify", "foo(x)"],
            stdin: b"",
            needles: &["`foo` is not a function"],
            at: Some("foo("),
        },
        Bad {
            args: &["simplify", "Tr(A)"],
            stdin: b"",
            needles: &["did you mean `tr`"],
            at: Some("Tr("),
        },
        Bad {
            args: &["simplify", "nrom2(x)"],
            stdin: b"",
            needles: &["did you mean `norm2`"],
            at: Some("nrom2("),
        },
    ]);
    for e in ["A(x)", "x(y)", "foo(x)", "Foo(a, b)"] {
        let o = jacob(&["simplify", e], b"");
        assert!(!o.stderr.contains("did you mean"), "{e}: {}", o.stderr);
    }
}

#[test]
fn values_too_large_to_hold_are_refused() {
    check_all_bad(&[
        Bad {
            args: &["eval", "A+B", "--random", "--dim", "A=10000x8000"],
            stdin: b"",
            needles: &["more than 100000000 entries"],
            at: None,
        },
        Bad {
            args: &["eval", "x*x'", "--random", "--dim", "x=100000"],
            stdin: b"",
            needles: &["too large"],
            at: None,
        },
        Bad {
            args: &[
                "eval",
                "kron(A, B)",
                "--random",
                "--dim",
                "A=1000x1000",
                "--dim",
                "B=100x100",
            ],
            stdin: b"",
            needles: &["too large"],
            at: None,
        },
        Bad {
            args: &["check", "A*x", "--wrt", "x", "--dim", "A=100000x100000"],
            stdin: b"",
            needles: &["too large"],
            at: None,
        },
    ]);
}

#[test]
fn eval_names_sizes_and_values_in_the_users_words() {
    check_all_bad(&[
        Bad {
            args: &["eval", "ones*x", "--random"],
            stdin: b"",
            needles: &["the number of rows of `ones` is not fixed by the expression"],
            at: None,
        },
        Bad {
            args: &["eval", "I", "--random"],
            stdin: b"",
            needles: &["the size of `I`"],
            at: None,
        },
        Bad {
            args: &["eval", "inv(A)", "--set", "A=[[1,2,3],[4,5,6]]"],
            stdin: b"",
            needles: &["2×3", "needs `A` square"],
            at: None,
        },
        Bad {
            args: &["eval", "A*A", "--random", "--dim", "A=3x2"],
            stdin: b"",
            needles: &["--dim A=3x2", "needs `A` square"],
            at: None,
        },
        Bad {
            args: &["diff", "x'*x", "--wrt", ""],
            stdin: b"",
            needles: &["--wrt is empty"],
            at: None,
        },
    ]);
    // A --set for a name the expression does not use is noted, not silently dropped.
    let o = jacob(&["eval", "x", "--set", "x=[1]", "--set", "y=[2]"], b"");
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(
        o.stderr.contains("note: `y` does not appear"),
        "{}",
        o.stderr
    );
}

// ---------------------------------------------------------------- performance hangs

#[test]
fn deep_elementwise_chains_differentiate_in_time() {
    let e = nested("exp(", "x", ")", 10_000);
    let o = jacob(&["diff", "-", "--wrt", "x"], e.as_bytes());
    assert_eq!(o.code, Some(0), "{}", brief(&o.stderr));
}

#[test]
fn deep_chains_by_a_scalar_differentiate_in_time() {
    // The derivative by a scalar is a product of 1×1 factors, one per level.
    let e = nested("exp(", "alpha", ")", 10_000);
    let o = jacob(&["diff", "-", "--wrt", "alpha"], e.as_bytes());
    assert_eq!(o.code, Some(0), "{}", brief(&o.stderr));
}

#[test]
fn a_sum_of_100000_distinct_terms_simplifies_in_time() {
    let e: Vec<String> = (0..100_000).map(|i| format!("x{i}")).collect();
    let o = jacob(&["simplify", "-"], e.join(" + ").as_bytes());
    assert_eq!(o.code, Some(0), "{}", brief(&o.stderr));
}

#[test]
fn hessian_of_a_deep_network_finishes() {
    let mut e = String::from("x");
    for i in 1..=1000 {
        e = format!("tanh(W{i}*{e})");
    }
    let e = format!("norm2({e} - y)^2");
    let o = jacob(&["hess", "-", "--wrt", "x"], e.as_bytes());
    assert_no_crash("hess of a 1,000-layer network", &o);
}

// ---------------------------------------------------------------- batch mode

#[test]
fn batch_mode_answers_every_good_line_and_names_the_bad_one() {
    let o = jacob(&["diff", "-", "--wrt", "x"], b"x'*x\nx +\nA*x\n");
    assert_eq!(o.code, Some(2));
    assert_eq!(o.stdout, "2*x\nA\n");
    assert!(o.stderr.starts_with("error: line 2: "), "{}", o.stderr);
    assert!(
        !o.stderr.contains("line 1") && !o.stderr.contains("line 3"),
        "{}",
        o.stderr
    );
    assert!(caret(&o.stderr).is_some(), "{}", o.stderr);

    // Invalid UTF-8 on a line: that line is named, the others still answered.
    let o = jacob(&["diff", "-", "--wrt", "x"], b"x'*x\n\xff\xfe x\nA*x\n");
    assert_eq!(o.code, Some(2));
    assert_eq!(o.stdout, "2*x\nA\n");
    assert!(
        o.stderr.starts_with("error: line 2: ") && o.stderr.contains("UTF-8"),
        "{}",
        o.stderr
    );
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);

    // Blank lines are skipped but counted; CRLF and a last line without newline work.
    let o = jacob(&["simplify", "-"], b"x + x\r\n\n   \n(x\r\nA*A");
    assert_eq!(o.code, Some(2));
    assert_eq!(o.stdout, "2*x\nA*A\n");
    assert!(
        o.stderr.starts_with("error: line 4: ") && o.stderr.contains("never closed"),
        "{}",
        o.stderr
    );

    // All good: exit 0.
    let o = jacob(&["simplify", "-"], b"x + x\nA*A\n");
    assert_eq!((o.code, o.stdout.as_str()), (Some(0), "2*x\nA*A\n"));
}

// ---------------------------------------------------------------- in-process fuzzing

const TOKENS: &[&str] = &[
    "x", "A", "y", "t", "I", "ones", "2", ".5", "0", "1e400", "(", ")", "+", "-", "*", ".*", "./",
    "/", "^", ".^", "'", ",", "relu(", "sum(", "inv(", "kron(", "det(", "exp(", "log(", "softmax(",
    "diag(", "vec(", "norm2(", "where", "h", "=", " ", "alpha",
];

/// Runs the library in-process; `Err` if it panicked.
fn run_lib(args: &[&str], stdin: &[u8]) -> Result<(i32, String, String), String> {
    let mut input = Cursor::new(stdin.to_vec());
    let mut out = Vec::new();
    let mut err = Vec::new();
    let argv: Vec<String> = std::iter::once("jacob")
        .chain(args.iter().copied())
        .map(String::from)
        .collect();
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        jacob::run(argv, &mut input, &mut out, &mut err)
    }))
    .map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".to_string())
    })?;
    Ok((
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    ))
}

fn command(which: usize) -> &'static [&'static str] {
    match which {
        0 => &["diff", "--wrt", "x"],
        1 => &["diff", "--wrt", "A", "--layout", "numerator"],
        2 => &["hess", "--wrt", "x"],
        3 => &["simplify"],
        _ => &["shape"],
    }
}

fn check_run(args: &[&str], stdin: &[u8]) -> Result<(i32, String), TestCaseError> {
    let (code, out, err) = run_lib(args, stdin)
        .map_err(|p| TestCaseError::fail(format!("jacob {args:?} panicked: {p}")))?;
    prop_assert!(
        code == 0 || code == 2,
        "jacob {:?}: exit {} (stderr {:?})",
        args,
        code,
        err
    );
    if code == 2 {
        prop_assert!(
            err.contains("error: "),
            "jacob {:?}: exit 2 without an error: {:?}",
            args,
            err
        );
    }
    if code == 0 && !args.contains(&"-") {
        prop_assert!(
            !out.trim().is_empty(),
            "jacob {:?}: exit 0 with no answer",
            args
        );
    }
    Ok((code, out))
}

fn soup() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(TOKENS), 0..60).prop_map(|t| t.concat())
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    let language: &[u8] = b"xAyh2.5e()+-*/^',= \n\r\t\0\x07\xff\xc3\xa9";
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        proptest::collection::vec(proptest::sample::select(language), 0..200),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn token_soups_never_panic(e in soup(), which in 0usize..5) {
        let mut args = command(which).to_vec();
        args.push("--");
        args.push(&e);
        check_run(&args, b"")?;
    }

    #[test]
    fn random_bytes_in_batch_mode_never_panic(input in bytes(), which in 0usize..5) {
        let mut args = command(which).to_vec();
        args.insert(1, "-");
        check_run(&args, &input)?;
    }

    #[test]
    fn simplified_soups_read_back(e in soup()) {
        let (code, out) = check_run(&["simplify", "--", &e], b"")?;
        if code == 0 && e != "-" {
            let answer = out.trim_end();
            let (code, _, err) = run_lib(&["simplify", "--", answer], b"").map_err(TestCaseError::fail)?;
            prop_assert_eq!(code, 0, "simplify {:?} printed {:?}, which does not read back: {}", e, answer, err);
        }
    }
}

/// A product size with a factor that the reading later makes 1 (`kron(ones'*B', …)`:
/// `ones'` is a row only once the claim meets the expression) once made a size its own
/// factor, and `check` overflowed its stack.
#[test]
fn a_claim_whose_kron_size_collapses_is_checked() {
    let o = jacob(
        &[
            "check",
            "(A*B)*sigmoid(alpha + x - x)",
            "--wrt",
            "A",
            "--claim",
            "sigmoid(alpha)*kron(ones'*B', eye(rows(A)))",
        ],
        b"",
    );
    assert_eq!(o.code, Some(0), "{}{}", o.stdout, brief(&o.stderr));
}

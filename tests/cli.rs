//! The command line as a new user meets it: `--dim` checked by every command, every
//! listed flag doing something, mistakes answered with help, shell completions and
//! manual pages.

mod common;
use common::jacob;

/// The expression commands, each with what it needs besides the expression.
const COMMANDS: &[&[&str]] = &[
    &["diff", "--wrt", "x"],
    &["hess", "--wrt", "x"],
    &["simplify"],
    &["shape"],
    &["eval", "--random"],
    &["check", "--wrt", "x"],
];

fn run(command: &[&str], expr: &str, more: &[&str]) -> (i32, String, String) {
    let mut args: Vec<&str> = vec![command[0], expr];
    args.extend(&command[1..]);
    args.extend(more);
    jacob(&args)
}

#[test]
fn every_command_checks_dim() {
    for command in COMMANDS {
        // Sizes the expression cannot have.
        let (code, out, err) = run(command, "x'*A*x", &["--dim", "x=3", "--dim", "A=4x4"]);
        assert_eq!(code, 2, "{command:?}: {out}{err}");
        assert!(
            err.starts_with("error: --dim A makes"),
            "{command:?}: {err}"
        );
        assert!(out.is_empty(), "{command:?}: {out}");
        // A name the expression does not have.
        let (code, _, err) = run(command, "x'*A*x", &["--dim", "q=3"]);
        assert_eq!(code, 2, "{command:?}: {err}");
        assert!(
            err.contains("`q`") && err.contains("did you mean `x`?"),
            "{err}"
        );
        // A size that does not fit the kind, and a square matrix given two sizes.
        let (code, _, err) = run(command, "x'*A*x", &["--dim", "x=3x2"]);
        assert_eq!(code, 2, "{command:?}: {err}");
        let (code, _, err) = run(command, "x'*A*x", &["--dim", "A=3x4"]);
        assert_eq!(code, 2, "{command:?}: {err}");
        assert!(err.contains("square"), "{err}");
        // Sizes that fit are accepted.
        let (code, _, err) = run(command, "x'*A*x", &["--dim", "x=3", "--dim", "A=3x3"]);
        assert_eq!(code, 0, "{command:?}: {err}");
    }
}

#[test]
fn a_variable_that_does_not_occur_is_an_error_with_a_suggestion() {
    for command in ["diff", "hess", "check"] {
        let (code, out, err) = jacob(&[command, "x'*A*x", "--wrt", "z"]);
        assert_eq!(code, 2, "{command}: {out}{err}");
        assert!(out.is_empty(), "{command}: {out}");
        assert!(err.contains("did you mean `x`?"), "{command}: {err}");
    }
    let (code, _, err) = jacob(&["diff", "x'*A*x", "--wrt", "theta"]);
    assert_eq!(code, 2);
    assert!(err.contains("its symbols are `x`, `A`"), "{err}");
}

/// Spellings of other tools get jacob's, and what the message suggests is itself
/// valid jacob whose derivative agrees with finite differences.
#[test]
fn other_spellings_get_jacobs_and_the_suggestion_works() {
    let cases: &[(&str, &str, &str)] = &[
        ("trace(A*X)", "X", "tr(A*X)"),
        ("Trace(A*X)", "X", "tr(A*X)"),
        ("transpose(A)*x", "x", "A'"),
        ("transpose(A*B)*x", "x", "(A*B)'"),
        ("mean(x)", "x", "sum(x)/rows(x)"),
        ("mean(X)", "X", "sum(X)/(rows(X)*cols(X))"),
        ("max(A*x)", "x", "relu(A*x)"),
        ("max(A*x)", "x", "logsumexp(A*x)"),
        ("min(x)", "x", "-relu(-x)"),
        ("min(x)", "x", "-logsumexp(-x)"),
        ("ln(x)", "x", "log(x)"),
        ("norm(x)", "x", "norm2(x)"),
        ("dot(x, A*y)", "x", "x'*(A*y)"),
        ("x^T*A*x", "x", "x'"),
        ("(A*x)^T*y", "x", "(A*x)'"),
        ("x.T*A*x", "x", "x'"),
        ("(A*x).T*y", "x", "(A*x)'"),
        ("x**2", "x", "x.^2"),
        ("sum(x**3)", "x", "x.^3"),
    ];
    for &(bad, wrt, good) in cases {
        let (code, out, err) = jacob(&["diff", bad, "--wrt", wrt]);
        assert_eq!(code, 2, "{bad}: {out}{err}");
        assert!(err.contains(&format!("`{good}`")), "{bad}: {err}");
        assert!(
            err.lines().count() == 3 && err.ends_with("^\n"),
            "{bad}: {err}"
        );
        // The suggestion, put in place of the mistake, is valid jacob.
        let fixed = fix(bad, good);
        let (code, _, err) = jacob(&["check", &fixed, "--wrt", wrt]);
        assert_eq!(code, 0, "{bad} → {fixed}: {err}");
    }
    // Names that are not another tool's functions get the list of jacob's.
    let (code, _, err) = jacob(&["simplify", "foo(x)"]);
    assert_eq!(code, 2);
    for f in [
        "exp",
        "relu",
        "logsumexp",
        "rows",
        "cols",
        "eye",
        "ones",
        "zeros",
        "kron",
    ] {
        assert!(err.contains(&format!(" {f} ")), "{f}: {err}");
    }
    // A symbol before parentheses is a product.
    let (_, _, err) = jacob(&["simplify", "A(x)"]);
    assert!(err.contains("`A*(x)`"), "{err}");
}

/// `bad` with the part that `good` replaces replaced: the call or operator the message
/// is about.
fn fix(bad: &str, good: &str) -> String {
    let replacements: &[(&str, &str)] = &[
        ("trace(A*X)", "tr(A*X)"),
        ("Trace(A*X)", "tr(A*X)"),
        ("transpose(A)", "A'"),
        ("transpose(A*B)", "(A*B)'"),
        ("mean(x)", "sum(x)/rows(x)"),
        ("mean(X)", "sum(X)/(rows(X)*cols(X))"),
        ("max(A*x)", good),
        ("min(x)", good),
        ("ln(x)", "log(x)"),
        ("norm(x)", "norm2(x)"),
        ("dot(x, A*y)", "x'*(A*y)"),
        ("x^T", "x'"),
        ("(A*x)^T", "(A*x)'"),
        ("x.T", "x'"),
        ("(A*x).T", "(A*x)'"),
        ("x**2", "x.^2"),
        ("x**3", "x.^3"),
    ];
    let mut out = bad.to_string();
    for (from, to) in replacements {
        out = out.replace(from, to);
    }
    out
}

/// A Greek name is a scalar by default; where that makes it broadcast against a vector
/// or matrix, a note on standard error says so and how to make it a vector.
#[test]
fn a_default_kind_that_broadcasts_is_noted() {
    let noted = |args: &[&str]| {
        let (code, _, err) = jacob(args);
        assert_eq!(code, 0, "{args:?}: {err}");
        err
    };
    let gaussian = "-0.5*(x - mu)'*inv(Sigma)*(x - mu)";
    for command in [
        &["diff", gaussian, "--wrt", "mu"][..],
        &["simplify", gaussian],
        &["shape", gaussian],
    ] {
        let err = noted(command);
        assert_eq!(
            err,
            "note: mu is a scalar because it is a Greek letter's name, and is broadcast to every entry here; --vector mu makes it a vector\n",
            "{command:?}"
        );
    }
    assert!(noted(&["diff", gaussian, "--wrt", "mu", "--vector", "mu"]).is_empty());
    assert!(noted(&["diff", gaussian, "--wrt", "mu", "--scalar", "mu"]).is_empty());
    // Against a matrix, the way out is a matrix; elementwise products count too.
    assert!(noted(&["shape", "A - 2*sigma"]).contains("--matrix sigma makes it a matrix"));
    assert!(noted(&["shape", "x.*theta"]).contains("--vector theta"));
    assert!(noted(&["shape", "theta'.*x"]).contains("--vector theta"));
    // Scaling is not broadcasting; scalars among scalars are not either.
    assert!(noted(&["shape", "alpha*x + lambda*norm2(x)^2*x"]).is_empty());
    assert!(noted(&["shape", "alpha + beta*x'*x"]).is_empty());
    // Batch mode names the line.
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = jacob::run(
        ["jacob", "shape", "-"],
        &mut std::io::Cursor::new(b"x'*x\nx - mu\n".to_vec()),
        &mut out,
        &mut err,
    );
    assert_eq!(code, 0);
    assert!(String::from_utf8_lossy(&err).starts_with("note: line 2: mu is a scalar"));
}

/// A product that fails because a lowercase name is a vector by default suggests
/// declaring it a scalar, and the suggestion works.
#[test]
fn a_vector_by_default_in_a_failed_product_suggests_scalar() {
    let (code, _, err) = jacob(&["diff", "t*x", "--wrt", "t"]);
    assert_eq!(code, 2);
    assert!(err.contains("--scalar t"), "{err}");
    let (code, out, err) = jacob(&["diff", "t*x", "--wrt", "t", "--scalar", "t"]);
    assert_eq!((code, out.as_str()), (0, "x\n"), "{err}");
    for (expr, name) in [("x/c", "c"), ("A + c", "c"), ("s^2*x", "s"), ("x.*A", "x")] {
        let (code, _, err) = jacob(&["shape", expr]);
        assert_eq!(code, 2, "{expr}");
        assert!(
            err.contains(&format!("declare it with --scalar {name}")),
            "{expr}: {err}"
        );
        let (code, _, err) = jacob(&["shape", expr, "--scalar", name]);
        assert_eq!(code, 0, "{expr}: {err}");
    }
    // Not for names whose kind was declared, nor for matrices.
    let (_, _, err) = jacob(&["shape", "t*x", "--vector", "t,x"]);
    assert!(!err.contains("--scalar"), "{err}");
    let (_, _, err) = jacob(&["shape", "A*B*x + C"]);
    assert!(!err.contains("--scalar"), "{err}");
}

/// A claim of the wrong shape is a wrong derivative (exit 1, "disagrees"), with a note
/// when it is right in another layout.
#[test]
fn a_claim_of_the_wrong_shape_disagrees() {
    let (code, out, err) = jacob(&["check", "x'*A*x", "--wrt", "x", "--claim", "x'*(A + A')"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.starts_with("disagrees: x'*(A + A') has the wrong shape"),
        "{out}"
    );
    assert!(err.contains("--layout numerator"), "{err}");
    let (code, out, err) = jacob(&[
        "check",
        "x'*A*x",
        "--wrt",
        "x",
        "--claim",
        "x'*(A + A')",
        "--layout",
        "numerator",
    ]);
    assert_eq!(code, 0, "{out}{err}");
}

/// `det(A*X*B)` is singular at sizes where A has more rows than columns; jacob's
/// derivative holds inv(A*X*B), so those sizes are drawn again instead of being
/// reported as a disagreement.
#[test]
fn check_draws_sizes_again_where_the_derivative_cannot_be_evaluated() {
    for seed in ["1", "2", "3", "4"] {
        let (code, out, err) = jacob(&[
            "check",
            "det(A*X*B)",
            "--wrt",
            "X",
            "--seed",
            seed,
            "--points",
            "5",
        ]);
        assert_eq!(code, 0, "seed {seed}: {out}{err}");
        assert!(!out.contains("cannot be evaluated"), "{out}");
    }
}

/// `--set` reads MATLAB's matrices as well as JSON lists, to the same values.
#[test]
fn set_takes_matlab_matrices() {
    let (code, out, err) = jacob(&["eval", "A*x", "--set", "A=[1 2; 3 4]", "--set", "x=[1; 1]"]);
    assert_eq!((code, out.as_str()), (0, "[3, 7]\n"), "{err}");
    let (_, json_out, _) = jacob(&[
        "eval",
        "A*x",
        "--set",
        "A=[[1,2],[3,4]]",
        "--set",
        "x=[1,1]",
    ]);
    assert_eq!(out, json_out);
    let (code, out, _) = jacob(&["eval", "x'*x", "--set", "x=[1 2 3]"]);
    assert_eq!((code, out.as_str()), (0, "14\n"));
    let (code, _, err) = jacob(&["eval", "A", "--set", "A=[1 2; 3]"]);
    assert_eq!(code, 2);
    assert!(err.contains("different lengths"), "{err}");
}

/// `--equation` shows the input as typed, not as jacob rewrote it.
#[test]
fn equation_shows_the_input_as_typed() {
    for command in ["diff", "hess"] {
        for format in ["text", "latex", "json"] {
            let args = [
                command,
                "sum(log(1 + exp(x)))",
                "--wrt",
                "x",
                "--equation",
                "--format",
                format,
            ];
            let (code, out, err) = jacob(&args);
            assert_eq!(code, 0, "{args:?}: {err}");
            assert!(!out.contains("softplus"), "{args:?}: {out}");
            assert!(out.contains("log"), "{args:?}: {out}");
        }
    }
    let (_, out, _) = jacob(&["diff", "x'*A*x", "--wrt", "x", "--equation"]);
    assert!(out.starts_with("∂(x'*A*x)/∂x = "), "{out}");
}

/// A command, one of its flags, a run with the flag, and the run to compare with.
type FlagUse<'a> = (&'a str, &'a str, &'a [&'a str], Option<&'a [&'a str]>);

/// Every flag `--help` lists does something: for each flag of each command, a run with
/// it is accepted and answers differently (output, notes or exit code) from the same
/// run without it. A new flag without a line here fails the test.
#[test]
fn every_listed_flag_works() {
    use clap::CommandFactory;
    // (command, flag, a run with the flag, the run to compare it with: by default the
    // same run without the flag and its value)
    #[rustfmt::skip]
    let uses: &[FlagUse] = &[
        ("diff", "scalar", &["diff", "t*x", "--wrt", "x", "--scalar", "t"], None),
        ("diff", "vector", &["diff", "x - mu", "--wrt", "x", "--vector", "mu"], None),
        ("diff", "matrix", &["diff", "a*x", "--wrt", "x", "--matrix", "a"], None),
        ("diff", "symmetric", &["diff", "x'*A*x", "--wrt", "x", "--symmetric", "A"], None),
        ("diff", "dim", &["diff", "x'*A*x", "--wrt", "x", "--dim", "A=3x4"], None),
        ("diff", "wrt", &["diff", "x'*A*x", "--wrt", "A"], Some(&["diff", "x'*A*x", "--wrt", "x"])),
        ("diff", "layout", &["diff", "x'*A*x", "--wrt", "x", "--layout", "numerator"], None),
        ("diff", "explain", &["diff", "x'*A*x", "--wrt", "x", "--explain"], None),
        ("diff", "equation", &["diff", "x'*A*x", "--wrt", "x", "--equation"], None),
        ("diff", "form", &["diff", "inv(X)", "--wrt", "X", "--form", "differential"], None),
        ("diff", "format", &["diff", "x'*A*x", "--wrt", "x", "--format", "latex"], None),
        ("diff", "standalone", &["diff", "x'*A*x", "--wrt", "x", "--format", "latex", "--standalone"], None),
        ("hess", "scalar", &["hess", "t^3*x'*x", "--wrt", "t", "--scalar", "t"], None),
        ("hess", "vector", &["hess", "sum(exp(x - mu))", "--wrt", "x", "--vector", "mu"], None),
        ("hess", "matrix", &["hess", "x'*a*x", "--wrt", "x", "--matrix", "a"], None),
        ("hess", "symmetric", &["hess", "x'*A*x", "--wrt", "x", "--symmetric", "A"], None),
        ("hess", "dim", &["hess", "x'*A*x", "--wrt", "x", "--dim", "A=3x4"], None),
        ("hess", "wrt", &["hess", "x'*A*y", "--wrt", "y"], Some(&["hess", "x'*A*y", "--wrt", "x"])),
        ("hess", "equation", &["hess", "x'*A*x", "--wrt", "x", "--equation"], None),
        ("hess", "form", &["hess", "x'*A*x", "--wrt", "x", "--form", "differential"], None),
        ("hess", "format", &["hess", "x'*A*x", "--wrt", "x", "--format", "json"], None),
        ("hess", "standalone", &["hess", "x'*A*x", "--wrt", "x", "--format", "latex", "--standalone"], None),
        ("simplify", "scalar", &["simplify", "c*x + x*c", "--scalar", "c"], None),
        ("simplify", "vector", &["simplify", "x - mu", "--vector", "mu"], None),
        ("simplify", "matrix", &["simplify", "a + a'", "--matrix", "a"], None),
        ("simplify", "symmetric", &["simplify", "S - S'", "--symmetric", "S"], None),
        ("simplify", "dim", &["simplify", "A*x", "--dim", "A=3x4", "--dim", "x=3"], None),
        ("simplify", "format", &["simplify", "A*x", "--format", "latex"], None),
        ("simplify", "standalone", &["simplify", "A*x", "--format", "latex", "--standalone"], None),
        ("shape", "scalar", &["shape", "c*x", "--scalar", "c"], None),
        ("shape", "vector", &["shape", "x - mu", "--vector", "mu"], None),
        ("shape", "matrix", &["shape", "a*x", "--matrix", "a"], None),
        ("shape", "symmetric", &["shape", "A*x", "--symmetric", "A"], None),
        ("shape", "dim", &["shape", "A*x", "--dim", "A=3x4"], None),
        ("shape", "format", &["shape", "A*x", "--format", "json"], None),
        ("eval", "scalar", &["eval", "c*x", "--scalar", "c", "--random"], None),
        ("eval", "vector", &["eval", "x - mu", "--vector", "mu", "--random"], None),
        ("eval", "matrix", &["eval", "a", "--matrix", "a", "--random", "--dim", "a=2x3"], None),
        ("eval", "symmetric", &["eval", "A", "--symmetric", "A", "--random", "--dim", "A=2x2"], None),
        ("eval", "dim", &["eval", "x", "--random", "--dim", "x=2"], None),
        ("eval", "set", &["eval", "x", "--set", "x=[1,2]"], None),
        ("eval", "random", &["eval", "x", "--random"], None),
        ("eval", "seed", &["eval", "x", "--random", "--seed", "7"], None),
        ("eval", "format", &["eval", "x", "--set", "x=[1,2]", "--format", "latex"], None),
        ("eval", "standalone", &["eval", "x", "--set", "x=[1,2]", "--format", "latex", "--standalone"], None),
        ("check", "scalar", &["check", "c*x", "--wrt", "x", "--scalar", "c"], None),
        ("check", "vector", &["check", "sum(x - mu)", "--wrt", "x", "--vector", "mu"], None),
        ("check", "matrix", &["check", "a*x", "--wrt", "x", "--matrix", "a"], None),
        ("check", "symmetric", &["check", "x'*A*x", "--wrt", "x", "--symmetric", "A"], None),
        ("check", "dim", &["check", "x'*A*x", "--wrt", "x", "--dim", "x=2"], None),
        ("check", "wrt", &["check", "x'*A*x", "--wrt", "A"], Some(&["check", "x'*A*x", "--wrt", "x"])),
        ("check", "layout", &["check", "x'*A*x", "--wrt", "x", "--layout", "numerator"], None),
        ("check", "claim", &["check", "x'*A*x", "--wrt", "x", "--claim", "A*x + A'*x"], None),
        ("check", "points", &["check", "x'*A*x", "--wrt", "x", "--points", "1"], None),
        ("check", "form", &["check", "inv(X)", "--wrt", "X", "--form", "differential"], None),
        ("check", "tol", &["check", "x'*x", "--wrt", "x", "--claim", "2.001*x", "--tol", "1e-2"], None),
        ("check", "seed", &["check", "x'*A*x", "--wrt", "x", "--seed", "7"], None),
        ("check", "format", &["check", "x'*A*x", "--wrt", "x", "--format", "json"], None),
        ("completions", "shell", &["completions", "zsh"], Some(&["completions", "bash"])),
        ("man", "command", &["man", "diff"], Some(&["man"])),
    ];
    let cli = jacob::Cli::command();
    let mut listed = Vec::new();
    for sub in cli.get_subcommands() {
        for arg in sub.get_arguments() {
            let id = arg.get_id().as_str();
            if ["help", "version", "expr"].contains(&id) {
                continue;
            }
            listed.push((sub.get_name().to_string(), id.to_string()));
        }
    }
    for (command, flag) in &listed {
        assert!(
            uses.iter().any(|(c, f, ..)| c == command && f == flag),
            "`jacob {command} --{flag}` is listed but no test shows it at work"
        );
    }
    for (command, flag, with, without) in uses {
        assert!(
            listed.iter().any(|(c, f)| c == command && f == flag),
            "`jacob {command} --{flag}` is tested but not listed"
        );
        // Accepted (a flag that only checks, `--dim` on `diff`, may reject the input,
        // but not as an argument), and with an effect on the answer, notes or exit code.
        let with_flag = jacob(with);
        assert!(
            !with_flag.2.contains("unexpected argument") && !with_flag.2.contains("invalid value"),
            "{with:?}: {}",
            with_flag.2
        );
        let without: Vec<&str> = match without {
            Some(w) => w.to_vec(),
            None => {
                let at = with
                    .iter()
                    .position(|a| *a == format!("--{flag}"))
                    .expect("the flag is in the run");
                let boolean = ["explain", "equation", "standalone", "random"].contains(flag);
                let mut w = with.to_vec();
                w.drain(at..at + if boolean { 1 } else { 2 });
                w
            }
        };
        assert_ne!(
            with_flag,
            jacob(&without),
            "{with:?} answers as {without:?} does"
        );
    }
}

/// `jacob completions SHELL` prints a script that completes the commands and their
/// flags; `jacob man [COMMAND]` prints roff manual pages.
#[test]
fn completions_and_manual_pages() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = jacob(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        for word in ["diff", "hess", "check", "wrt", "standalone", "symmetric"] {
            assert!(out.contains(word), "{shell} completions lack {word}");
        }
    }
    // The bash script is valid bash.
    let (_, script, _) = jacob(&["completions", "bash"]);
    if let Ok(mut child) = std::process::Command::new("bash")
        .arg("-n")
        .stdin(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        let _ = child
            .stdin
            .take()
            .map(|mut s| s.write_all(script.as_bytes()));
        assert!(
            child.wait().is_ok_and(|s| s.success()),
            "bash -n rejects the script"
        );
    }
    let (code, page, _) = jacob(&["man"]);
    assert_eq!(code, 0);
    assert!(
        page.starts_with(".ie") && page.contains(".TH jacob 1"),
        "{page}"
    );
    assert!(page.contains("jacob\\-diff(1)"), "{page}");
    for command in ["diff", "hess", "simplify", "shape", "eval", "check"] {
        let (code, page, err) = jacob(&["man", command]);
        assert_eq!(code, 0, "{err}");
        assert!(page.contains(&format!(".TH jacob-{command} 1")), "{page}");
        assert!(page.contains("\\-\\-dim"), "{command}: {page}");
    }
    let (code, _, err) = jacob(&["man", "frobnicate"]);
    assert_eq!(code, 2, "{err}");
}

/// `--standalone` makes a document of every LaTeX answer, and only of LaTeX; flags a
/// command does not use are refused, not ignored.
#[test]
fn standalone_needs_latex_and_unused_flags_are_refused() {
    let (code, _, err) = jacob(&["simplify", "x", "--standalone"]);
    assert_eq!(code, 2);
    assert!(err.contains("--format latex"), "{err}");
    for args in [
        &["diff", "x'*x", "--wrt", "x", "--seed", "3"][..],
        &["hess", "x'*x", "--wrt", "x", "--explain"],
        &["hess", "x'*x", "--wrt", "x", "--layout", "numerator"],
        &["shape", "x", "--format", "latex"],
        &["check", "x'*x", "--wrt", "x", "--format", "latex"],
        &["shape", "x", "--standalone"],
    ] {
        let (code, out, err) = jacob(args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(out.is_empty(), "{args:?}: {out}");
    }
    let (_, help, _) = jacob(&["hess", "--help"]);
    assert!(
        !help.contains("--explain") && !help.contains("--seed"),
        "{help}"
    );
    let (_, help, _) = jacob(&["shape", "--help"]);
    assert!(!help.contains("latex"), "{help}");
}

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

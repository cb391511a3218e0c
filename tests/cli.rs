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

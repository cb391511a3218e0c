//! Data-driven tests: every file in `tests/inputs/{ok,err}/` is a command (line 1) and an
//! expression (line 2); its output is an insta snapshot in `snapshots/`, and every
//! derivative it shows is also checked against finite differences.

mod common;
use common::jacob;

/// Splits a case file into its arguments (with the expression in second place).
fn case(text: &str) -> Vec<String> {
    let mut lines = text.lines();
    let command = lines.next().unwrap_or_default();
    let expr = lines.next().unwrap_or_default().to_string();
    let mut words = command.split_whitespace().map(String::from);
    let mut args: Vec<String> = words.next().into_iter().collect();
    args.push(expr);
    args.extend(words);
    args
}

fn value_of(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

/// The flags that describe the symbols (declarations, layout), to pass on to `check`.
fn declarations(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 2;
    while i + 1 < args.len() {
        if ["--scalar", "--vector", "--matrix", "--symmetric", "--dim"].contains(&args[i].as_str())
        {
            out.push(args[i].clone());
            out.push(args[i + 1].clone());
        }
        i += 1;
    }
    out
}

/// The kinds the flags declare, by name.
fn kinds(args: &[String]) -> Vec<(String, jacob::Kind)> {
    let mut out = Vec::new();
    for w in args.windows(2) {
        let kind = match w[0].as_str() {
            "--scalar" => jacob::Kind::Scalar,
            "--vector" => jacob::Kind::Vector,
            "--matrix" => jacob::Kind::Matrix,
            "--symmetric" => jacob::Kind::Symmetric,
            _ => continue,
        };
        out.extend(w[1].split(',').map(|n| (n.trim().to_string(), kind)));
    }
    out
}

/// A derivative printed by jacob must agree with finite differences.
fn assert_numerically_right(args: &[String], printed: &str) {
    let (command, expr) = (args[0].as_str(), args[1].as_str());
    let Some(wrt) = value_of(args, "--wrt") else {
        return;
    };
    let decls = declarations(args);
    let layout = value_of(args, "--layout").unwrap_or_else(|| "mixed".into());
    // The answer is the last line (`--explain` prints its steps before it); with
    // `--equation`, the right-hand side of `∂(f)/∂x = …  (… layout)`.
    let mut claim = printed.trim().lines().last().unwrap_or_default();
    if args.iter().any(|a| a == "--equation") {
        let lhs_end = claim.rfind('∂').expect("an equation has ∂");
        let (_, rhs) = claim[lhs_end..]
            .split_once(" = ")
            .expect("an equation has =");
        claim = rhs.rsplit_once("  (").map_or(rhs, |(d, _)| d);
    }
    // A Hessian is the Jacobian of the gradient: check it as that.
    let (of, layout) = if command == "hess" {
        let mut grad_args: Vec<&str> = vec!["diff", expr, "--wrt", &wrt];
        grad_args.extend(decls.iter().map(String::as_str));
        let (code, grad, err) = jacob(&grad_args);
        assert_eq!(code, 0, "gradient of {expr}: {err}");
        (grad.trim().to_string(), "mixed".to_string())
    } else {
        (expr.to_string(), layout)
    };
    let mut check: Vec<&str> = vec![
        "check", &of, "--wrt", &wrt, "--claim", claim, "--layout", &layout,
    ];
    check.extend(decls.iter().map(String::as_str));
    let (code, out, err) = jacob(&check);
    assert_eq!(
        code, 0,
        "{command} {expr} --wrt {wrt} printed {claim}, which finite differences reject:\n{out}{err}"
    );
}

#[test]
fn ok_cases() {
    insta::glob!("inputs/ok/*.txt", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let args = case(&text);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = jacob(&argv);
        assert_eq!(code, 0, "{text}: {err}");
        let plain = value_of(&args, "--format").is_none();
        if matches!(args[0].as_str(), "diff" | "hess") && plain {
            assert_numerically_right(&args, &out);
        }
        if args[0] == "simplify" && plain {
            // The printed text, read back alone, has the value and shape of the input.
            let kinds = kinds(&args);
            let kinds: Vec<(&str, jacob::Kind)> =
                kinds.iter().map(|(n, k)| (n.as_str(), *k)).collect();
            for seed in 0..3 {
                if let Err(e) = common::same_value(&args[1], out.trim(), &kinds, seed) {
                    panic!("simplify {} printed {}:\n{e}", args[1], out.trim());
                }
            }
        }
        insta::with_settings!({snapshot_path => "../snapshots", prepend_module_to_snapshot => false, omit_expression => true}, {
            insta::assert_snapshot!(format!("$ jacob {}\n{out}{err}", shell_words(&args)));
        });
    });
}

#[test]
fn err_cases() {
    insta::glob!("inputs/err/*.txt", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let args = case(&text);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = jacob(&argv);
        assert_eq!(code, 2, "{text}: expected exit 2, got {code}: {out}{err}");
        assert!(
            out.is_empty(),
            "{text}: an error prints nothing on stdout: {out}"
        );
        assert!(err.starts_with("error: "), "{text}: {err}");
        assert!(!err.contains("panicked"), "{text}: {err}");
        insta::with_settings!({snapshot_path => "../snapshots", prepend_module_to_snapshot => false, omit_expression => true}, {
            insta::assert_snapshot!(format!("$ jacob {}\n{err}", shell_words(&args)));
        });
    });
}

fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=.,".contains(c))
            {
                a.clone()
            } else {
                format!("\"{a}\"")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

//! Renders jacob's `--format latex` output with KaTeX and compiles it with pdflatex:
//! every derivative of the public examples, a list covering each function and operator
//! of the language, `--equation` statements and `--explain` steps must render without a
//! KaTeX error (strict mode) and compile inside `$…$` with amsmath.
//!
//! Needs `node` and `npm ci --prefix tests/katex`, and `pdflatex`. Without them a test
//! prints a note and passes, unless the environment variable `CI` is set: then it fails.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/derivatives.tsv");
const KATEX_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/katex");

/// More expressions, as `command`, `expr`, `wrt` ("" for none), extra flags: together
/// with the examples they cover every function and operator of the language.
const EXTRA: &[(&str, &str, &str, &str)] = &[
    ("diff", "exp(x).*log(x)", "x", ""),
    ("diff", "sin(x) + cos(x) - tan(x)", "x", ""),
    ("diff", "tanh(A*x)", "x", ""),
    ("diff", "sqrt(x.*x + 1)", "x", ""),
    ("diff", "abs(x)", "x", ""),
    ("diff", "arcsin(x/2) + arccos(x/2) + arctan(x)", "x", ""),
    ("diff", "sign(x).*x + step(x)", "x", ""),
    ("diff", "softplus(W*x)", "W", ""),
    ("diff", "A*X*b", "X", ""),
    ("diff", "sum(softmax(x).*y)", "x", ""),
    ("diff", "logsumexp(A*x)", "x", ""),
    ("diff", "norm1(x) + norm2(x)", "x", ""),
    ("diff", "tr(inv(X))", "X", ""),
    ("diff", "det(X)", "X", ""),
    ("diff", "logdet(X)", "X", ""),
    ("diff", "diag(X)'*x", "X", ""),
    ("diff", "x'*diag(y)*x", "y", ""),
    ("diff", "vec(X)'*x", "x", ""),
    ("diff", "kron(A, B)*x", "x", ""),
    ("diff", "lambda*norm2(w)^2 + alpha*x'*w", "w", ""),
    ("diff", "x.^3 ./ (1 + x.^2)", "x", ""),
    ("diff", "(x'*A*x)^0.5", "x", ""),
    ("diff", "c*x", "c", "--scalar c"),
    ("diff", "exp(-t*x)", "t", "--scalar t"),
    ("diff", "sum(relu(W2*h)) where h = relu(W1*x)", "W2", ""),
    ("diff", "y_hat'*W_1*x", "x", ""),
    ("diff", "x'*x/(1e-3 + x'*x)", "x", ""),
    ("diff", "sigmoid(x)", "x", "--layout numerator"),
    ("diff", "A*x", "x", "--layout denominator"),
    ("diff", "ones'*x + 0*x'*x", "x", ""),
    ("diff", "I*x - x", "x", ""),
    ("diff", "theta'*x", "theta", "--vector theta"),
    ("diff", "x'*S*x", "S", "--symmetric S"),
    ("diff", "x'*inv(A)*x", "A", ""),
    ("diff", "-x'*x", "x", ""),
    ("diff", "sum(eye*x)", "x", ""),
    ("diff", "sum(x.^lambda)", "lambda", ""),
    ("diff", "sum(vector(2).*x) + matrix(3)*x", "x", ""),
    ("diff", "sigma*sigmoid(x)", "x", ""),
    ("diff", "norm2(W3*tanh(W2*relu(W1*x)) - y)^2", "W1", ""),
    ("diff", "x'*A*x", "x", "--equation"),
    ("diff", "softmax(W*x)", "W", "--equation"),
    ("hess", "log(1 + x'*x)", "x", "--equation"),
    ("hess", "s^3*x'*x", "s", "--equation --scalar s"),
    ("hess", "sum(exp(x))", "x", ""),
    ("hess", "log(1 + x'*x)", "x", ""),
    ("hess", "norm2(A*x - b)^2", "x", ""),
    ("hess", "sum(sigmoid(w).*y)", "w", ""),
    ("simplify", "inv(A')*x - Y*x/.5 + 2.5E+4*z", "", ""),
    ("simplify", "x'*A'*A*x", "", ""),
    ("simplify", "(A + A')/2 - kron(B, C)", "", ""),
    ("simplify", "diag(diag(X))*x", "", ""),
];

/// Expressions whose `diff --explain --format latex` steps must render too, as
/// `expr`, `wrt`, extra flags.
const EXPLAINED: &[(&str, &str, &str)] = &[
    ("A*x", "x", ""),
    ("a'*x", "x", ""),
    ("x'*A*x", "x", ""),
    ("sin(x)", "x", ""),
    ("tanh(W*x + b)", "x", ""),
    ("norm2(W2*relu(W1*x) - y)^2", "W1", ""),
    ("norm2(W2*relu(W1*x) - y)^2", "x", "--layout numerator"),
    ("softmax(W*x)", "x", "--layout denominator"),
    ("tr(inv(A + inv(B + X)))", "X", ""),
    ("x'*A*x + sin(x)'*x", "x", ""),
    ("exp(x)/sum(exp(x))", "x", ""),
    ("c*x", "c", "--scalar c"),
    ("x_hat'*A*x_hat + sin(x_hat)'*x_hat", "x_hat", ""),
    ("a'*X*b", "X", "--symmetric X"),
    ("tanh(A*x).*x", "x", ""),
];

/// Runs jacob with `args` and returns its LaTeX: one line, or with `--explain` the
/// steps and the answer; fails on an error.
fn jacob_latex(args: &[String]) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_jacob"))
        .args(args)
        .output()
        .expect("jacob runs");
    assert!(
        out.status.success(),
        "jacob {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("jacob prints UTF-8");
    let line = text.trim_end_matches('\n');
    assert!(!line.is_empty(), "jacob {args:?} printed no LaTeX");
    assert!(
        !line.contains('\n') || args.iter().any(|a| a == "--explain"),
        "jacob {args:?} printed more than one line: {line}"
    );
    assert!(!line.contains("NaN"), "jacob {args:?} printed NaN: {line}");
    line.lines().map(String::from).collect()
}

/// The arguments of one run: options first, then `--` so that an expression that
/// starts with `-` is not read as an option.
fn args(command: &str, expr: &str, wrt: &str, flags: &[&str], layout: Option<&str>) -> Vec<String> {
    let mut a = vec![command.to_string()];
    if !wrt.is_empty() {
        a.extend(["--wrt".to_string(), wrt.to_string()]);
    }
    a.extend(flags.iter().map(|f| f.to_string()));
    if let Some(l) = layout {
        a.extend(["--layout".to_string(), l.to_string()]);
    }
    a.extend(["--format", "latex", "--", expr].map(String::from));
    a
}

/// Every run: each example row (its own command, and `simplify` of its expression),
/// then the extra list.
fn runs() -> Vec<Vec<String>> {
    let table = std::fs::read_to_string(EXAMPLES).expect("the examples table is readable");
    let mut runs = Vec::new();
    for line in table.lines() {
        if line.starts_with('#') || line.trim().is_empty() || line.starts_with("command\t") {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        assert!(cols.len() >= 5, "short row in {EXAMPLES}: {line}");
        let (command, expr, wrt, flags, layout) = (cols[0], cols[1], cols[2], cols[3], cols[4]);
        let flags: Vec<&str> = if flags == "-" {
            Vec::new()
        } else {
            flags.split_whitespace().collect()
        };
        let layout = (layout != "-").then_some(layout);
        runs.push(args(command, expr, wrt, &flags, layout));
        runs.push(args("simplify", expr, "", &flags, None));
    }
    assert!(runs.len() >= 20, "too few examples in {EXAMPLES}");
    for &(command, expr, wrt, flags) in EXTRA {
        let flags: Vec<&str> = flags.split_whitespace().collect();
        runs.push(args(command, expr, wrt, &flags, None));
    }
    for &(expr, wrt, flags) in EXPLAINED {
        let mut flags: Vec<&str> = flags.split_whitespace().collect();
        flags.push("--explain");
        runs.push(args("diff", expr, wrt, &flags, None));
    }
    runs
}

/// Why KaTeX cannot run here, if it cannot.
fn katex_missing() -> Option<String> {
    if !Path::new(KATEX_DIR).join("node_modules/katex").is_dir() {
        return Some(format!(
            "{KATEX_DIR}/node_modules is missing (run `npm ci --prefix tests/katex`)"
        ));
    }
    match Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("`node` is not on the PATH".to_string()),
    }
}

/// Why a tool cannot run here, if it cannot; in CI a missing tool is a failure.
fn skip(missing: Option<String>, what: &str) -> bool {
    let Some(why) = missing else {
        return false;
    };
    if std::env::var_os("CI").is_some() {
        panic!("CI is set but {what} cannot run: {why}");
    }
    // Written to the process's standard error, not through `eprintln!`, so that the
    // note shows under `cargo test` without `--nocapture`.
    let _ = writeln!(std::io::stderr(), "note: skipping the {what} check: {why}");
    true
}

/// A deep network: its backpropagation chain nests past LaTeX's 255 grouping levels
/// unless parts of it go on `where` lines. (Too long for KaTeX's default expansion
/// limit, so only pdflatex gets it.)
fn deep_runs() -> Vec<Vec<String>> {
    let mut deep = String::from("x");
    for i in 1..=300 {
        deep = format!("relu(W{i}*{deep})");
    }
    let deep = format!("sum({deep})");
    vec![
        args("diff", &deep, "W1", &[], None),
        args("diff", &deep, "W1", &["--equation"], None),
    ]
}

#[test]
fn latex_output_compiles_with_pdflatex() {
    let mut all = runs();
    all.extend(deep_runs());
    let lines: Vec<String> = all.iter().flat_map(|a| jacob_latex(a)).collect();
    let missing = match Command::new("pdflatex").arg("--version").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("`pdflatex` is not on the PATH (Debian: texlive-latex-base)".to_string()),
    };
    if skip(missing, "pdflatex") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("jacob-pdflatex-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let mut doc =
        String::from("\\documentclass{article}\n\\usepackage{amsmath}\n\\begin{document}\n");
    for line in &lines {
        doc.push_str(&format!("${line}$\\par\n"));
    }
    doc.push_str("\\end{document}\n");
    std::fs::write(dir.join("jacob.tex"), doc).expect("the document is written");
    let out = Command::new("pdflatex")
        .args(["-interaction=nonstopmode", "-halt-on-error", "jacob.tex"])
        .current_dir(&dir)
        .output()
        .expect("pdflatex runs");
    let log = std::fs::read_to_string(dir.join("jacob.log")).unwrap_or_default();
    let errors: Vec<&str> = log.lines().filter(|l| l.starts_with('!')).collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success() && errors.is_empty(),
        "pdflatex failed on jacob's LaTeX: {errors:?}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn latex_output_renders_in_katex() {
    // Collect first, so that a failing jacob run shows even without node.
    let lines: Vec<String> = runs().iter().flat_map(|a| jacob_latex(a)).collect();
    if skip(katex_missing(), "KaTeX rendering") {
        return;
    }
    let mut child = Command::new("node")
        .arg(Path::new(KATEX_DIR).join("render.js"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    let input = lines.join("\n") + "\n";
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())
        .expect("node reads the LaTeX");
    let out = child.wait_with_output().expect("node finishes");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "KaTeX failed to render:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), format!("ok {}", lines.len()));
}

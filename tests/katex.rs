//! Renders jacob's `--format latex` output with KaTeX and compiles it with pdflatex:
//! every derivative of the public examples, a list covering each function and operator
//! of the language, `--equation` statements and `--explain` steps (one `align*` block)
//! must render without a KaTeX error (strict mode) and compile with amsmath, inline
//! math inside `$…$`; `--standalone` documents of long inputs compile as they are with
//! no line wider than the page.
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
    ("diff", "X'*X", "X", ""),
    ("diff", "inv(X)", "X", ""),
    ("diff", "kron(A, X)", "X", ""),
    ("diff", "inv(X)", "X", "--form differential"),
    ("hess", "tr(X'*A*X)", "X", ""),
    ("hess", "logdet(X)", "X", ""),
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

/// One piece of jacob's LaTeX: inline math for `$…$`, or a displayed `align*` block.
struct Tex {
    tex: String,
    display: bool,
}

/// Runs jacob with `args` and returns its LaTeX: one line of inline math, or with
/// `--explain` one `align*` block of the steps and the answer; fails on an error.
fn jacob_latex(args: &[String]) -> Tex {
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
    let tex = text.trim_end_matches('\n').to_string();
    assert!(!tex.is_empty(), "jacob {args:?} printed no LaTeX");
    assert!(!tex.contains("NaN"), "jacob {args:?} printed NaN: {tex}");
    let display = args.iter().any(|a| a == "--explain");
    if display {
        assert!(
            tex.starts_with("\\begin{align*}\n")
                && tex.ends_with("\n\\end{align*}")
                && tex.matches("\\begin{align*}").count() == 1,
            "jacob {args:?} printed more than one align* block: {tex}"
        );
    } else {
        assert!(
            !tex.contains('\n'),
            "jacob {args:?} printed more than one line: {tex}"
        );
    }
    Tex { tex, display }
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
    let pieces: Vec<Tex> = all.iter().map(|a| jacob_latex(a)).collect();
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
    for piece in &pieces {
        if piece.display {
            doc.push_str(&format!("{}\n", piece.tex));
        } else {
            doc.push_str(&format!("${}$\\par\n", piece.tex));
        }
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
    let mut pieces: Vec<Tex> = runs().iter().map(|a| jacob_latex(a)).collect();
    // The `align*` block of each standalone document renders too, except the explained
    // 30-layer network: one block that large passes KaTeX's default expansion limit
    // (maxExpand 1000), so only pdflatex gets it.
    for a in standalone_runs() {
        let out = Command::new(env!("CARGO_BIN_EXE_jacob"))
            .args(&a)
            .output()
            .expect("jacob runs");
        let doc = String::from_utf8_lossy(&out.stdout);
        let from = doc.find("\\begin{align*}").expect("a block");
        let to = doc.find("\\end{align*}").expect("a block") + "\\end{align*}".len();
        if to - from <= 20_000 {
            pieces.push(Tex {
                tex: doc[from..to].to_string(),
                display: true,
            });
        }
    }
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
    let input: Vec<serde_json::Value> = pieces
        .iter()
        .map(|p| serde_json::json!({"tex": p.tex, "display": p.display}))
        .collect();
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(serde_json::Value::from(input).to_string().as_bytes())
        .expect("node reads the LaTeX");
    let out = child.wait_with_output().expect("node finishes");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "KaTeX failed to render:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), format!("ok {}", pieces.len()));
}

/// Inputs whose `--standalone` documents must compile as they are, with no line wider
/// than the page: deep networks, long sums and products, nested inverses, explained
/// steps, wide values.
fn standalone_runs() -> Vec<Vec<String>> {
    let mut relu = String::from("x");
    let mut tanh = String::from("x");
    for i in 1..=30 {
        relu = format!("relu(W{i}*{relu})");
        tanh = format!("tanh(A{i}*{tanh})");
    }
    let relu = format!("norm2({relu} - y)^2");
    let tanh = format!("c'*{tanh}");
    let sum: Vec<String> = (0..100).map(|i| format!("x{i}")).collect();
    let product: Vec<String> = (1..=40).map(|i| format!("A{i}")).collect();
    let product = format!("{}*x", product.join("*"));
    let doc = |command: &str, expr: &str, wrt: &str, flags: &[&str]| {
        let mut flags = flags.to_vec();
        flags.push("--standalone");
        args(command, expr, wrt, &flags, None)
    };
    vec![
        doc("diff", &relu, "W1", &[]),
        doc("diff", &relu, "W1", &["--equation"]),
        doc("diff", &relu, "x", &["--equation"]),
        doc("diff", &relu, "W1", &["--explain"]),
        doc("diff", &tanh, "x", &[]),
        doc("hess", &tanh, "x", &["--equation"]),
        doc("diff", "x'*A*x", "x", &["--equation"]),
        doc("diff", "norm2(W2*relu(W1*x) - y)^2", "W1", &["--explain"]),
        doc("simplify", &sum.join(" + "), "", &[]),
        doc("simplify", &product, "", &[]),
        doc("diff", &format!("sum({product})"), "x", &["--equation"]),
        doc(
            "diff",
            "tr(inv(A1 + inv(A2 + inv(A3 + inv(A4 + inv(A5 + inv(A6 + X)))))))",
            "X",
            &["--equation"],
        ),
        doc("hess", "sum(log(1 + exp(-y.*(X*w))))", "w", &["--equation"]),
        doc("eval", "X", "", &["--dim", "X=50x14", "--random"]),
    ]
}

#[test]
fn standalone_documents_compile_and_fit_the_page() {
    let docs: Vec<(Vec<String>, String)> = standalone_runs()
        .into_iter()
        .map(|a| {
            let out = Command::new(env!("CARGO_BIN_EXE_jacob"))
                .args(&a)
                .output()
                .expect("jacob runs");
            assert!(
                out.status.success(),
                "jacob {a:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let doc = String::from_utf8(out.stdout).expect("UTF-8");
            assert!(
                doc.starts_with("\\documentclass{article}\n\\usepackage{amsmath}\n")
                    && doc.ends_with("\\end{document}\n"),
                "jacob {a:?} printed no whole document:\n{doc}"
            );
            (a, doc)
        })
        .collect();
    let missing = match Command::new("pdflatex").arg("--version").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("`pdflatex` is not on the PATH (Debian: texlive-latex-base)".to_string()),
    };
    if skip(missing, "pdflatex (standalone documents)") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("jacob-standalone-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    for (k, (a, doc)) in docs.iter().enumerate() {
        let name = format!("doc{k}");
        std::fs::write(dir.join(format!("{name}.tex")), doc).expect("the document is written");
        let out = Command::new("pdflatex")
            .args([
                "-interaction=nonstopmode",
                "-halt-on-error",
                &format!("{name}.tex"),
            ])
            .current_dir(&dir)
            .output()
            .expect("pdflatex runs");
        let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
        let problems: Vec<&str> = log
            .lines()
            .filter(|l| l.starts_with('!') || l.starts_with("Overfull \\hbox"))
            .collect();
        assert!(
            out.status.success() && problems.is_empty(),
            "jacob {a:?}: pdflatex reports {problems:?} on\n{doc}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

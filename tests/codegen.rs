//! `--format numpy|jax` and `--wrt` lists: the generated modules run, at random values,
//! and agree with `jacob eval` and with JAX's own autodiff (tests/codegen/check.py),
//! for every derivative of the snapshot corpus and the cases below; bad input is an
//! error, not broken code.
//!
//! Python with numpy and jax is found as `$JACOB_PYTHON`, else `.venv/bin/python` (what
//! `.ci/run` installs), else `python3`; without them the Python check prints a note and
//! passes, unless the environment variable `CI` is set: then it fails.
//! `JACOB_CODEGEN_KEEP=1` keeps the generated modules in the temporary directory.

mod common;
use common::jacob;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Cases beyond the corpus: several variables, name clashes, every function, solves,
/// kron and commutation. (command, expression, flags)
const EXTRA: [(&str, &str, &str); 22] = [
    ("diff", "norm2(W2*tanh(W1*x + b1) - y)^2", "--wrt W1,b1,W2"),
    ("diff", "norm2(W2*relu(W1*x) - y)^2", "--wrt W2,W1,x"),
    ("hess", "x'*A*x + exp(alpha)*sum(x.^3)", "--wrt x,alpha"),
    (
        "diff",
        "lambda*sum(np.*value) + t1'*t1",
        "--wrt lambda,np,t1 --scalar lambda",
    ),
    (
        "diff",
        "x'*inv(A)*x + logdet(A) + sum(softmax(A*x))",
        "--wrt A,x",
    ),
    ("diff", "logsumexp(W*x) - y'*W*x", "--wrt W"),
    (
        "diff",
        "sum(sigmoid(W*x)) + sum(softplus(x)) + norm1(W*x)",
        "--wrt W,x",
    ),
    (
        "diff",
        "sum(log(1 + exp(x))) + sqrt(x'*x) + sum(arctan(x))",
        "--wrt x",
    ),
    (
        "diff",
        "sum(sin(x).*cos(x)) + sum(tan(0.1*x)) + sum(abs(x))",
        "--wrt x",
    ),
    ("diff", "tr(inv(X)*A) + det(X)", "--wrt X"),
    ("diff", "A*X*B", "--wrt X"),
    ("diff", "inv(X)", "--wrt X"),
    ("diff", "X'*X", "--wrt X"),
    ("diff", "kron(A, X)", "--wrt X"),
    ("diff", "vec(X)'*vec(X) + diag(X)'*diag(X)", "--wrt X"),
    ("diff", "diag(x)*A*y", "--wrt x,y"),
    ("diff", "softmax(x)", "--wrt x --layout denominator"),
    ("diff", "x'*S*x + tr(S*A)", "--wrt S --symmetric S"),
    ("hess", "norm2(W*x - y)^2", "--wrt W"),
    ("diff", "alpha*X + beta^2*A", "--wrt alpha,beta"),
    ("diff", "exp(-alpha*x)./(1 + x.^2)", "--wrt alpha,x"),
    ("simplify", "A*inv(A)*x + (x - x) + rows(A)*ones", ""),
];

/// The words of a corpus case: command, expression, flags.
fn corpus() -> Vec<(String, String, Vec<String>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir("tests/inputs/ok")
        .expect("tests/inputs/ok")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("case file");
        let mut lines = text.lines();
        let command: Vec<String> = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect();
        let expr = lines.next().unwrap_or_default().to_string();
        let Some((name, flags)) = command.split_first() else {
            continue;
        };
        if !["diff", "hess", "simplify"].contains(&name.as_str())
            || flags.iter().any(|f| f == "differential")
        {
            continue;
        }
        // Only the flags that change the answer; output options are this test's own.
        let mut kept = Vec::new();
        let mut i = 0;
        while i < flags.len() {
            match flags[i].as_str() {
                "--explain" | "--equation" | "--standalone" => i += 1,
                "--format" => i += 2,
                _ => {
                    kept.push(flags[i].clone());
                    i += 1;
                }
            }
        }
        out.push((name.clone(), expr, kept));
    }
    out
}

/// The value of `--flag`.
fn flag<'a>(flags: &'a [String], name: &str) -> Option<&'a str> {
    flags
        .iter()
        .position(|f| f == name)
        .and_then(|i| flags.get(i + 1))
        .map(String::as_str)
}

/// The declaration flags (kinds and sizes), for `jacob shape` and `jacob eval`.
fn declarations(flags: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, f) in flags.iter().enumerate() {
        if ["--scalar", "--vector", "--matrix", "--symmetric", "--dim"].contains(&f.as_str()) {
            out.push(f.clone());
            out.push(flags.get(i + 1).cloned().unwrap_or_default());
        }
    }
    out
}

/// Runs jacob on a case with more flags; its standard output, or a panic naming it.
fn output(command: &str, expr: &str, flags: &[String], more: &[&str]) -> String {
    let mut args: Vec<&str> = vec![command, expr];
    args.extend(flags.iter().map(String::as_str));
    args.extend(more);
    let (code, out, err) = jacob(&args);
    assert_eq!(code, 0, "jacob {args:?} failed: {err}");
    out
}

/// Python with numpy and jax, or why there is none.
fn python() -> Result<String, String> {
    let candidates: Vec<String> = match std::env::var("JACOB_PYTHON") {
        Ok(p) => vec![p],
        Err(_) => vec![".venv/bin/python".into(), "python3".into()],
    };
    for p in &candidates {
        let ok = Command::new(p)
            .args(["-c", "import numpy, jax"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Ok(p.clone());
        }
    }
    Err(format!(
        "none of {candidates:?} imports numpy and jax (run .ci/run's install step: python3 -m venv .venv && .venv/bin/pip install -r tests/codegen/requirements.txt)"
    ))
}

#[test]
fn generated_modules_agree_with_jacob_eval_and_with_jax_autodiff() {
    let python = match python() {
        Ok(p) => p,
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but the generated Python cannot run: {why}")
        }
        Err(why) => {
            let _ = writeln!(
                std::io::stderr(),
                "note: skipping the generated-code check: {why}"
            );
            return;
        }
    };
    let dir = std::env::temp_dir().join(format!("jacob-codegen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut cases: Vec<(String, String, Vec<String>)> = corpus();
    cases.extend(EXTRA.iter().map(|(c, e, f)| {
        (
            c.to_string(),
            e.to_string(),
            f.split_whitespace().map(String::from).collect(),
        )
    }));
    let mut manifest = Vec::new();
    for (i, (command, expr, flags)) in cases.iter().enumerate() {
        let name = format!("case{i}");
        let numpy = dir.join(format!("{name}_np.py"));
        let jax = dir.join(format!("{name}_jax.py"));
        std::fs::write(&numpy, output(command, expr, flags, &["--format", "numpy"]))
            .expect("write module");
        std::fs::write(&jax, output(command, expr, flags, &["--format", "jax"]))
            .expect("write module");
        let derivatives: Vec<String> = if command == "simplify" {
            Vec::new()
        } else {
            output(command, expr, flags, &[])
                .lines()
                .map(String::from)
                .collect()
        };
        let wrt: Vec<String> = flag(flags, "--wrt")
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let symmetric: Vec<String> = flag(flags, "--symmetric")
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        manifest.push(serde_json::json!({
            "name": name,
            "command": command,
            "expr": expr,
            "args": flags,
            "flags": declarations(flags),
            "wrt": wrt,
            "symmetric": symmetric,
            "layout": flag(flags, "--layout").unwrap_or("mixed"),
            "derivatives": derivatives,
            "numpy": numpy,
            "jax": jax,
        }));
    }
    let path = dir.join("manifest.json");
    let manifest = serde_json::json!({
        "jacob": env!("CARGO_BIN_EXE_jacob"),
        "cases": manifest,
    });
    std::fs::write(&path, manifest.to_string()).expect("write manifest");
    let run = Command::new(&python)
        .arg("tests/codegen/check.py")
        .arg(&path)
        .output()
        .expect("run python");
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    // `JACOB_CODEGEN_KEEP=1` keeps the modules and the manifest to run check.py by hand.
    if std::env::var_os("JACOB_CODEGEN_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(
        run.status.success(),
        "the generated code disagrees:\n{out}\n{err}"
    );
    // Every case was checked, the corpus's and this file's.
    assert!(
        out.contains(&format!("{} cases, 0 failures", cases.len())),
        "{out}"
    );
}

#[test]
fn several_variables_give_one_line_each_as_alone() {
    let expr = "norm2(W2*tanh(W1*x + b1) - y)^2";
    let (code, all, _) = jacob(&["diff", expr, "--wrt", "W1,b1,W2"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 3, "{all}");
    for (line, var) in lines.iter().zip(["W1", "b1", "W2"]) {
        let (_, alone, _) = jacob(&["diff", expr, "--wrt", var]);
        assert_eq!(*line, alone.trim_end(), "the line for {var}");
    }
    let (_, latex, _) = jacob(&["diff", expr, "--wrt", "W1, b1,W2", "--format", "latex"]);
    assert_eq!(latex.lines().count(), 3, "{latex}");
    let (_, hess, _) = jacob(&["hess", "x'*A*x + alpha^3", "--wrt", "x,alpha"]);
    assert_eq!(hess.lines().collect::<Vec<_>>(), ["A + A'", "6*alpha"]);
}

#[test]
fn several_variables_in_json_are_a_derivatives_array() {
    let (code, out, _) = jacob(&[
        "diff",
        "norm2(W*x - y)^2",
        "--wrt",
        "W,x",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0);
    let j: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(j["wrt"], serde_json::json!(["W", "x"]));
    let ds = j["derivatives"].as_array().expect("derivatives array");
    assert_eq!(ds.len(), 2);
    assert_eq!(ds[0]["wrt"], "W");
    assert_eq!(ds[0]["result"], "2*(W*x - y)*x'");
    assert_eq!(ds[1]["wrt"], "x");
    assert_eq!(ds[1]["result"], "2*W'*(W*x - y)");
    assert_eq!(ds[1]["shape"], serde_json::json!(["m", 1]));
    // One variable keeps its fields at the top, and has the array too.
    let (_, one, _) = jacob(&["diff", "x'*x", "--wrt", "x", "--format", "json"]);
    let j: serde_json::Value = serde_json::from_str(one.trim()).expect("JSON");
    assert_eq!(j["result"], "2*x");
    assert_eq!(j["derivatives"][0]["result"], "2*x");
}

#[test]
fn python_names_that_clash_are_renamed() {
    let out = output(
        "diff",
        "lambda*sum(np.*value) + t1'*t1",
        &[
            "--wrt".into(),
            "lambda,np".into(),
            "--scalar".into(),
            "lambda".into(),
        ],
        &["--format", "numpy"],
    );
    assert!(
        out.contains("def value_and_grad(lambda_, np_, value_, t1_):"),
        "{out}"
    );
    assert!(
        out.contains("lambda_: a float (the symbol lambda of f)"),
        "{out}"
    );
    assert!(
        out.contains("return value, (grad_lambda_, np.reshape(grad_np_, _np__shape))"),
        "{out}"
    );
}

#[test]
fn bad_input_is_an_error_not_broken_code() {
    let cases: [(&[&str], &str); 7] = [
        (
            &["diff", "x'*A*x", "--wrt", "z", "--format", "numpy"],
            "not a symbol of the expression",
        ),
        (&["diff", "x'*A*x", "--wrt", "x,A,x"], "names x twice"),
        (&["diff", "x'*A*x", "--wrt", "x,,A"], "empty name"),
        (
            &["eval", "x'*x", "--random", "--format", "jax"],
            "no Python form",
        ),
        (
            &["diff", "-", "--wrt", "x", "--format", "numpy"],
            "one Python module",
        ),
        (
            &[
                "diff",
                "x'*x",
                "--wrt",
                "x",
                "--explain",
                "--format",
                "numpy",
            ],
            "leave out",
        ),
        (
            &["diff", "x'*y", "--wrt", "x,y", "--explain"],
            "one variable at a time",
        ),
    ];
    for (args, message) in cases {
        let (code, out, err) = jacob(args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(out.is_empty(), "{args:?} printed {out}");
        assert!(err.contains(message), "{args:?}: {err}");
    }
}

#[test]
fn modules_compute_shared_work_once() {
    // The forward pass `tanh(W1*x + b1)` is one local, used by the value and by all
    // three gradients.
    let out = output(
        "diff",
        "norm2(W2*tanh(W1*x + b1) - y)^2",
        &["--wrt".into(), "W1,b1,W2".into()],
        &["--format", "jax"],
    );
    let body = &out[out.find("def value_and_grad").expect("function")..];
    assert_eq!(body.matches("jnp.tanh(").count(), 1, "{body}");
    assert!(out.contains("@jax.jit"), "{out}");
    assert!(Path::new("tests/codegen/check.py").is_file());
}

#[test]
fn a_gradient_by_a_1d_vector_comes_back_1d() {
    let python = match python() {
        Ok(p) => p,
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but the generated Python cannot run: {why}")
        }
        Err(why) => {
            let _ = writeln!(std::io::stderr(), "note: skipping: {why}");
            return;
        }
    };
    let dir = std::env::temp_dir().join(format!("jacob-codegen-1d-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let expr = "sum(log(1 + exp(-y.*(X*w))))";
    for target in ["numpy", "jax"] {
        let module = output(
            "diff",
            expr,
            &["--wrt".into(), "w,X".into()],
            &["--format", target],
        );
        let path = dir.join(format!("logistic_{target}.py"));
        std::fs::write(&path, module).expect("write module");
        let script = format!(
            "import importlib.util, numpy as np\n\
             spec = importlib.util.spec_from_file_location('m', {path:?})\n\
             m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n\
             rng = np.random.default_rng(0)\n\
             w, X, y = rng.normal(size=4), rng.normal(size=(5, 4)), rng.normal(size=5)\n\
             _, (gw, gX) = m.value_and_grad(w, X, y)\n\
             _, (gc, _) = m.value_and_grad(w.reshape(-1, 1), X, y)\n\
             print(np.shape(gw), np.shape(gX), np.shape(gc))\n",
            path = path.display().to_string()
        );
        let out = Command::new(&python)
            .args(["-c", &script])
            .output()
            .expect("python runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{target}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout.trim(), "(4,) (5, 4) (4, 1)", "{target}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

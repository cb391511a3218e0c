//! `--format json`: every command's output parses as JSON, carries the fields SPEC §3
//! names, and agrees with the text output; batch mode gives one object per input line,
//! an `{"input", "error", "line"}` object for a line that fails.

mod common;
use common::jacob;
use serde_json::Value;

/// Runs jacob with `--format json` and parses its one line of output.
fn json(args: &[&str]) -> (i32, Value) {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let (code, out, err) = jacob(&all);
    assert!(
        out.ends_with('\n') && out.trim().lines().count() == 1,
        "one line of JSON: {out:?} {err}"
    );
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
    (code, v)
}

/// The text answer of the same command.
fn text(args: &[&str]) -> String {
    let (code, out, err) = jacob(args);
    assert_eq!(code, 0, "{err}");
    out.trim().to_string()
}

#[test]
fn diff_carries_result_latex_shape_layout_input_and_variable() {
    let args = ["diff", "x'*A*x", "--wrt", "x", "--layout", "numerator"];
    let (code, v) = json(&args);
    assert_eq!(code, 0);
    assert_eq!(v["command"], "diff");
    assert_eq!(v["input"], "x'*A*x");
    assert_eq!(v["wrt"], "x");
    assert_eq!(v["layout"], "numerator");
    assert_eq!(v["result"], text(&args).as_str());
    assert_eq!(v["result"], "x'*(A + A')");
    assert_eq!(v["shape"], serde_json::json!([1, "n"]));
    let latex = v["latex"].as_str().unwrap();
    assert!(latex.contains(r"\mathbf{x}^\top"), "{latex}");
    let eq = v["equation"].as_str().unwrap();
    assert!(
        eq.starts_with(r"\frac{\partial}{\partial \mathbf{x}}") && eq.contains("numerator layout"),
        "{eq}"
    );
}

#[test]
fn the_json_result_reads_back_as_the_same_derivative() {
    let args = ["diff", "norm2(W2*tanh(W1*x) - y)^2", "--wrt", "W1"];
    let (_, v) = json(&args);
    let result = v["result"].as_str().unwrap();
    assert!(
        result.contains(" where "),
        "long results name shared parts: {result}"
    );
    let (code, out, err) = jacob(&[
        "check",
        "norm2(W2*tanh(W1*x) - y)^2",
        "--wrt",
        "W1",
        "--claim",
        result,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    // Shapes of a matrix variable's gradient: the variable's own sizes.
    let (_, shape) = json(&["shape", "W1"]);
    assert_eq!(v["shape"].as_array().unwrap().len(), 2);
    assert_eq!(shape["shape"], serde_json::json!(["n", "m"]));
}

#[test]
fn hess_and_simplify_carry_their_command_and_input() {
    let (code, v) = json(&["hess", "x'*A*x", "--wrt", "x"]);
    assert_eq!((code, v["command"].as_str()), (0, Some("hess")));
    assert_eq!(v["result"], "A + A'");
    assert_eq!(v["shape"], serde_json::json!(["n", "n"]));
    let (code, v) = json(&["simplify", "x + x"]);
    assert_eq!((code, v["command"].as_str()), (0, Some("simplify")));
    assert_eq!(v["input"], "x + x");
    assert_eq!(v["result"], "2*x");
    assert_eq!(v["latex"], r"2 \mathbf{x}");
}

#[test]
fn shape_gives_numbers_where_sizes_are_known_and_names_elsewhere() {
    let (_, v) = json(&["shape", "A*x"]);
    assert_eq!(v["shape"], serde_json::json!(["n", 1]));
    assert_eq!(v["symbols"]["A"], serde_json::json!(["n", "m"]));
    assert_eq!(v["symbols"]["x"], serde_json::json!(["m", 1]));
    let (_, v) = json(&["shape", "A*x", "--dim", "A=3x4"]);
    assert_eq!(v["shape"], serde_json::json!([3, 1]));
    assert_eq!(v["symbols"]["x"], serde_json::json!([4, 1]));
}

#[test]
fn eval_gives_the_value_as_rows() {
    let (code, v) = json(&[
        "eval",
        "A*x",
        "--set",
        "A=[[1,2],[3,4]]",
        "--set",
        "x=[1,1]",
    ]);
    assert_eq!(code, 0);
    assert_eq!(v["command"], "eval");
    assert_eq!(v["value"], serde_json::json!([[3.0], [7.0]]));
    assert_eq!(v["shape"], serde_json::json!([2, 1]));
}

#[test]
fn check_gives_the_verdict_and_the_error_at_every_point() {
    let (code, v) = json(&[
        "check", "x'*A*x", "--wrt", "x", "--claim", "2*A*x", "--points", "4",
    ]);
    assert_eq!(code, 1, "a disagreement exits 1 in JSON too");
    assert_eq!(v["agrees"], false);
    assert_eq!(v["result"], "disagrees");
    assert_eq!(v["claim"], "2*A*x");
    assert_eq!(v["jacob_derivative"], "(A + A')*x");
    let points = v["points"].as_array().unwrap();
    assert_eq!(points.len(), 4);
    for p in points {
        assert_eq!(p["agrees"], false);
        assert!(p["max_rel_error"].as_f64().unwrap() > 0.1, "{p}");
        assert!(p["sizes"]["n"].as_u64().unwrap() >= 2, "{p}");
    }
    let (code, v) = json(&["check", "x'*A*x", "--wrt", "x"]);
    assert_eq!((code, &v["agrees"]), (0, &Value::Bool(true)));
    for p in v["points"].as_array().unwrap() {
        assert!(p["max_rel_error"].as_f64().unwrap() < 1e-6, "{p}");
    }
}

#[test]
fn explain_adds_the_steps_in_text_and_latex() {
    let (code, v) = json(&["diff", "tanh(W*x + b)", "--wrt", "x", "--explain"]);
    assert_eq!(code, 0);
    let steps: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let latex = v["steps_latex"].as_array().unwrap();
    assert_eq!(steps.len(), latex.len());
    assert!(
        steps.iter().any(|s| s.contains("∂f/∂u2 = diag(1 - f.^2)")),
        "{steps:?}"
    );
    assert!(steps.last().unwrap().contains("mixed layout"), "{steps:?}");
    assert_eq!(v["result"], "diag(1 - tanh(W*x + b).^2)*W");
}

#[test]
fn batch_mode_gives_one_object_per_line_and_reports_bad_lines() {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let input = b"x'*x\n2x\nA*x\n";
    let code = jacob::run(
        ["jacob", "diff", "-", "--wrt", "x", "--format", "json"],
        &mut std::io::Cursor::new(&input[..]),
        &mut out,
        &mut err,
    );
    assert_eq!(code, 2, "a bad line makes the exit 2");
    let out = String::from_utf8(out).unwrap();
    let results: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        results.len(),
        3,
        "one object per input line, errors included"
    );
    assert_eq!(results[0]["result"], "2*x");
    assert_eq!(results[1]["line"], 2);
    assert_eq!(results[1]["input"], "2x");
    assert!(
        results[1]["error"].as_str().unwrap().contains("2*x"),
        "{}",
        results[1]
    );
    assert_eq!(results[2]["result"], "A");
    // Every object names its line and its command, errors included.
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["line"], i + 1, "{r}");
        assert_eq!(r["command"], "diff", "{r}");
    }
    let err = String::from_utf8(err).unwrap();
    assert!(err.starts_with("error: line 2: "), "{err}");
}

#[test]
fn error_objects_name_their_command() {
    for command in [
        &["diff", "x+", "--wrt", "x"][..],
        &["hess", "x+", "--wrt", "x"],
        &["simplify", "x+"],
        &["shape", "x+"],
        &["eval", "x+"],
        &["check", "x+", "--wrt", "x"],
    ] {
        let (code, v) = json(command);
        assert_eq!(code, 2);
        assert_eq!(v["command"], command[0], "{v}");
        assert!(v["error"].as_str().is_some_and(|e| e.contains('^')), "{v}");
        // Structured: the kind, the sentence alone and the byte range it points at.
        assert_eq!(v["kind"], "expression", "{v}");
        assert_eq!(
            v["message"], "the expression ends too early: an operand is missing",
            "{v}"
        );
        assert_eq!(v["span"], serde_json::json!([2, 3]), "{v}");
    }
    // An error in a claim points into the claim.
    let (code, v) = json(&["check", "x'*A*x", "--wrt", "x", "--claim", "A*x + ("]);
    assert_eq!(code, 2);
    assert_eq!(v["span_in"], "A*x + (", "{v}");
    assert_eq!(v["span"], serde_json::json!([6, 7]), "{v}");
    let (code, v) = json(&["diff", "x'*x", "--wrt", "z"]);
    assert_eq!(code, 2);
    assert_eq!(v["kind"], "usage", "{v}");
    assert!(v.get("span").is_none(), "{v}");
}

#[test]
fn batch_check_labels_each_result_with_its_line() {
    let run = |format: &str| {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = jacob::run(
            [
                "jacob", "check", "-", "--wrt", "x", "--points", "2", "--format", format,
            ],
            &mut std::io::Cursor::new(
                b"x'*A*x

norm2(A*x - y)^2
"
                .to_vec(),
            ),
            &mut out,
            &mut err,
        );
        assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
        String::from_utf8(out).unwrap()
    };
    let text = run("text");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert!(
        lines[..3].iter().all(|l| l.starts_with("line 1: ")),
        "{text}"
    );
    assert!(
        lines[3..].iter().all(|l| l.starts_with("line 3: ")),
        "{text}"
    );
    assert!(lines[5].starts_with("line 3: agrees: "), "{text}");
    let json: Vec<Value> = run("json")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(json.len(), 2);
    assert_eq!(
        (json[0]["line"].as_u64(), json[1]["line"].as_u64()),
        (Some(1), Some(3))
    );
}

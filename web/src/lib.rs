//! jacob in the browser: one JSON request in, one JSON answer out, over the library
//! (no command line in it), compiled to WebAssembly with wasm-bindgen for `web/app.js`.
//!
//! A request is `{"command": "diff"|"hess"|"simplify"|"check", "expr", "wrt",
//! "layout": "mixed"|"numerator"|"denominator", "form": "jacobian"|"differential",
//! "explain", "claim", "scalar", "vector", "matrix", "symmetric"}` (the names are
//! comma-separated lists). An answer is `{"ok": true, "text", "latex", "shape", "steps",
//! "steps_latex", "notes", "check"}` or `{"ok": false, "error", "kind", "message",
//! "span"}`: the command line's sentences and its caret.

use jacob::{
    CheckRequest, Declarations, Error, Graph, Layout, check, derivative_of, diff_error, explain,
    folded, kind_notes, latex, parse_text, shape_names, text, variable,
};
use serde_json::{Value, json};
use wasm_bindgen::prelude::wasm_bindgen;

/// Answers one request (a JSON object) with one JSON object.
#[wasm_bindgen]
pub fn answer(request: &str) -> String {
    let reply = match serde_json::from_str::<Value>(request) {
        Ok(req) => respond(&req).unwrap_or_else(|e| failure(&e)),
        Err(e) => {
            json!({"ok": false, "kind": "usage", "error": format!("the request is not JSON: {e}")})
        }
    };
    reply.to_string()
}

/// The error as the page shows it: the sentence and caret, and its parts.
fn failure(e: &Error) -> Value {
    let mut j = json!({"ok": false, "kind": e.kind(), "error": e.to_string()});
    if let Error::InExpr { error, .. } = e {
        j["message"] = json!(error.message);
        j["span"] = json!([error.span.start, error.span.end]);
    }
    j
}

/// A string field, "" when absent.
fn field<'a>(req: &'a Value, name: &str) -> &'a str {
    req.get(name).and_then(Value::as_str).unwrap_or("")
}

/// A comma-separated list field.
fn list(req: &Value, name: &str) -> Vec<String> {
    field(req, name)
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn respond(req: &Value) -> Result<Value, Error> {
    let decls = Declarations::new(
        &list(req, "scalar"),
        &list(req, "vector"),
        &list(req, "matrix"),
        &list(req, "symmetric"),
        &[],
    )?;
    let layout = match field(req, "layout") {
        "" | "mixed" => Layout::Mixed,
        "numerator" => Layout::Numerator,
        "denominator" => Layout::Denominator,
        other => return Err(Error::Usage(format!("unknown layout `{other}`"))),
    };
    let differential = field(req, "form") == "differential";
    let expr = field(req, "expr");
    let wrt = field(req, "wrt");
    let command = field(req, "command");
    if command == "check" {
        let claim = Some(field(req, "claim").trim()).filter(|c| !c.is_empty());
        let report = check(&CheckRequest {
            text: expr,
            decls: &decls,
            wrt,
            layout,
            differential,
            claim,
            points: 3,
            tol: 1e-5,
            seed: 1,
        })?;
        let points: Vec<Value> = report
            .points
            .iter()
            .map(|p| json!({"abs": p.abs, "rel": p.rel, "agrees": p.agrees, "sizes": p.sizes, "error": p.error}))
            .collect();
        return Ok(json!({
            "ok": true,
            "check": {
                "agrees": report.agrees,
                "checked": report.checked,
                "own": report.own,
                "wrong_shape": report.wrong_shape,
                "agrees_in_layouts": report.agrees_in_layouts,
                "points": points,
            },
            "text": report.derivative.as_ref().map(|d| d.text.clone()),
            "latex": report.derivative.as_ref().map(|d| d.latex.clone()),
            "notes": report.notes,
        }));
    }
    let mut g = Graph::new();
    let parsed = parse_text(&mut g, &decls, expr)?;
    let notes = kind_notes(&parsed);
    let f = g.simplify(parsed.root, false);
    let result = match command {
        "simplify" => g.simplify(parsed.root, true),
        "diff" | "hess" => {
            let var = variable(&g, &parsed, expr, wrt)?;
            let hess = command == "hess";
            let d = derivative_of(&mut g, f, var, layout, hess, differential)?;
            if field(req, "explain") == "true" || req.get("explain") == Some(&json!(true)) {
                if hess || differential {
                    return Err(Error::Usage(
                        "the steps are shown for first derivatives in a layout".into(),
                    ));
                }
                let steps = explain(&mut g, f, var, layout).map_err(diff_error)?;
                folded(&g, expr)?;
                return Ok(json!({
                    "ok": true,
                    "text": text(&g, d),
                    "latex": latex(&g, d),
                    "shape": shape_names(&g, g.shape(d)),
                    "steps": steps.render(&g, false),
                    "steps_latex": steps.render(&g, true),
                    "notes": notes,
                }));
            }
            d
        }
        other => return Err(Error::Usage(format!("unknown command `{other}`"))),
    };
    folded(&g, expr)?;
    Ok(json!({
        "ok": true,
        "text": text(&g, result),
        "latex": latex(&g, result),
        "shape": shape_names(&g, g.shape(result)),
        "notes": notes,
    }))
}

#[cfg(test)]
mod tests {
    use super::answer;
    use serde_json::Value;

    fn ask(request: &str) -> Value {
        serde_json::from_str(&answer(request)).expect("the answer is JSON")
    }

    #[test]
    fn a_gradient_with_a_symmetric_matrix() {
        let a = ask(r#"{"command": "diff", "expr": "x'*A*x", "wrt": "x", "symmetric": "A"}"#);
        assert_eq!(a["text"], "2*A*x", "{a}");
        assert_eq!(a["latex"], r"2 \mathbf{A} \mathbf{x}", "{a}");
    }

    #[test]
    fn check_gives_a_verdict() {
        let a = ask(r#"{"command": "check", "expr": "x'*A*x", "wrt": "x", "claim": "2*A*x"}"#);
        assert_eq!(a["check"]["agrees"], false, "{a}");
        let a = ask(r#"{"command": "check", "expr": "x'*A*x", "wrt": "x"}"#);
        assert_eq!(a["check"]["agrees"], true, "{a}");
    }

    #[test]
    fn errors_carry_the_caret_and_the_span() {
        let a = ask(r#"{"command": "diff", "expr": "x'*A*x +", "wrt": "x"}"#);
        assert_eq!(a["ok"], false);
        assert_eq!(a["kind"], "expression");
        assert!(a["error"].as_str().unwrap().ends_with('^'), "{a}");
        assert_eq!(a["span"], serde_json::json!([8, 9]));
    }

    #[test]
    fn explain_gives_steps() {
        let a = ask(
            r#"{"command": "diff", "expr": "norm2(W2*relu(W1*x) - y)^2", "wrt": "W1", "explain": true}"#,
        );
        assert!(a["steps"].as_array().is_some_and(|s| s.len() > 3), "{a}");
    }
}

//! jacob as a library, without the command line: declarations, parsing, a derivative
//! and `check` with its report, as a front end such as a web page uses them.

use jacob::{
    CheckRequest, Declarations, Graph, Layout, check, derivative, parse_text, text, variable,
};

fn decls(symmetric: &[&str]) -> Declarations {
    let sym: Vec<String> = symmetric.iter().map(|s| s.to_string()).collect();
    Declarations::new(&[], &[], &[], &sym, &[]).expect("valid declarations")
}

fn request<'a>(text: &'a str, d: &'a Declarations, claim: Option<&'a str>) -> CheckRequest<'a> {
    CheckRequest {
        text,
        decls: d,
        wrt: "x",
        layout: Layout::Mixed,
        differential: false,
        claim,
        points: 3,
        tol: 1e-5,
        seed: 1,
    }
}

#[test]
fn a_derivative_through_the_library() {
    let d = decls(&["A"]);
    let mut g = Graph::new();
    let parsed = parse_text(&mut g, &d, "x'*A*x").expect("parses");
    let x = variable(&g, &parsed, "x'*A*x", "x").expect("x occurs");
    let f = g.simplify(parsed.root, true);
    let grad = derivative(&mut g, f, x, Layout::Mixed).expect("a gradient");
    let grad = g.simplify(grad, true);
    assert_eq!(text(&g, grad), "2*A*x");
}

#[test]
fn check_reports_agreement_point_by_point() {
    let d = decls(&[]);
    let r = check(&request("x'*A*x", &d, None)).expect("checks");
    assert!(r.agrees);
    assert_eq!(r.points.len(), 3);
    assert!(r.points.iter().all(|p| p.agrees && p.abs < 1e-6));
    let shown = r.derivative.expect("jacob's derivative");
    assert_eq!(shown.text, "(A + A')*x");
    assert_eq!(shown.shape, ["n".to_string(), "1".to_string()]);
}

#[test]
fn check_reports_a_wrong_claim_with_jacobs_own() {
    let d = decls(&[]);
    let r = check(&request("x'*A*x", &d, Some("2*A*x"))).expect("checks");
    assert!(!r.agrees);
    assert_eq!(r.own.as_deref(), Some("(A + A')*x"));
    assert!(r.points.iter().any(|p| !p.agrees));
    let r = check(&request("x'*A*x", &d, Some("x'*(A + A')"))).expect("checks");
    assert!(!r.agrees);
    assert!(r.wrong_shape.is_some());
    assert_eq!(r.agrees_in_layouts, ["numerator"]);
}

#[test]
fn declarations_are_checked() {
    let e = Declarations::new(&["x".into()], &["x".into()], &[], &[], &[]).unwrap_err();
    assert!(e.to_string().contains("declared both"), "{e}");
    let e = Declarations::new(&[], &[], &[], &[], &["A=3y".into()]).unwrap_err();
    assert!(e.to_string().contains("--dim"), "{e}");
}

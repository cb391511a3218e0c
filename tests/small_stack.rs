//! The library on a 1 MiB stack, WebAssembly's usual size: the deepest input jacob reads
//! parses, and deep expressions differentiate, simplify and print, without the 64 MiB
//! thread the command line runs on.

use jacob::{
    Derivatives, Draw, Env, Graph, Layout, MAX_DEPTH, Module, Target, choose_sizes, derivative,
    eval, explain, hessian, latex, module, parse, random_value, text,
};
use std::collections::HashMap;

/// One mebibyte.
const STACK_BYTES: usize = 1 << 20;

/// Runs `f` on a thread with a 1 MiB stack; a stack overflow aborts the test binary.
fn on_a_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(STACK_BYTES)
        .spawn(f)
        .expect("a thread")
        .join()
        .expect("the thread finished")
}

fn nested(open: &str, inner: &str, close: &str, depth: usize) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

/// Parses, differentiates by `wrt`, simplifies and prints text and LaTeX.
fn pipeline(src: String, wrt: &'static str) -> (String, String) {
    let mut g = Graph::new();
    let parsed = parse(&src, &mut g, &HashMap::new()).expect("parses");
    let f = g.simplify(parsed.root, true);
    let var = g.lookup(wrt).expect("the variable occurs");
    let d = derivative(&mut g, f, var, Layout::Mixed).expect("differentiates");
    let d = g.simplify(d, true);
    (text(&g, d), latex(&g, d))
}

#[test]
fn parentheses_as_deep_as_jacob_reads_parse_on_a_1_mib_stack() {
    let (t, _) = on_a_small_stack(|| pipeline(nested("(", "x'*x", ")", MAX_DEPTH), "x"));
    assert_eq!(t, "2*x");
}

#[test]
fn deep_calls_differentiate_on_a_1_mib_stack() {
    let (t, _) = on_a_small_stack(|| pipeline(nested("exp(", "x", ")", MAX_DEPTH), "x"));
    assert!(t.contains("exp"), "{t}");
}

#[test]
fn a_1000_layer_network_differentiates_on_a_1_mib_stack() {
    let mut src = "x".to_string();
    for i in 1..=1000 {
        src = format!("relu(W{i}*{src})");
    }
    let src = format!("norm2({src} - y)^2");
    let (t, l) = on_a_small_stack(move || pipeline(src, "W1"));
    assert!(t.contains("where"), "{}", &t[..200.min(t.len())]);
    assert!(!l.is_empty());
}

#[test]
fn every_stage_runs_on_a_1000_layer_tanh_network_on_a_1_mib_stack() {
    let mut src = "x".to_string();
    for i in 1..=1000 {
        src = format!("tanh(W{i}*{src})");
    }
    let src = format!("c'*{src}");
    let lines = on_a_small_stack(move || {
        let mut g = Graph::new();
        let typed = parse(&src, &mut g, &HashMap::new()).expect("parses").root;
        let f = g.simplify(typed, true);
        let x = g.lookup("x").expect("x occurs");
        let grad = derivative(&mut g, f, x, Layout::Mixed).expect("a gradient");
        let grad = g.simplify(grad, true);
        let hess = hessian(&mut g, f, x).expect("a Hessian");
        let hess = g.simplify(hess, true);
        let steps = explain(&mut g, f, x, Layout::Mixed).expect("explains");
        let mut env = Env::default();
        let mut rng = fastrand::Rng::with_seed(1);
        choose_sizes(&g, &mut env, &mut rng);
        let symbols: Vec<_> = g.symbols().map(|(s, _)| s).collect();
        for s in symbols {
            let v = random_value(&g, &env, s, &mut rng, Draw::Signed).expect("a value");
            env.values.insert(s, v);
        }
        let values = eval(&g, &[typed, f, grad, hess], &env).expect("evaluates");
        assert!((values[0][(0, 0)] - values[1][(0, 0)]).abs() < 1e-9);
        let code = module(
            &g,
            &Module {
                target: Target::Numpy,
                text: "c'*tanh(W1000*...)",
                typed,
                value: f,
                kind: Derivatives::First,
                derivatives: vec![(x, grad)],
            },
        )
        .expect("a module");
        let mut lines = steps.render(&g, false);
        lines.extend(steps.render(&g, true));
        lines.extend([text(&g, hess), latex(&g, hess), code]);
        lines
    });
    assert!(lines.iter().all(|l| !l.is_empty()));
}

/// Each operator nested as deep as jacob reads, on a 1 MiB stack: parse, simplify,
/// differentiate by x, simplify, text and LaTeX.
#[test]
fn every_operator_nested_as_deep_as_jacob_reads_runs_on_a_1_mib_stack() {
    let mut cases: Vec<(&str, &str, &str)> = vec![
        ("(", "x", ")'"),
        ("-(", "x", ")"),
        ("(A*", "x", ")"),
        ("(x'*", "x", ")*x"),
        ("(1 + ", "x", ")"),
        ("(x - ", "x", ")"),
        ("(x.*", "x", ")"),
        ("(x./", "y", ")"),
        ("(2/", "x'*x", ")"),
        ("(", "x'*x", ")^2"),
        ("(", "x", ").^2"),
        ("(x + A*", "x", ")"),
        ("sum(x.*", "x", ")"),
        ("sigmoid(", "x", ")"),
        ("log(1 + ", "x.^2", ")"),
        ("inv(I + ", "A*x*x'", ")"),
        ("tr(A*", "x*x'", ")*A"),
        ("diag(", "x", ")*x"),
        ("norm2(", "x", ")*x"),
    ];
    // kron's sizes multiply up a level at a time, so its output grows with the square
    // of the depth: it goes 200 deep.
    cases.push(("kron(", "x", ", a)"));
    for (open, inner, close) in cases {
        let depth = if open == "kron(" { 200 } else { MAX_DEPTH };
        let src = nested(open, inner, close, depth);
        let shown = format!("{open}…{inner}…{close}");
        on_a_small_stack(move || {
            let mut g = Graph::new();
            let Ok(parsed) = parse(&src, &mut g, &HashMap::new()) else {
                return;
            };
            let f = g.simplify(parsed.root, true);
            let _ = (text(&g, f), latex(&g, f));
            let Some(x) = g.lookup("x") else { return };
            if let Ok(d) = derivative(&mut g, f, x, Layout::Mixed) {
                let d = g.simplify(d, true);
                let _ = (text(&g, d), latex(&g, d));
            }
        });
        eprintln!("ok: {shown}");
    }
}

/// Deep input is read a slice of levels at a time; an error deep inside, or outside,
/// is reported at its place as when the text is read whole.
#[test]
fn errors_in_deep_input_keep_their_place() {
    let cases: [(String, &str, usize); 4] = [
        // An operand missing deep inside: the caret is under the `)` after `+`.
        (
            nested("(", "x +", ")", 300),
            "expected an operand before `)`",
            300 + 3,
        ),
        // A syntax error before the deep part wins over a shape error inside it.
        (
            format!("x + * {}", nested("exp(", "A*x*x", ")", 300)),
            "`*` needs an operand on its left",
            4,
        ),
        // A group followed by a name is read whole (it would run into a placeholder).
        (
            format!("{}y", nested("(", "x", ")", 100)),
            "implicit multiplication",
            2 * 100 + 1,
        ),
        // Past the deepest jacob reads.
        (
            nested("(", "x", ")", MAX_DEPTH + 1),
            "nests deeper than",
            MAX_DEPTH,
        ),
    ];
    for (src, message, at) in cases {
        let e = on_a_small_stack(move || {
            parse(&src, &mut Graph::new(), &HashMap::new()).expect_err("an error")
        });
        assert!(e.message.contains(message), "{}", e.message);
        assert_eq!(e.span.start, at, "{}", e.message);
    }
    // `where` names reach into deep parentheses: such input is read whole.
    let src = format!("{} where h = A*x", nested("(", "h'*h", ")", 200));
    let t = on_a_small_stack(move || {
        let mut g = Graph::new();
        let p = parse(&src, &mut g, &HashMap::new()).expect("parses");
        let f = g.simplify(p.root, true);
        text(&g, f)
    });
    assert_eq!(t, "(A*x)'*A*x");
}

/// Reading deep parts first changes nothing a user sees of valid input: symbols keep
/// the order the text names them in (the order of `jacob shape` and of random values),
/// an unknown function is reported before anything inside it, and elementwise
/// operators after a deep group read as usual.
#[test]
fn deep_parts_read_first_keep_what_users_see() {
    let order = |src: String| {
        on_a_small_stack(move || {
            let mut g = Graph::new();
            parse(&src, &mut g, &HashMap::new()).expect("parses");
            g.symbols().map(|(_, i)| i.name.clone()).collect::<Vec<_>>()
        })
    };
    let shallow = order("alpha + 2*beta + gamma".into());
    let deep = order(format!(
        "alpha + 2*{} + gamma",
        nested("(", "beta", ")", 60)
    ));
    assert_eq!(shallow, deep);
    let e = parse(
        &format!("foo({})", nested("(", "x + A", ")", 61)),
        &mut Graph::new(),
        &HashMap::new(),
    )
    .expect_err("an unknown function");
    assert!(
        e.message.contains("`foo` is not a function"),
        "{}",
        e.message
    );
    let t = on_a_small_stack(|| {
        let mut g = Graph::new();
        let p = parse(&nested("(", "x", ").^2", 200), &mut g, &HashMap::new()).expect("parses");
        let f = g.simplify(p.root, true);
        text(&g, f)
    });
    assert!(t.starts_with("x.^"), "{t}");
    // Many groups side by side at the depth where slicing starts: each slice is
    // read once (this took 24 s when every slice was copied from the start).
    let src = format!(
        "{}{}{}",
        "(".repeat(47),
        vec!["(x)"; 20_000].join("+"),
        ")".repeat(47)
    );
    let t = on_a_small_stack(move || {
        let mut g = Graph::new();
        let p = parse(&src, &mut g, &HashMap::new()).expect("parses");
        let f = g.simplify(p.root, true);
        text(&g, f)
    });
    assert_eq!(t, "20000*x");
}

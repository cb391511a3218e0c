//! Scale benchmarks: `jacob diff` end to end (parse, differentiate, simplify, print)
//! on five families of deep expressions at N = 10, 100 and 1,000, and `jacob hess` on
//! the families with a vector variable.
//!
//! Run with `cargo bench --bench families`. The library recurses in a few places on
//! deep input, so the whole benchmark runs on a thread with a 1 GiB stack, as the
//! binary does.

use criterion::{BenchmarkId, Criterion};
use std::hint::black_box;
use std::io::Cursor;
use std::time::Duration;

/// Depths measured for every family.
const SIZES: [usize; 3] = [10, 100, 1000];

/// `h'*h` with `h = AN*(…(A2*(A1*x + b1) + b2)…) + bN`.
fn affine_chain(n: usize) -> String {
    let mut h = String::from("x");
    for i in 1..=n {
        h = if i == 1 {
            format!("A{i}*{h} + b{i}")
        } else {
            format!("A{i}*({h}) + b{i}")
        };
    }
    format!("({h})'*({h})")
}

/// `c'*tanh(AN*…tanh(A1*x))`.
fn tanh_network(n: usize) -> String {
    let mut h = String::from("x");
    for i in 1..=n {
        h = format!("tanh(A{i}*{h})");
    }
    format!("c'*{h}")
}

/// `norm2(relu(AN*…relu(A1*x)) - y)^2`.
fn relu_loss(n: usize) -> String {
    let mut h = String::from("x");
    for i in 1..=n {
        h = format!("relu(A{i}*{h})");
    }
    format!("norm2({h} - y)^2")
}

/// `tr(inv(A1 + inv(A2 + … inv(AN + X))))`.
fn nested_inverses(n: usize) -> String {
    let mut h = format!("A{n} + X");
    for i in (1..n).rev() {
        h = format!("A{i} + inv({h})");
    }
    format!("tr(inv({h}))")
}

/// `x'*A1*x + … + x'*AN*x`.
fn quadratic_forms(n: usize) -> String {
    (1..=n)
        .map(|i| format!("x'*A{i}*x"))
        .collect::<Vec<_>>()
        .join(" + ")
}

/// A family: benchmark name, variable, expression builder.
type Family = (&'static str, &'static str, fn(usize) -> String);

const FAMILIES: [Family; 6] = [
    ("affine_chain_by_x", "x", affine_chain),
    ("affine_chain_by_A1", "A1", affine_chain),
    ("tanh_network_by_x", "x", tanh_network),
    ("relu_loss_by_A1", "A1", relu_loss),
    ("nested_inverses_by_X", "X", nested_inverses),
    ("quadratic_forms_by_x", "x", quadratic_forms),
];

/// The families whose Hessian is benchmarked (by a vector).
const HESSIAN_FAMILIES: [Family; 4] = [
    ("hess_affine_chain_by_x", "x", affine_chain),
    ("hess_tanh_network_by_x", "x", tanh_network),
    ("hess_relu_loss_by_x", "x", relu_loss),
    ("hess_quadratic_forms_by_x", "x", quadratic_forms),
];

/// Runs `jacob COMMAND EXPR --wrt V` through the library; returns the exit code and the
/// length of standard output.
fn run(command: &str, expr: &str, var: &str) -> (i32, usize) {
    let mut stdin = Cursor::new(Vec::new());
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = jacob::run(
        ["jacob", command, expr, "--wrt", var],
        &mut stdin,
        &mut out,
        &mut err,
    );
    (code, out.len())
}

fn families(c: &mut Criterion) {
    let diffs = FAMILIES.iter().map(|f| ("diff", f));
    let hessians = HESSIAN_FAMILIES.iter().map(|f| ("hess", f));
    for (command, &(name, var, build)) in diffs.chain(hessians) {
        let mut group = c.benchmark_group(name);
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        for n in SIZES {
            let expr = build(n);
            // Once per case, outside the timed loop: the derivative must succeed.
            let (code, _) = run(command, &expr, var);
            assert_eq!(code, 0, "jacob {command} failed on {name} at N = {n}");
            group.bench_with_input(BenchmarkId::from_parameter(n), &expr, |b, e| {
                b.iter(|| run(command, black_box(e), var))
            });
        }
        group.finish();
    }
}

fn main() {
    let worker = std::thread::Builder::new()
        .name("bench".into())
        .stack_size(1 << 30)
        .spawn(|| {
            let mut c = Criterion::default().configure_from_args();
            families(&mut c);
            c.final_summary();
        })
        .expect("cannot spawn the benchmark thread");
    worker.join().expect("the benchmark thread panicked");
}

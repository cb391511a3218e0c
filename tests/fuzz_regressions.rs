//! Regressions found by fuzzing (`fuzz/`, target `pipeline`): each minimized input runs
//! through the fuzz target's own pipeline (`fuzz/pipeline.rs`) and must not panic.

#[path = "../fuzz/pipeline.rs"]
mod pipeline;

use pipeline::{replay, run};

/// The harness itself: every seed of `fuzz/seeds` goes through cleanly.
#[test]
fn seeds_replay_cleanly() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("fuzz/seeds exists")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    paths.sort();
    assert!(!paths.is_empty());
    for p in paths {
        replay(&std::fs::read(&p).expect("a seed reads"));
    }
}

/// Fuzz finding (minimized from `crash-18e449ac…`): with a vector `a`, the Jacobian of
/// `norm2(X*w)+a` by `w` in denominator layout is `X'*X*w*ones'/norm2(X*w)`, but jacob
/// prints `X'*X*w*ones/norm2(X*w)`, which it cannot read back (`(n×1)*ones` needs a
/// row). The printer drops the transpose of a 1×n `ones`; the LaTeX printer keeps it.
#[test]
fn jacobian_of_a_broadcast_sum_reads_back() {
    replay(b"\x06\x01norm2(X*w)+a");
}

/// The same bug in `simplify`: `ones'*x` is 1×1, but its text `ones*x` reads back as a
/// column.
#[test]
fn a_row_of_ones_prints_with_its_transpose() {
    let (code, out, err) = run(&["simplify", "--", "ones'*x"]);
    assert_eq!(code, 0, "{err}");
    let printed = out.trim_end();
    let (code, shape, err) = run(&["shape", "--", printed]);
    assert_eq!(code, 0, "{err}");
    assert!(
        shape.starts_with("1×1"),
        "simplify ones'*x printed {printed:?}, which reads back as {shape:?}"
    );
}

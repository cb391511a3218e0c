//! Helpers shared by the integration tests.

use std::io::Cursor;

/// Runs jacob in-process on `args`; returns (exit code, stdout, stderr).
pub fn jacob(args: &[&str]) -> (i32, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let argv = std::iter::once("jacob").chain(args.iter().copied());
    let code = jacob::run(argv, &mut Cursor::new(Vec::new()), &mut out, &mut err);
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

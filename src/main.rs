//! The `jacob` binary: runs the library's command line on a thread with a large stack.

/// Deep expressions are walked recursively in a few places (parentheses, printing);
/// a large stack keeps every input up to the documented depth limit safe.
const STACK_BYTES: usize = 1 << 30;

fn main() {
    let worker = std::thread::Builder::new()
        .stack_size(STACK_BYTES)
        .spawn(|| {
            let stdin = std::io::stdin();
            let mut input = stdin.lock();
            let mut out = std::io::stdout().lock();
            let mut err = std::io::stderr().lock();
            jacob::run(std::env::args_os(), &mut input, &mut out, &mut err)
        });
    let code = match worker.map(|w| w.join()) {
        Ok(Ok(code)) => code,
        _ => 2,
    };
    std::process::exit(code);
}

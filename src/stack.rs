//! Deep recursion on any stack: a recursive stage calls [`deeper`] once a level, which
//! moves to a heap-allocated stack segment when the one it runs on gets low (a 1 MiB
//! WebAssembly stack, a small thread), so depth is bounded by memory, not by the stack.

/// Stack a level may use before the next call to [`deeper`], with room to spare for
/// unoptimized builds.
const RED_ZONE: usize = 128 << 10;

/// The size of each new segment.
const SEGMENT: usize = 4 << 20;

/// Runs `f` where at least [`RED_ZONE`] bytes of stack are left.
pub(crate) fn deeper<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(RED_ZONE, SEGMENT, f)
}

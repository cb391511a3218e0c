//! Fuzz target `pipeline`: one input through every stage of jacob, in-process; the
//! pipeline and what counts as a finding are in `fuzz/pipeline.rs`, which
//! `tests/fuzz_regressions.rs` replays in the stable suite.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../pipeline.rs"]
mod pipeline;

fuzz_target!(|data: &[u8]| pipeline::replay(data));

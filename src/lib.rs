//! jacob: symbolic matrix calculus — parse, differentiate, simplify, print, evaluate.
//!
//! The stages, one module each: [`parse`](crate::parse()) text into the hash-consed
//! [`Graph`] (shapes unified on the way), differentiate ([`derivative`], [`hessian`]),
//! simplify ([`Graph::simplify`]), print ([`text`], [`latex`], Python with [`module`]), evaluate ([`eval`]) and
//! check against finite differences ([`check`]). [`Declarations`], [`parse_text`] and
//! [`variable`] are the steps every front end takes first. The command line (the `cli`
//! feature, on by default) is the `jacob` binary's, not part of this API.
#![warn(missing_docs)]
// Without the command line, some printing helpers only it uses (LaTeX documents, values
// as matrices) go unused; every build with it checks them.
#![cfg_attr(not(feature = "cli"), allow(dead_code))]

mod check;
#[cfg(feature = "cli")]
mod cli;
mod codegen;
mod diff;
mod error;
mod eval;
mod explain;
mod fixed;
mod graph;
mod latex;
mod numeric;
mod parse;
mod pipeline;
mod print;
mod rules;
#[cfg(feature = "cli")]
mod run;
mod shape;
mod simplify;
mod stack;
mod values;

pub use check::{CheckReport, CheckRequest, Checked, PointResult, check};
// The command line, for the binary and the tests that run it in-process; not part of
// the library's API (the `cli` feature, on by default).
#[cfg(feature = "cli")]
#[doc(hidden)]
pub use cli::{Cli, Command, Config, Format};
pub use codegen::{CodegenError, Derivatives, Module, Target, module};
pub use diff::{
    DiffError, Layout, derivative, differential_form, gradient, hessian, jacobian, tangent,
};
pub use error::{Error, ExprError, Span};
pub use eval::{Env, EvalError, eval, kink_distance};
pub use explain::{Explanation, explain};
pub use graph::{FUNCTION_NAMES, Func, Graph, Id, Kind, Node, Num, Symbol, SymbolInfo};
pub use latex::latex;
pub use numeric::{Draw, choose_sizes, random_value};
pub use parse::{MAX_DEPTH, Parsed, parse};
pub use pipeline::{
    Declarations, derivative_of, diff_error, folded, kind_notes, parse_text, shape_names, variable,
};
pub use print::text;
#[cfg(feature = "cli")]
#[doc(hidden)]
pub use run::{Answer, run};
pub use shape::{Dim, DimNames, Dims, Shape};
pub use values::{ValueError, parse_value};

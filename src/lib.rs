//! jacob: symbolic matrix calculus — parse, differentiate, simplify, print, evaluate.
//!
//! The stages, one module each: [`parse`](crate::parse()) text into the hash-consed
//! [`Graph`] (shapes unified on the way), differentiate ([`derivative`], [`hessian`]),
//! simplify ([`Graph::simplify`]), print ([`text`], [`latex`], Python with [`module`]), evaluate ([`eval`]) and
//! check against finite differences. [`run`] is the command line over all of them.
#![warn(missing_docs)]

mod check;
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
mod print;
mod rules;
mod run;
mod shape;
mod simplify;
mod stack;
mod values;

pub use cli::{Cli, Command, Config, Format};
pub use codegen::{CodegenError, Derivatives, Module, Target, module};
pub use diff::{DiffError, Layout, derivative, gradient, hessian, jacobian, tangent};
pub use error::{Error, ExprError, Span};
pub use eval::{Env, EvalError, eval, kink_distance};
pub use explain::{Explanation, explain};
pub use graph::{FUNCTION_NAMES, Func, Graph, Id, Kind, Node, Num, Symbol, SymbolInfo};
pub use latex::latex;
pub use numeric::{Draw, choose_sizes, random_value};
pub use parse::{MAX_DEPTH, Parsed, parse};
pub use print::text;
pub use run::{Answer, run};
pub use shape::{Dim, DimNames, Dims, Shape};
pub use values::{ValueError, parse_value};

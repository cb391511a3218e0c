//! LaTeX printer (being written).
use crate::graph::{Graph, Id};
/// LaTeX for an expression.
pub fn latex(g: &Graph, id: Id) -> String {
    crate::print::text(g, id)
}

//! What every command does before its own work, for the command line and any other
//! front end: validated declarations, the text parsed with them, the variable named by
//! `--wrt`, notes on default kinds, and the check that constants folded cleanly.

use crate::diff::{self, DiffError, Layout};
use crate::error::{Error, ExprError, Span};
use crate::eval::Env;
use crate::graph::{FUNCTION_NAMES, Graph, Id, Kind, Symbol};
use crate::numeric;
use crate::parse::{self, Parsed};
use crate::shape::{DimNames, Shape};
use std::collections::HashMap;

/// Declared kinds and fixed sizes, checked (`--scalar x`, `--dim A=3x4`).
#[derive(Clone, Debug, Default)]
pub struct Declarations {
    /// Declared kinds by name.
    pub kinds: HashMap<String, Kind>,
    /// Fixed sizes by name: one number for a vector, two for a matrix.
    pub dims: Vec<(String, Vec<usize>)>,
}

impl Declarations {
    /// Checks names declared scalar, vector, matrix and symmetric (a name may be
    /// declared once, or matrix and symmetric), and sizes written `x=5` or `A=5x3`.
    pub fn new(
        scalar: &[String],
        vector: &[String],
        matrix: &[String],
        symmetric: &[String],
        dims_given: &[String],
    ) -> Result<Declarations, Error> {
        let mut kinds: HashMap<String, Kind> = HashMap::new();
        let lists = [
            (scalar, Kind::Scalar, "--scalar"),
            (vector, Kind::Vector, "--vector"),
            (matrix, Kind::Matrix, "--matrix"),
            (symmetric, Kind::Symmetric, "--symmetric"),
        ];
        for (names, kind, flag) in lists {
            for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
                check_name(name, flag)?;
                let combined = match (kinds.get(name), kind) {
                    // `--matrix S --symmetric S` says the same thing twice.
                    (Some(Kind::Matrix), Kind::Symmetric)
                    | (Some(Kind::Symmetric), Kind::Matrix) => Some(Kind::Symmetric),
                    (Some(&old), _) if old != kind => None,
                    _ => Some(kind),
                };
                let Some(kind) = combined else {
                    let old = kinds[name];
                    return Err(Error::Usage(format!(
                        "`{name}` is declared both a {} and a {}",
                        old.word(),
                        kind.word()
                    )));
                };
                kinds.insert(name.to_string(), kind);
            }
        }
        for name in symmetric {
            let name = name.trim();
            if name.starts_with(|c: char| c.is_ascii_lowercase())
                && !matrix.iter().any(|m| m.trim() == name)
            {
                return Err(Error::Usage(format!(
                    "--symmetric `{name}`: a lowercase name is a vector, and only a square matrix can be symmetric (use an uppercase name, or add --matrix {name})"
                )));
            }
        }
        let mut dims = Vec::new();
        for d in dims_given {
            let (name, size) = d.split_once('=').ok_or_else(|| {
                Error::Usage(format!("--dim `{d}` should look like x=5 or A=5x3"))
            })?;
            let sizes: Result<Vec<usize>, _> = size
                .split(['x', 'X', '×'])
                .map(|s| s.trim().parse::<usize>())
                .collect();
            let sizes = sizes
                .ok()
                .filter(|s| (1..=2).contains(&s.len()) && s.iter().all(|&n| (1..=100_000).contains(&n)))
                .ok_or_else(|| Error::Usage(format!("--dim `{d}`: the size should be a whole number from 1 to 100000, or two as 5x3")))?;
            dims.push((name.trim().to_string(), sizes));
        }
        Ok(Declarations { kinds, dims })
    }
}

fn check_name(name: &str, flag: &str) -> Result<(), Error> {
    let ok = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!("{flag} `{name}` is not a name")))
    }
}

/// Parses `text` into a fresh graph; errors carry the text for the caret.
pub fn parse_text(g: &mut Graph, decls: &Declarations, text: &str) -> Result<Parsed, Error> {
    let parsed = parse::parse(text, g, &decls.kinds).map_err(|e| Error::in_expr(e, text))?;
    // Every command checks `--dim` against the expression, whether it computes or not.
    numeric::apply_dims(g, &mut Env::default(), &decls.dims)?;
    Ok(parsed)
}

/// Notes on the kinds that names have by default where they make the expression
/// broadcast a scalar (`x - mu`): the user may have meant a vector.
pub fn kind_notes(parsed: &Parsed) -> Vec<String> {
    parsed
        .broadcast_by_default
        .iter()
        .map(|(name, kind)| {
            format!(
                "{name} is a scalar because it is a Greek letter's name, and is broadcast to every entry here; --{} {name} makes it a {}",
                kind.word(),
                kind.word()
            )
        })
        .collect()
}

/// Resolves `--wrt` to a symbol of the expression.
pub fn variable(g: &Graph, parsed: &Parsed, text: &str, wrt: &str) -> Result<Symbol, Error> {
    let wrt = wrt.trim();
    if wrt.is_empty() {
        return Err(Error::Usage(
            "--wrt is empty: name the variable to differentiate by, as in --wrt x".to_string(),
        ));
    }
    if wrt.contains(',') {
        return Err(Error::Usage(format!(
            "--wrt `{wrt}` lists several variables: `diff` and `hess` take a list, `check` one variable at a time"
        )));
    }
    let is_name = wrt.starts_with(|c: char| c.is_ascii_alphabetic())
        && wrt.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !is_name {
        return Err(Error::Usage(format!(
            "--wrt `{wrt}` must name a symbol of the expression, not an expression"
        )));
    }
    if FUNCTION_NAMES.iter().any(|(n, _)| *n == wrt) || parse::RESERVED.contains(&wrt) {
        return Err(Error::Usage(format!(
            "--wrt `{wrt}` is a reserved name, not a symbol"
        )));
    }
    if let Some((_, span)) = parsed.bindings.iter().find(|(n, _)| n == wrt) {
        return Err(Error::in_expr(
            ExprError::new(
                format!("the where binding `{wrt}` shadows the variable {wrt}: rename the binding"),
                *span,
            ),
            text,
        ));
    }
    Ok(match g.lookup(wrt) {
        Some(s) => s,
        None => {
            return Err(Error::Usage(format!(
                "--wrt `{wrt}` is not a symbol of the expression{}",
                parse::symbol_hint(g, wrt)
            )));
        }
    })
}

/// An error, under the whole expression, when folding its constants went wrong (a
/// number overflowed or was divided by zero), so that no `inf` or NaN is printed.
pub fn folded(g: &Graph, text: &str) -> Result<(), Error> {
    match g.folding_problem() {
        Some(problem) => Err(Error::in_expr(
            ExprError::new(problem, Span::new(0, text.len())),
            text,
        )),
        None => Ok(()),
    }
}

/// A shape's two sizes, each a number or a name as `jacob shape` gives it (`["n", "1"]`).
pub fn shape_names(g: &Graph, s: Shape) -> [String; 2] {
    let mut names = DimNames::default();
    for (_, info) in g.symbols() {
        names.shape(&g.dims, info.shape);
    }
    [s.rows, s.cols].map(|d| names.name(&g.dims, d))
}

/// The derivative `jacob diff` (or, with `hessian`, `jacob hess`) prints of the
/// simplified expression `f` by `var`: the Jacobian in `layout`, or with `differential`
/// the differential form; a name the differential needs that the expression already
/// uses is a usage error, anything else jacob cannot form is unsupported.
pub fn derivative_of(
    g: &mut Graph,
    f: Id,
    var: Symbol,
    layout: Layout,
    hessian: bool,
    differential: bool,
) -> Result<Id, Error> {
    let d = if differential {
        diff::differential_form(g, f, var, hessian)
    } else if hessian {
        diff::hessian(g, f, var)
    } else {
        diff::derivative(g, f, var, layout)
    };
    d.map_err(diff_error)
}

/// A differentiation error as jacob reports it.
pub fn diff_error(e: DiffError) -> Error {
    match e {
        DiffError::NameTaken(m) => Error::Usage(m),
        e => Error::Unsupported(e.to_string()),
    }
}

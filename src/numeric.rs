//! Numeric set-up: sizes for symbolic dimensions and values for symbols, from the
//! user (`--dim`, `--set`) or drawn at random (seeded).

use crate::error::Error;
use crate::eval::{Env, EvalError, MAX_ENTRIES};
use crate::graph::{Graph, Id, Kind, Node, Symbol};
use crate::shape::{Dim, Shape};
use nalgebra::DMatrix;

/// Records `dim = n`, or says why it cannot be.
pub fn assign(g: &Graph, env: &mut Env, dim: Dim, n: usize, what: &str) -> Result<(), Error> {
    let d = g.dims.find(dim);
    let known = match d {
        Dim::One => Some(1),
        _ => size_of(g, env, d),
    };
    match known {
        Some(k) if k != n => Err(Error::Usage(format!(
            "{what} makes {} {n}, but the other values or --dim make it {k}",
            describe_dim(g, d)
        ))),
        Some(_) => Ok(()),
        None => {
            if let Some((a, b)) = g.dims.factors(d)
                && let (Some(x), None) | (None, Some(x)) = (size_of(g, env, a), size_of(g, env, b))
                && x > 0
                && n.is_multiple_of(x)
            {
                let other = if size_of(g, env, a).is_some() { b } else { a };
                env.sizes.insert(g.dims.find(other), n / x);
            }
            env.sizes.insert(d, n);
            Ok(())
        }
    }
}

/// The numeric size of a dimension, if known.
pub fn size_of(g: &Graph, env: &Env, dim: Dim) -> Option<usize> {
    crate::eval::size(g, env, dim).ok()
}

/// Applies `--dim NAME=SIZE` options.
pub fn apply_dims(g: &Graph, env: &mut Env, dims: &[(String, Vec<usize>)]) -> Result<(), Error> {
    for (name, sizes) in dims {
        let Some(sym) = g.lookup(name) else {
            return Err(Error::Usage(format!(
                "--dim names `{name}`, which does not appear in the expression{}",
                crate::parse::symbol_hint(g, name)
            )));
        };
        let shape = g.symbol(sym).shape;
        let (r, c) = match (g.symbol(sym).kind, sizes.as_slice()) {
            (Kind::Scalar, [1] | [1, 1]) => (1, 1),
            (Kind::Vector, [n]) | (Kind::Vector, [n, 1]) => (*n, 1),
            (Kind::Symmetric, [n]) => (*n, *n),
            (Kind::Matrix | Kind::Symmetric, [r, c]) => (*r, *c),
            (kind, _) => {
                return Err(Error::Usage(format!(
                    "--dim {name}={} does not fit a {}",
                    sizes
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join("x"),
                    kind.word()
                )));
            }
        };
        if r != c && g.dims.find(shape.rows) == g.dims.find(shape.cols) {
            return Err(Error::Usage(format!(
                "--dim {name}={r}x{c}: the expression needs `{name}` square"
            )));
        }
        let what = format!("--dim {name}");
        assign(g, env, shape.rows, r, &what)?;
        assign(g, env, shape.cols, c, &what)?;
    }
    Ok(())
}

/// Gives every dimension still without a size a distinct small size (2, 3, 4, …
/// shuffled by the seed), so that a transposition mistake cannot hide behind square
/// shapes.
pub fn choose_sizes(g: &Graph, env: &mut Env, rng: &mut fastrand::Rng) {
    let mut free: Vec<Dim> = Vec::new();
    for (_, info) in g.symbols() {
        for d in [info.shape.rows, info.shape.cols] {
            let d = g.dims.find(d);
            if d != Dim::One
                && size_of(g, env, d).is_none()
                && g.dims.factors(d).is_none()
                && !free.contains(&d)
            {
                free.push(d);
            }
        }
    }
    let used: Vec<usize> = env.sizes.values().copied().collect();
    let mut pool: Vec<usize> = (2..=9).filter(|n| !used.contains(n)).collect();
    rng.shuffle(&mut pool);
    for (i, d) in free.into_iter().enumerate() {
        let n = pool.get(i).copied().unwrap_or(2 + i % 5);
        env.sizes.insert(d, n);
    }
}

/// How random values are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Draw {
    /// Entries uniform in (-1, 1).
    Signed,
    /// Entries uniform in (0.5, 1.5); square matrices symmetric positive definite.
    Positive,
}

/// A random value for a symbol, with the sizes in `env`.
pub fn random_value(
    g: &Graph,
    env: &Env,
    sym: Symbol,
    rng: &mut fastrand::Rng,
    draw: Draw,
) -> Result<DMatrix<f64>, Error> {
    let info = g.symbol(sym);
    let (r, c) = numeric_shape(g, env, info.shape).ok_or_else(|| {
        Error::Usage(format!(
            "the size of `{}` is not known: give it with --dim",
            info.name
        ))
    })?;
    check_holdable(&info.name, r, c, 0)?;
    let mut entry = || match draw {
        Draw::Signed => rng.f64() * 2.0 - 1.0,
        Draw::Positive => 0.5 + rng.f64(),
    };
    let m = DMatrix::from_fn(r, c, |_, _| entry());
    Ok(match (info.kind, draw) {
        (Kind::Symmetric, Draw::Signed) => (&m + m.transpose()) * 0.5,
        (Kind::Symmetric | Kind::Matrix, Draw::Positive) if r == c => {
            // Symmetric positive definite: well inside the domain of log, det and inv.
            let centered = m.map(|v| v - 1.0);
            &centered * centered.transpose() + DMatrix::identity(r, r) * (r as f64)
        }
        _ => m,
    })
}

/// Numeric rows and columns of a shape, if known.
pub fn numeric_shape(g: &Graph, env: &Env, s: Shape) -> Option<(usize, usize)> {
    Some((size_of(g, env, s.rows)?, size_of(g, env, s.cols)?))
}

/// Records a user's value for a symbol, fixing the sizes it implies.
pub fn set_value(g: &Graph, env: &mut Env, name: &str, value: DMatrix<f64>) -> Result<(), Error> {
    let Some(sym) = g.lookup(name) else {
        return Err(Error::Usage(format!(
            "--set names `{name}`, which does not appear in the expression"
        )));
    };
    let info = g.symbol(sym);
    let (r, c) = value.shape();
    let fits = match info.kind {
        Kind::Scalar => r == 1 && c == 1,
        Kind::Vector => c == 1,
        Kind::Matrix => true,
        Kind::Symmetric => r == c,
    };
    if !fits {
        return Err(Error::Usage(format!(
            "--set {name}: a {r}×{c} value does not fit `{name}`, a {}",
            info.kind.word()
        )));
    }
    if r != c && g.dims.find(info.shape.rows) == g.dims.find(info.shape.cols) {
        return Err(Error::Usage(format!(
            "--set {name}: the value is {r}×{c}, but the expression needs `{name}` square"
        )));
    }
    if info.kind == Kind::Symmetric
        && (&value - value.transpose()).amax() > 1e-9 * value.amax().max(1.0)
    {
        return Err(Error::Usage(format!(
            "--set {name}: the value is not symmetric, but `{name}` is declared --symmetric"
        )));
    }
    if let (Some(er), Some(ec)) = (
        size_of(g, env, info.shape.rows),
        size_of(g, env, info.shape.cols),
    ) && (er, ec) != (r, c)
    {
        return Err(Error::Usage(format!(
            "--set {name}: the value is {r}×{c}, but the other values make `{name}` {er}×{ec}"
        )));
    }
    check_holdable(name, r, c, 0)?;
    let what = format!("--set {name}");
    assign(g, env, info.shape.rows, r, &what)?;
    assign(g, env, info.shape.cols, c, &what)?;
    env.values.insert(sym, value);
    Ok(())
}

/// Fails unless a value of `r×c` entries for the symbol `name` can be held along with
/// `held` entries already held by other values: at most [`MAX_ENTRIES`] in all.
pub fn check_holdable(name: &str, r: usize, c: usize, held: usize) -> Result<(), Error> {
    match r.checked_mul(c).and_then(|n| n.checked_add(held)) {
        Some(total) if total <= MAX_ENTRIES => Ok(()),
        _ if held == 0 => Err(Error::Usage(format!(
            "`{name}` would be {r}×{c}, too large to hold (jacob holds at most {MAX_ENTRIES} entries): give smaller sizes with --dim"
        ))),
        _ => Err(Error::Usage(format!(
            "the values would hold more than {MAX_ENTRIES} entries in all, too many for jacob (`{name}` is {r}×{c}): give smaller sizes with --dim"
        ))),
    }
}

/// A symbolic size in the user's words: "the length of `x`", "the number of columns
/// of `A`", "the number of rows of `ones`".
pub fn describe_dim(g: &Graph, dim: Dim) -> String {
    let d = g.dims.find(dim);
    for (_, info) in g.symbols() {
        let name = &info.name;
        if g.dims.find(info.shape.rows) == d {
            return match info.kind {
                Kind::Vector => format!("the length of `{name}`"),
                Kind::Symmetric => format!("the size of `{name}`"),
                _ => format!("the number of rows of `{name}`"),
            };
        }
        if g.dims.find(info.shape.cols) == d {
            return format!("the number of columns of `{name}`");
        }
    }
    for i in 0..g.len() {
        let node = g.node(Id(i as u32));
        let (what, rows, cols) = match node {
            Node::Ones(r, c) => ("`ones`", *r, *c),
            Node::Identity(n) => ("`I`", *n, *n),
            Node::Zero(r, c) => ("a `0`", *r, *c),
            _ => continue,
        };
        if matches!(node, Node::Identity(_)) && g.dims.find(rows) == d {
            return format!("the size of {what}");
        }
        if g.dims.find(rows) == d {
            return format!("the number of rows of {what}");
        }
        if g.dims.find(cols) == d {
            return format!("the number of columns of {what}");
        }
    }
    "a size in the expression".to_string()
}

/// An evaluation error in the user's words: a missing size is described by what it
/// is the size of, with what to do about it.
pub fn explain(g: &Graph, e: EvalError) -> Error {
    let EvalError::MissingSize(d) = e else {
        return Error::Eval(e);
    };
    let what = describe_dim(g, d);
    let d = g.dims.find(d);
    let symbol = g
        .symbols()
        .find(|(_, i)| g.dims.find(i.shape.rows) == d || g.dims.find(i.shape.cols) == d);
    Error::Usage(match symbol {
        Some((_, info)) => format!(
            "{what} is not known: give it with --dim {}=…, or a value with --set",
            info.name
        ),
        None => format!("{what} is not fixed by the expression, so it has no numeric value"),
    })
}

/// Formats a value as jacob reads it with `--set`: `2.5`, `[1, 2]`, `[[1, 2], [3, 4]]`.
pub fn format_value(m: &DMatrix<f64>) -> String {
    let num = |v: f64| crate::print::format_num(v);
    if m.nrows() == 1 && m.ncols() == 1 {
        return num(m[(0, 0)]);
    }
    if m.ncols() == 1 {
        let items: Vec<String> = m.iter().map(|&v| num(v)).collect();
        return format!("[{}]", items.join(", "));
    }
    let rows: Vec<String> = (0..m.nrows())
        .map(|i| {
            let items: Vec<String> = (0..m.ncols()).map(|j| num(m[(i, j)])).collect();
            format!("[{}]", items.join(", "))
        })
        .collect();
    format!("[{}]", rows.join(", "))
}

/// A value as a list of rows, for JSON.
pub fn rows(m: &DMatrix<f64>) -> Vec<Vec<f64>> {
    (0..m.nrows())
        .map(|i| (0..m.ncols()).map(|j| m[(i, j)]).collect())
        .collect()
}

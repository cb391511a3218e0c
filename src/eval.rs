//! Numeric evaluation of expression graphs on nalgebra matrices.
//!
//! Nodes are evaluated in increasing id order (children first), each shared
//! subexpression once, with no recursion; a value is dropped as soon as its last
//! parent has used it.

use crate::graph::{Func, Graph, Id, Kind, Node, Symbol};
use crate::shape::{Dim, Shape};
use nalgebra::{DMatrix, DVector};
use std::collections::HashMap;

/// The most entries a single value may have (10^8 numbers, 800 MB): symbols' values,
/// whether given or drawn, and every intermediate result. Larger requests are refused
/// with an error instead of failing to allocate.
pub const MAX_ENTRIES: usize = 100_000_000;

/// A matrix whose smallest singular value is below this fraction of its largest is
/// treated as singular by `inv`.
const SINGULAR_RCOND: f64 = 1e-12;

/// The numbers an expression is evaluated at.
#[derive(Clone, Debug, Default)]
pub struct Env {
    /// Values of symbols.
    pub values: HashMap<Symbol, DMatrix<f64>>,
    /// Numeric sizes of symbolic dimensions, keyed by the representative `Dim::Var`
    /// (`graph.dims.find(d)`).
    pub sizes: HashMap<Dim, usize>,
}

/// Why an expression has no numeric value.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum EvalError {
    /// A symbol used by the expression has no value in the [`Env`].
    #[error("the symbol {0} has no value")]
    MissingValue(String),
    /// A symbolic size needed by `I`, `ones` or `0` has no value; the dimension is
    /// the representative, printed as `d3` (callers may rename it).
    #[error("the size {0} has no value")]
    MissingSize(Dim),
    /// A function applied outside its domain; the message names the function and the
    /// entry, e.g. "log of a non-positive entry (-0.5)".
    #[error("{0}")]
    Domain(String),
    /// Zero raised to a negative power.
    #[error("division by zero")]
    DivisionByZero,
    /// `inv` of a singular (or numerically singular) matrix.
    #[error("inv of a singular matrix")]
    Singular,
    /// `logdet` of a matrix whose determinant is zero or negative.
    #[error("logdet of a matrix whose determinant is not positive")]
    LogdetNotPositive,
    /// Values whose shapes do not fit the operation; the message names the shapes.
    #[error("{0}")]
    Shape(String),
    /// A value with more entries than jacob is willing to allocate.
    #[error("{0}")]
    TooLarge(String),
    /// A result that overflowed or is not a number; the message names the operation,
    /// e.g. "exp overflowed to infinity".
    #[error("{0}")]
    NotFinite(String),
    /// A malformed request, such as a root id that is not in the graph.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Evaluates each root at the values and sizes in `env`.
pub fn eval(graph: &Graph, roots: &[Id], env: &Env) -> Result<Vec<DMatrix<f64>>, EvalError> {
    walk(graph, roots, env).map(|(values, _)| values)
}

/// Smallest |argument| seen by a non-differentiable function (relu, step, sign, abs,
/// norm1 entries) while evaluating; f64::INFINITY if none. Used to re-draw sample
/// points that sit on a kink.
pub fn kink_distance(graph: &Graph, roots: &[Id], env: &Env) -> Result<f64, EvalError> {
    walk(graph, roots, env).map(|(_, kink)| kink)
}

/// Evaluates the roots, returning their values and the kink distance.
fn walk(graph: &Graph, roots: &[Id], env: &Env) -> Result<(Vec<DMatrix<f64>>, f64), EvalError> {
    if let Some(bad) = roots.iter().find(|r| r.idx() >= graph.len()) {
        return Err(EvalError::Internal(format!(
            "node {} is not in the graph",
            bad.0
        )));
    }
    let order = graph.reachable(roots);
    // How many more times each value will be read; roots are kept to the end.
    let mut uses = vec![0usize; graph.len()];
    for &id in &order {
        for c in graph.children(id) {
            uses[c.idx()] += 1;
        }
    }
    for r in roots {
        uses[r.idx()] += 1;
    }
    let mut values: Vec<Option<DMatrix<f64>>> = vec![None; graph.len()];
    let mut kink = f64::INFINITY;
    for id in order {
        let value = node_value(graph, env, id, &values, &mut kink)?;
        let value = fit_shape(graph, env, id, value)?;
        check_finite(graph, id, &value)?;
        for c in graph.children(id) {
            let u = &mut uses[c.idx()];
            *u = u.saturating_sub(1);
            if *u == 0 {
                values[c.idx()] = None;
            }
        }
        values[id.idx()] = Some(value);
    }
    let out = roots
        .iter()
        .map(|r| {
            values[r.idx()]
                .clone()
                .ok_or_else(|| EvalError::Internal(format!("node {} was not evaluated", r.0)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((out, kink))
}

/// The value of a node, checked against the shape the graph gives it: a 1×1 value of
/// a sum or elementwise product whose terms were all 1×1 is broadcast to that shape
/// (`alpha + 0*x` is a vector), and any other mismatch is an error, never a value of
/// the wrong shape.
fn fit_shape(
    graph: &Graph,
    env: &Env,
    id: Id,
    value: DMatrix<f64>,
) -> Result<DMatrix<f64>, EvalError> {
    let shape = graph.shape(id);
    let want = (
        known_size(graph, env, shape.rows)?,
        known_size(graph, env, shape.cols)?,
    );
    let (r, c) = value.shape();
    if want.0.is_none_or(|n| n == r) && want.1.is_none_or(|n| n == c) {
        return Ok(value);
    }
    if let ((Some(wr), Some(wc)), Some(v)) = (want, as_scalar(&value))
        && matches!(graph.node(id), Node::Add(_) | Node::Had(_))
    {
        check_entries(wr, wc)?;
        return Ok(DMatrix::from_element(wr, wc, v));
    }
    let show = |n: Option<usize>| n.map_or("?".to_string(), |n| n.to_string());
    Err(EvalError::Internal(format!(
        "a value is {r}×{c} where the expression needs {}×{}",
        show(want.0),
        show(want.1)
    )))
}

/// The value of an already evaluated child.
fn child(values: &[Option<DMatrix<f64>>], c: Id) -> Result<&DMatrix<f64>, EvalError> {
    values
        .get(c.idx())
        .and_then(Option::as_ref)
        .ok_or_else(|| EvalError::Internal(format!("node {} has no value yet", c.0)))
}

/// The entry of a 1×1 matrix.
fn as_scalar(m: &DMatrix<f64>) -> Option<f64> {
    if m.shape() == (1, 1) {
        m.get(0).copied()
    } else {
        None
    }
}

/// `r×c`, for messages.
fn dims_text((r, c): (usize, usize)) -> String {
    format!("{r}×{c}")
}

/// A number for messages: plain when moderate, scientific otherwise.
fn num_text(x: f64) -> String {
    let a = x.abs();
    if a == 0.0 || (1e-4..1e15).contains(&a) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

/// Fails unless a matrix of `r×c` entries is small enough to allocate.
fn check_entries(r: usize, c: usize) -> Result<(), EvalError> {
    match r.checked_mul(c) {
        Some(n) if n <= MAX_ENTRIES => Ok(()),
        _ => Err(EvalError::TooLarge(format!(
            "a {r}×{c} matrix is too large to evaluate"
        ))),
    }
}

/// The numeric size of a dimension: 1, a size from the environment, or the product
/// of the sizes of a product dimension's factors.
pub(crate) fn size(graph: &Graph, env: &Env, d: Dim) -> Result<usize, EvalError> {
    let mut stack = vec![d];
    let mut total: usize = 1;
    let mut steps = 0usize;
    while let Some(d) = stack.pop() {
        let d = graph.dims.find(d);
        steps += 1;
        if steps > 10_000 {
            return Err(EvalError::MissingSize(d));
        }
        if d == Dim::One {
            continue;
        }
        let n = if let Some(&n) = env.sizes.get(&d) {
            n
        } else if let Some(n) = graph.dims.value(d) {
            usize::try_from(n)
                .map_err(|_| EvalError::TooLarge("a size is too large to evaluate".to_string()))?
        } else if let Some((a, b)) = graph.dims.factors(d) {
            stack.push(a);
            stack.push(b);
            continue;
        } else {
            return Err(EvalError::MissingSize(d));
        };
        total = total
            .checked_mul(n)
            .ok_or_else(|| EvalError::TooLarge("a size is too large to evaluate".to_string()))?;
    }
    Ok(total)
}

/// Both sizes of a shape.
fn shape_sizes(graph: &Graph, env: &Env, s: Shape) -> Result<(usize, usize), EvalError> {
    let r = size(graph, env, s.rows)?;
    let c = size(graph, env, s.cols)?;
    check_entries(r, c)?;
    Ok((r, c))
}

/// The size of a dimension if it is known; `None` when it has no value.
fn known_size(graph: &Graph, env: &Env, d: Dim) -> Result<Option<usize>, EvalError> {
    match size(graph, env, d) {
        Ok(n) => Ok(Some(n)),
        Err(EvalError::MissingSize(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The value of a symbol, checked against the shape the expression gives it.
fn symbol_value(graph: &Graph, env: &Env, id: Id, s: Symbol) -> Result<DMatrix<f64>, EvalError> {
    let info = graph.symbol(s);
    let value = env
        .values
        .get(&s)
        .ok_or_else(|| EvalError::MissingValue(info.name.clone()))?;
    let shape = graph.shape(id);
    let want = (
        known_size(graph, env, shape.rows)?,
        known_size(graph, env, shape.cols)?,
    );
    let (r, c) = value.shape();
    let fits = want.0.is_none_or(|n| n == r) && want.1.is_none_or(|n| n == c);
    if !fits {
        let show = |n: Option<usize>| n.map_or("?".to_string(), |n| n.to_string());
        let what = if info.kind == Kind::Scalar {
            "a scalar".to_string()
        } else {
            format!("{}×{}", show(want.0), show(want.1))
        };
        return Err(EvalError::Shape(format!(
            "the value of {} is {r}×{c} but the expression needs {what}",
            info.name
        )));
    }
    if info.kind == Kind::Symmetric && r == c && !is_symmetric(value) {
        return Err(EvalError::Shape(format!(
            "the value of {} is not symmetric",
            info.name
        )));
    }
    Ok(value.clone())
}

/// True when the matrix equals its transpose up to rounding.
fn is_symmetric(m: &DMatrix<f64>) -> bool {
    let t = m.transpose();
    m.iter()
        .zip(t.iter())
        .all(|(a, b)| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0))
}

/// Computes one node from its children's values.
fn node_value(
    graph: &Graph,
    env: &Env,
    id: Id,
    values: &[Option<DMatrix<f64>>],
    kink: &mut f64,
) -> Result<DMatrix<f64>, EvalError> {
    let get = |c: Id| child(values, c);
    Ok(match graph.node(id) {
        Node::Num(n) => DMatrix::from_element(1, 1, n.get()),
        Node::Size(d) => DMatrix::from_element(1, 1, size(graph, env, *d)? as f64),
        Node::Commutation(m, n) => {
            let (m, n) = (size(graph, env, *m)?, size(graph, env, *n)?);
            let mn = m.saturating_mul(n);
            check_entries(mn, mn)?;
            let mut k = DMatrix::zeros(mn, mn);
            for i in 0..m {
                for j in 0..n {
                    // vec(X)[i + j*m] = X[i, j] = vec(X')[j + i*n]
                    k[(j + i * n, i + j * m)] = 1.0;
                }
            }
            k
        }
        Node::Hole(..) => {
            return Err(EvalError::Internal(
                "a placeholder of the differentiator was evaluated".into(),
            ));
        }
        Node::Sym(s) => symbol_value(graph, env, id, *s)?,
        Node::Identity(d) => {
            let n = size(graph, env, *d)?;
            check_entries(n, n)?;
            DMatrix::identity(n, n)
        }
        Node::Ones(r, c) => {
            let (r, c) = shape_sizes(graph, env, Shape::new(*r, *c))?;
            DMatrix::from_element(r, c, 1.0)
        }
        Node::Zero(r, c) => {
            let (r, c) = shape_sizes(graph, env, Shape::new(*r, *c))?;
            DMatrix::zeros(r, c)
        }
        Node::Add(terms) => {
            let terms = terms
                .iter()
                .map(|&c| get(c))
                .collect::<Result<Vec<_>, _>>()?;
            broadcast(&terms, "add", 0.0, |acc, m| *acc += m, |a, b| a + b)?
        }
        Node::Had(factors) => {
            let factors = factors
                .iter()
                .map(|&c| get(c))
                .collect::<Result<Vec<_>, _>>()?;
            broadcast(
                &factors,
                "multiply elementwise",
                1.0,
                |acc, m| acc.component_mul_assign(m),
                |a, b| a * b,
            )?
        }
        Node::Mul(factors) => {
            let factors = factors
                .iter()
                .map(|&c| get(c))
                .collect::<Result<Vec<_>, _>>()?;
            product(&factors)?
        }
        Node::Pow([b, p]) => {
            let (b, p) = (get(*b)?, get(*p)?);
            match (as_scalar(b), as_scalar(p)) {
                (Some(b), Some(p)) => DMatrix::from_element(1, 1, power(b, p)?),
                _ => {
                    return Err(EvalError::Shape(format!(
                        "^ needs a scalar base and exponent, not {} and {}",
                        dims_text(b.shape()),
                        dims_text(p.shape())
                    )));
                }
            }
        }
        Node::EPow([u, p]) => {
            let (u, p) = (get(*u)?, get(*p)?);
            let Some(p) = as_scalar(p) else {
                return Err(EvalError::Shape(format!(
                    ".^ needs a scalar exponent, not {}",
                    dims_text(p.shape())
                )));
            };
            try_map(u, |x| power(x, p))?
        }
        Node::Transpose(a) => get(*a)?.transpose(),
        Node::Kron([a, b]) => {
            let (a, b) = (get(*a)?, get(*b)?);
            let rows = a.nrows().saturating_mul(b.nrows());
            let cols = a.ncols().saturating_mul(b.ncols());
            check_entries(rows, cols)?;
            a.kronecker(b)
        }
        Node::Call(f, u) => call(*f, get(*u)?, kink)?,
    })
}

/// Sums or elementwise products of terms of one shape, where a 1×1 term is
/// broadcast over the others.
fn broadcast(
    terms: &[&DMatrix<f64>],
    verb: &str,
    unit: f64,
    combine: impl Fn(&mut DMatrix<f64>, &DMatrix<f64>),
    scalar_op: impl Fn(f64, f64) -> f64,
) -> Result<DMatrix<f64>, EvalError> {
    let big = terms
        .iter()
        .find(|m| m.shape() != (1, 1))
        .map(|m| m.shape());
    let (r, c) = big.unwrap_or((1, 1));
    let mut acc = DMatrix::from_element(r, c, unit);
    let mut scalar = unit;
    for m in terms {
        if let Some(s) = as_scalar(m) {
            scalar = scalar_op(scalar, s);
        } else if m.shape() != (r, c) {
            return Err(EvalError::Shape(format!(
                "cannot {verb} a {} matrix and a {} matrix",
                dims_text((r, c)),
                dims_text(m.shape())
            )));
        } else {
            combine(&mut acc, m);
        }
    }
    if big.is_none() {
        return Ok(DMatrix::from_element(1, 1, scalar));
    }
    if scalar != unit {
        acc.apply(|x| *x = scalar_op(*x, scalar));
    }
    Ok(acc)
}

/// A product: 1×1 factors scale, the others are multiplied as matrices in order
/// (associated in whichever direction is cheaper).
fn product(factors: &[&DMatrix<f64>]) -> Result<DMatrix<f64>, EvalError> {
    let mut scale = 1.0;
    let mut mats: Vec<&DMatrix<f64>> = Vec::new();
    for m in factors {
        match as_scalar(m) {
            Some(s) => scale *= s,
            None => mats.push(m),
        }
    }
    for w in mats.windows(2) {
        if let [a, b] = w
            && a.ncols() != b.nrows()
        {
            return Err(EvalError::Shape(format!(
                "cannot multiply a {} matrix by a {} matrix",
                dims_text(a.shape()),
                dims_text(b.shape())
            )));
        }
    }
    let (Some(first), Some(last)) = (mats.first(), mats.last()) else {
        return Ok(DMatrix::from_element(1, 1, scale));
    };
    check_entries(first.nrows(), last.ncols())?;
    // Cost of ((A B) C) … against A (B (C …)), counted in multiplications.
    let rows0 = first.nrows() as f64;
    let cols_n = last.ncols() as f64;
    let left: f64 = mats
        .iter()
        .skip(1)
        .map(|m| rows0 * m.nrows() as f64 * m.ncols() as f64)
        .sum();
    let right: f64 = mats
        .iter()
        .take(mats.len() - 1)
        .map(|m| m.nrows() as f64 * m.ncols() as f64 * cols_n)
        .sum();
    let mut acc = if left <= right {
        let mut it = mats.iter();
        let mut acc = it.next().map(|m| (*m).clone()).unwrap_or_default();
        for m in it {
            acc = &acc * *m;
        }
        acc
    } else {
        let mut it = mats.iter().rev();
        let mut acc = it.next().map(|m| (*m).clone()).unwrap_or_default();
        for m in it {
            acc = *m * &acc;
        }
        acc
    };
    if scale != 1.0 {
        acc *= scale;
    }
    Ok(acc)
}

/// `b^p` for numbers, refusing 0 to a negative power and a negative number to a
/// non-integer power.
fn power(b: f64, p: f64) -> Result<f64, EvalError> {
    if b == 0.0 && p < 0.0 {
        return Err(EvalError::DivisionByZero);
    }
    if b < 0.0 && p.fract() != 0.0 {
        return Err(EvalError::Domain(format!(
            "a negative number ({}) to a non-integer power ({})",
            num_text(b),
            num_text(p)
        )));
    }
    Ok(b.powf(p))
}

/// Applies a fallible function to every entry.
fn try_map(
    m: &DMatrix<f64>,
    f: impl Fn(f64) -> Result<f64, EvalError>,
) -> Result<DMatrix<f64>, EvalError> {
    let mut out = m.clone();
    for x in out.iter_mut() {
        *x = f(*x)?;
    }
    Ok(out)
}

/// Fails unless the matrix is square, naming the function.
fn square(f: Func, m: &DMatrix<f64>) -> Result<usize, EvalError> {
    if m.is_square() {
        Ok(m.nrows())
    } else {
        Err(EvalError::Shape(format!(
            "{} needs a square matrix, not {}",
            f.name(),
            dims_text(m.shape())
        )))
    }
}

/// Smallest |entry|, or infinity for an empty matrix. An entry that is exactly 0 at a random point is taken to be 0 identically (`x - x`):
/// the function is constant there, not at a kink.
fn min_abs(m: &DMatrix<f64>) -> f64 {
    m.iter()
        .filter(|x| **x != 0.0)
        .fold(f64::INFINITY, |a, x| a.min(x.abs()))
}

/// A function applied to a value.
fn call(f: Func, u: &DMatrix<f64>, kink: &mut f64) -> Result<DMatrix<f64>, EvalError> {
    let scalar = |x: f64| DMatrix::from_element(1, 1, x);
    if matches!(
        f,
        Func::Relu | Func::Step | Func::Sign | Func::Abs | Func::Norm1
    ) {
        *kink = kink.min(min_abs(u));
    }
    if f.is_elementwise() {
        return try_map(u, |x| elementwise(f, x));
    }
    Ok(match f {
        Func::Sum => scalar(u.sum()),
        Func::Norm2 => scalar(u.norm()),
        Func::Norm1 => scalar(u.iter().map(|x| x.abs()).sum()),
        Func::Softmax => {
            let max = u.iter().fold(f64::NEG_INFINITY, |a, &x| a.max(x));
            let mut e = u.map(|x| (x - max).exp());
            let total = e.sum();
            e /= total;
            e
        }
        Func::Logsumexp => {
            let max = u.iter().fold(f64::NEG_INFINITY, |a, &x| a.max(x));
            scalar(max + u.iter().map(|x| (x - max).exp()).sum::<f64>().ln())
        }
        Func::Tr => {
            square(f, u)?;
            scalar(u.trace())
        }
        Func::Det => {
            square(f, u)?;
            scalar(u.determinant())
        }
        Func::Logdet => scalar(logdet(u)?),
        Func::Inv => inverse(u)?,
        Func::DiagMat => {
            if u.ncols() != 1 && u.nrows() != 1 {
                return Err(EvalError::Shape(format!(
                    "diag needs a vector or a square matrix, not {}",
                    dims_text(u.shape())
                )));
            }
            let n = u.len();
            check_entries(n, n)?;
            DMatrix::from_diagonal(&DVector::from_column_slice(u.as_slice()))
        }
        Func::DiagVec => {
            let n = square(f, u)?;
            DMatrix::from_iterator(n, 1, u.diagonal().iter().copied())
        }
        Func::Vec => DMatrix::from_column_slice(u.len(), 1, u.as_slice()),
        _ => {
            return Err(EvalError::Internal(format!(
                "{} has no evaluation rule",
                f.name()
            )));
        }
    })
}

/// `log(det(u))`, through an LU factorization so that it neither overflows nor
/// underflows where the determinant would.
fn logdet(u: &DMatrix<f64>) -> Result<f64, EvalError> {
    let n = square(Func::Logdet, u)?;
    if n == 0 {
        return Ok(0.0);
    }
    let (p, _, upper) = u.clone().lu().unpack();
    let mut sign: f64 = p.determinant();
    let mut log = 0.0;
    for d in upper.diagonal().iter() {
        if *d == 0.0 || !d.is_finite() {
            return Err(EvalError::LogdetNotPositive);
        }
        if *d < 0.0 {
            sign = -sign;
        }
        log += d.abs().ln();
    }
    if sign > 0.0 {
        Ok(log)
    } else {
        Err(EvalError::LogdetNotPositive)
    }
}

/// The inverse, refusing singular and numerically singular matrices.
fn inverse(u: &DMatrix<f64>) -> Result<DMatrix<f64>, EvalError> {
    let n = square(Func::Inv, u)?;
    if n == 0 {
        return Ok(u.clone());
    }
    let inv = u.clone().try_inverse().ok_or(EvalError::Singular)?;
    let sv = u.singular_values();
    let largest = sv.iter().fold(0.0f64, |a, &x| a.max(x));
    let smallest = sv.iter().fold(f64::INFINITY, |a, &x| a.min(x));
    if !(largest > 0.0 && smallest >= SINGULAR_RCOND * largest) {
        return Err(EvalError::Singular);
    }
    Ok(inv)
}

/// An elementwise function at one entry.
fn elementwise(f: Func, x: f64) -> Result<f64, EvalError> {
    let domain = |what: &str| {
        Err(EvalError::Domain(format!(
            "{} of {what} ({})",
            f.name(),
            num_text(x)
        )))
    };
    Ok(match f {
        Func::Exp => x.exp(),
        Func::Log if x <= 0.0 => return domain("a non-positive entry"),
        Func::Log => x.ln(),
        Func::Sin => x.sin(),
        Func::Cos => x.cos(),
        Func::Tan => x.tan(),
        Func::Tanh => x.tanh(),
        Func::Sqrt if x < 0.0 => return domain("a negative entry"),
        Func::Sqrt => x.sqrt(),
        Func::Abs => x.abs(),
        Func::Arcsin | Func::Arccos if !(-1.0..=1.0).contains(&x) => {
            return domain("an entry outside [-1, 1]");
        }
        Func::Arcsin => x.asin(),
        Func::Arccos => x.acos(),
        Func::Arctan => x.atan(),
        Func::Relu => {
            if x > 0.0 {
                x
            } else {
                0.0
            }
        }
        Func::Step => {
            if x > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Func::Sign => {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        }
        Func::Sigmoid => {
            if x >= 0.0 {
                1.0 / (1.0 + (-x).exp())
            } else {
                let e = x.exp();
                e / (1.0 + e)
            }
        }
        Func::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
        _ => {
            return Err(EvalError::Internal(format!(
                "{} is not elementwise",
                f.name()
            )));
        }
    })
}

/// Fails when a computed value has an entry that is infinite or not a number,
/// naming the operation that produced it.
fn check_finite(graph: &Graph, id: Id, value: &DMatrix<f64>) -> Result<(), EvalError> {
    if value.iter().all(|x| x.is_finite()) {
        return Ok(());
    }
    let op = match graph.node(id) {
        Node::Sym(s) => {
            return Err(EvalError::NotFinite(format!(
                "the value of {} has an entry that is not a finite number",
                graph.symbol(*s).name
            )));
        }
        Node::Num(_)
        | Node::Identity(_)
        | Node::Ones(..)
        | Node::Zero(..)
        | Node::Size(_)
        | Node::Commutation(..)
        | Node::Hole(..) => "a constant",
        Node::Add(_) => "a sum",
        Node::Mul(_) => "a product",
        Node::Had(_) => "an elementwise product",
        Node::Pow(_) => "a power",
        Node::EPow(_) => "an elementwise power",
        Node::Transpose(_) => "a transpose",
        Node::Kron(_) => "kron",
        Node::Call(f, _) => f.name(),
    };
    let message = if value.iter().any(|x| x.is_nan()) {
        format!("{op} gave a result that is not a number")
    } else {
        format!("{op} overflowed to infinity")
    };
    Err(EvalError::NotFinite(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(r: usize, c: usize, rows: &[f64]) -> DMatrix<f64> {
        DMatrix::from_row_slice(r, c, rows)
    }

    fn size_of(g: &Graph, env: &mut Env, d: Dim, n: usize) {
        env.sizes.insert(g.dims.find(d), n);
    }

    fn call(g: &mut Graph, f: Func, u: Id, shape: Shape) -> Id {
        g.intern(Node::Call(f, u), shape)
    }

    fn scalar_call(g: &mut Graph, f: Func, u: Id) -> Id {
        g.intern(Node::Call(f, u), Shape::SCALAR)
    }

    #[test]
    fn matrix_times_vector() {
        let mut g = Graph::new();
        let a = g.declare("A", Kind::Matrix);
        let x = g.declare("x", Kind::Vector);
        let (an, xn) = (g.sym(a), g.sym(x));
        let (sa, sx) = (g.shape(an), g.shape(xn));
        assert!(g.dims.unify(sa.cols, sx.rows));
        let ax = g.intern(Node::Mul(vec![an, xn].into()), Shape::new(sa.rows, sx.cols));
        let mut env = Env::default();
        env.values.insert(
            a,
            m(3, 4, &[1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12.]),
        );
        env.values.insert(x, m(4, 1, &[1., 0., -1., 2.]));
        let v = eval(&g, &[ax], &env).unwrap();
        assert_eq!(v[0], m(3, 1, &[6., 14., 22.]));
        assert_eq!(kink_distance(&g, &[ax], &env).unwrap(), f64::INFINITY);
    }

    #[test]
    fn broadcast_in_add_and_had() {
        let mut g = Graph::new();
        let x = g.declare("x", Kind::Vector);
        let xn = g.sym(x);
        let s = g.shape(xn);
        let two = g.num(2.0);
        let add = g.intern(Node::Add(vec![xn, two].into()), s);
        let had = g.intern(Node::Had(vec![two, xn, xn].into()), s);
        let mut env = Env::default();
        env.values.insert(x, m(3, 1, &[1., 2., 3.]));
        let v = eval(&g, &[add, had], &env).unwrap();
        assert_eq!(v[0], m(3, 1, &[3., 4., 5.]));
        assert_eq!(v[1], m(3, 1, &[2., 8., 18.]));
        // All-scalar sums stay 1×1.
        let three = g.num(3.0);
        let both = g.intern(Node::Add(vec![two, three].into()), Shape::SCALAR);
        assert_eq!(eval(&g, &[both], &env).unwrap()[0], m(1, 1, &[5.]));
    }

    #[test]
    fn mismatched_add_is_an_error() {
        let mut g = Graph::new();
        let x = g.declare("x", Kind::Vector);
        let y = g.declare("y", Kind::Vector);
        let (xn, yn) = (g.sym(x), g.sym(y));
        let s = g.shape(xn);
        let add = g.intern(Node::Add(vec![xn, yn].into()), s);
        let mut env = Env::default();
        env.values.insert(x, m(3, 1, &[1., 2., 3.]));
        env.values.insert(y, m(2, 1, &[1., 2.]));
        let err = eval(&g, &[add], &env).unwrap_err();
        assert_eq!(err.to_string(), "cannot add a 3×1 matrix and a 2×1 matrix");
    }

    #[test]
    fn softmax_sums_to_one() {
        let mut g = Graph::new();
        let x = g.declare("x", Kind::Vector);
        let xn = g.sym(x);
        let s = g.shape(xn);
        let sm = call(&mut g, Func::Softmax, xn, s);
        let lse = scalar_call(&mut g, Func::Logsumexp, xn);
        let mut env = Env::default();
        env.values.insert(x, m(3, 1, &[1000., 1001., 999.]));
        let v = eval(&g, &[sm, lse], &env).unwrap();
        assert!((v[0].sum() - 1.0).abs() < 1e-12);
        assert!(v[0][1] > v[0][0] && v[0][0] > v[0][2]);
        let expect = 1001.0 + ((-1.0f64).exp() + 1.0 + (-2.0f64).exp()).ln();
        assert!((v[1][0] - expect).abs() < 1e-9);
    }

    #[test]
    fn inv_and_logdet() {
        let mut g = Graph::new();
        let a = g.declare("A", Kind::Matrix);
        let an = g.sym(a);
        let s = g.shape(an);
        assert!(g.dims.unify(s.rows, s.cols));
        let s = g.shape(an);
        let inv = call(&mut g, Func::Inv, an, s);
        let ld = scalar_call(&mut g, Func::Logdet, an);
        let det = scalar_call(&mut g, Func::Det, an);
        let mut env = Env::default();
        env.values.insert(a, m(2, 2, &[2., 0., 0., 4.]));
        let v = eval(&g, &[inv, ld, det], &env).unwrap();
        assert_eq!(v[0], m(2, 2, &[0.5, 0., 0., 0.25]));
        assert!((v[1][0] - 8f64.ln()).abs() < 1e-12);
        assert!((v[2][0] - 8.0).abs() < 1e-12);

        env.values.insert(a, m(2, 2, &[1., 2., 2., 4.]));
        assert_eq!(eval(&g, &[inv], &env), Err(EvalError::Singular));
        assert_eq!(
            eval(&g, &[ld], &env).unwrap_err().to_string(),
            "logdet of a matrix whose determinant is not positive"
        );
        env.values.insert(a, m(2, 2, &[0., 1., 1., 0.]));
        assert_eq!(eval(&g, &[ld], &env), Err(EvalError::LogdetNotPositive));
        // Numerically singular.
        env.values.insert(a, m(2, 2, &[1., 1., 1., 1. + 1e-15]));
        assert_eq!(eval(&g, &[inv], &env), Err(EvalError::Singular));
    }

    #[test]
    fn domain_errors() {
        let mut g = Graph::new();
        let x = g.declare("x", Kind::Vector);
        let xn = g.sym(x);
        let s = g.shape(xn);
        let log = call(&mut g, Func::Log, xn, s);
        let sqrt = call(&mut g, Func::Sqrt, xn, s);
        let asin = call(&mut g, Func::Arcsin, xn, s);
        let exp = call(&mut g, Func::Exp, xn, s);
        let mut env = Env::default();
        env.values.insert(x, m(2, 1, &[1., -0.5]));
        let msg = |id| eval(&g, &[id], &env).unwrap_err().to_string();
        assert_eq!(msg(log), "log of a non-positive entry (-0.5)");
        assert_eq!(msg(sqrt), "sqrt of a negative entry (-0.5)");
        env.values.insert(x, m(2, 1, &[1., 1000.]));
        let msg = |id| eval(&g, &[id], &env).unwrap_err().to_string();
        assert_eq!(msg(asin), "arcsin of an entry outside [-1, 1] (1000)");
        assert_eq!(msg(exp), "exp overflowed to infinity");
    }

    #[test]
    fn powers() {
        let mut g = Graph::new();
        let x = g.declare("x", Kind::Vector);
        let t = g.declare("t", Kind::Scalar);
        let (xn, tn) = (g.sym(x), g.sym(t));
        let s = g.shape(xn);
        let half = g.num(0.5);
        let minus1 = g.num(-1.0);
        let sq = g.intern(Node::EPow([xn, half]), s);
        let recip = g.intern(Node::EPow([xn, minus1]), s);
        let tp = g.intern(Node::Pow([tn, minus1]), Shape::SCALAR);
        let mut env = Env::default();
        env.values.insert(x, m(2, 1, &[4., 0.]));
        env.values.insert(t, m(1, 1, &[-2.]));
        assert_eq!(eval(&g, &[sq], &env).unwrap()[0], m(2, 1, &[2., 0.]));
        assert_eq!(eval(&g, &[recip], &env), Err(EvalError::DivisionByZero));
        assert_eq!(eval(&g, &[tp], &env).unwrap()[0], m(1, 1, &[-0.5]));
        env.values.insert(x, m(2, 1, &[4., -1.]));
        assert_eq!(
            eval(&g, &[sq], &env).unwrap_err().to_string(),
            "a negative number (-1) to a non-integer power (0.5)"
        );
    }

    #[test]
    fn vec_is_column_major() {
        let mut g = Graph::new();
        let a = g.declare("A", Kind::Matrix);
        let an = g.sym(a);
        let s = g.shape(an);
        let p = g.dims.product(s.rows, s.cols);
        let v = call(&mut g, Func::Vec, an, Shape::new(p, Dim::One));
        let ones = g.intern(Node::Ones(p, Dim::One), Shape::new(p, Dim::One));
        let mut env = Env::default();
        env.values.insert(a, m(2, 3, &[1., 2., 3., 4., 5., 6.]));
        size_of(&g, &mut env, s.rows, 2);
        size_of(&g, &mut env, s.cols, 3);
        let out = eval(&g, &[v, ones], &env).unwrap();
        assert_eq!(out[0], m(6, 1, &[1., 4., 2., 5., 3., 6.]));
        assert_eq!(out[1], DMatrix::from_element(6, 1, 1.0));
    }

    #[test]
    fn kron_and_diag() {
        let mut g = Graph::new();
        let a = g.declare("A", Kind::Matrix);
        let b = g.declare("B", Kind::Matrix);
        let x = g.declare("x", Kind::Vector);
        let (an, bn, xn) = (g.sym(a), g.sym(b), g.sym(x));
        let (sa, sb, sx) = (g.shape(an), g.shape(bn), g.shape(xn));
        let rows = g.dims.product(sa.rows, sb.rows);
        let cols = g.dims.product(sa.cols, sb.cols);
        let k = g.intern(Node::Kron([an, bn]), Shape::new(rows, cols));
        let dm = call(&mut g, Func::DiagMat, xn, Shape::new(sx.rows, sx.rows));
        let dv = call(&mut g, Func::DiagVec, dm, sx);
        let mut env = Env::default();
        env.values.insert(a, m(1, 2, &[1., 2.]));
        env.values.insert(b, m(2, 1, &[3., 4.]));
        env.values.insert(x, m(2, 1, &[5., 6.]));
        let out = eval(&g, &[k, dm, dv], &env).unwrap();
        assert_eq!(out[0], m(2, 2, &[3., 6., 4., 8.]));
        assert_eq!(out[1], m(2, 2, &[5., 0., 0., 6.]));
        assert_eq!(out[2], m(2, 1, &[5., 6.]));
    }

    #[test]
    fn scalar_factor_in_mul() {
        let mut g = Graph::new();
        let a = g.declare("A", Kind::Matrix);
        let x = g.declare("x", Kind::Vector);
        let t = g.declare("t", Kind::Scalar);
        let (an, xn, tn) = (g.sym(a), g.sym(x), g.sym(t));
        let (sa, sx) = (g.shape(an), g.shape(xn));
        assert!(g.dims.unify(sa.cols, sx.rows));
        let xt = g.intern(Node::Transpose(xn), sx.t());
        let two = g.num(2.0);
        // 2 * x' * t * A' … written as x' * t * x * 2: scalar factors anywhere.
        let q = g.intern(Node::Mul(vec![xt, tn, xn, two].into()), Shape::SCALAR);
        let ax = g.intern(
            Node::Mul(vec![two, an, tn, xn].into()),
            Shape::new(sa.rows, Dim::One),
        );
        let both = g.intern(Node::Mul(vec![two, tn].into()), Shape::SCALAR);
        let mut env = Env::default();
        env.values.insert(a, m(2, 2, &[1., 2., 3., 4.]));
        env.values.insert(x, m(2, 1, &[1., 1.]));
        env.values.insert(t, m(1, 1, &[3.]));
        let out = eval(&g, &[q, ax, both], &env).unwrap();
        assert_eq!(out[0], m(1, 1, &[12.]));
        assert_eq!(out[1], m(2, 1, &[18., 42.]));
        assert_eq!(out[2], m(1, 1, &[6.]));
    }

    #[test]
    fn mul_of_mismatched_sizes_is_an_error() {
        let mut g = Graph::new();
        let a = g.declare("A", Kind::Matrix);
        let x = g.declare("x", Kind::Vector);
        let (an, xn) = (g.sym(a), g.sym(x));
        let p = g.intern(Node::Mul(vec![an, xn].into()), Shape::SCALAR);
        let mut env = Env::default();
        env.values.insert(a, m(2, 2, &[1., 2., 3., 4.]));
        env.values.insert(x, m(3, 1, &[1., 1., 1.]));
        assert_eq!(
            eval(&g, &[p], &env).unwrap_err().to_string(),
            "cannot multiply a 2×2 matrix by a 3×1 matrix"
        );
    }

    #[test]
    fn missing_symbol_and_size() {
        let mut g = Graph::new();
        let x = g.declare("x", Kind::Vector);
        let xn = g.sym(x);
        let s = g.shape(xn);
        let env = Env::default();
        assert_eq!(
            eval(&g, &[xn], &env).unwrap_err().to_string(),
            "the symbol x has no value"
        );
        let id = g.intern(Node::Identity(s.rows), Shape::new(s.rows, s.rows));
        assert_eq!(
            eval(&g, &[id], &env),
            Err(EvalError::MissingSize(g.dims.find(s.rows)))
        );
    }

    #[test]
    fn value_of_wrong_shape_is_an_error() {
        let mut g = Graph::new();
        let x = g.declare("x", Kind::Vector);
        let t = g.declare("t", Kind::Scalar);
        let (xn, tn) = (g.sym(x), g.sym(t));
        let s = g.shape(xn);
        let mut env = Env::default();
        size_of(&g, &mut env, s.rows, 3);
        env.values.insert(x, m(2, 1, &[1., 2.]));
        env.values.insert(t, m(2, 1, &[1., 2.]));
        assert_eq!(
            eval(&g, &[xn], &env).unwrap_err().to_string(),
            "the value of x is 2×1 but the expression needs 3×1"
        );
        assert_eq!(
            eval(&g, &[tn], &env).unwrap_err().to_string(),
            "the value of t is 2×1 but the expression needs a scalar"
        );
    }

    #[test]
    fn kinks_and_elementwise_functions() {
        let mut g = Graph::new();
        let x = g.declare("x", Kind::Vector);
        let xn = g.sym(x);
        let s = g.shape(xn);
        let relu = call(&mut g, Func::Relu, xn, s);
        let step = call(&mut g, Func::Step, xn, s);
        let sign = call(&mut g, Func::Sign, xn, s);
        let sig = call(&mut g, Func::Sigmoid, xn, s);
        let sp = call(&mut g, Func::Softplus, xn, s);
        let n1 = scalar_call(&mut g, Func::Norm1, xn);
        let n2 = scalar_call(&mut g, Func::Norm2, xn);
        let mut env = Env::default();
        env.values.insert(x, m(3, 1, &[-3., 0.25, 4.]));
        let roots = [relu, step, sign, sig, sp, n1, n2];
        let out = eval(&g, &roots, &env).unwrap();
        assert_eq!(out[0], m(3, 1, &[0., 0.25, 4.]));
        assert_eq!(out[1], m(3, 1, &[0., 1., 1.]));
        assert_eq!(out[2], m(3, 1, &[-1., 1., 1.]));
        assert!((out[3][0] - 1.0 / (1.0 + 3f64.exp())).abs() < 1e-15);
        assert!((out[4][2] - (1.0 + 4f64.exp()).ln()).abs() < 1e-12);
        assert_eq!(out[5][0], 7.25);
        assert!((out[6][0] - (9.0f64 + 0.0625 + 16.0).sqrt()).abs() < 1e-12);
        assert_eq!(kink_distance(&g, &roots, &env).unwrap(), 0.25);
        assert_eq!(kink_distance(&g, &[sig, n2], &env).unwrap(), f64::INFINITY);
        // Extreme arguments stay finite.
        env.values.insert(x, m(3, 1, &[-1000., 1000., 0.]));
        let out = eval(&g, &[sig, sp], &env).unwrap();
        assert_eq!(out[0], m(3, 1, &[0., 1., 0.5]));
        assert_eq!(out[1][1], 1000.0);
    }

    #[test]
    fn deep_chain_does_not_overflow_the_stack() {
        let mut g = Graph::new();
        let x = g.declare("x", Kind::Vector);
        let xn = g.sym(x);
        let s = g.shape(xn);
        let one = g.num(1.0);
        let mut e = xn;
        for _ in 0..100_000 {
            e = g.intern(Node::Add(vec![e, one].into()), s);
        }
        let mut env = Env::default();
        env.values.insert(x, m(2, 1, &[1., 2.]));
        let out = eval(&g, &[e], &env).unwrap();
        assert_eq!(out[0], m(2, 1, &[100_001., 100_002.]));
    }

    #[test]
    fn shared_subexpressions_and_repeated_roots() {
        let mut g = Graph::new();
        let x = g.declare("x", Kind::Vector);
        let xn = g.sym(x);
        let s = g.shape(xn);
        let e = call(&mut g, Func::Exp, xn, s);
        let sum = g.intern(Node::Add(vec![e, e].into()), s);
        let mut env = Env::default();
        env.values.insert(x, m(1, 1, &[0.]));
        let out = eval(&g, &[sum, e, sum], &env).unwrap();
        assert_eq!(out, vec![m(1, 1, &[2.]), m(1, 1, &[1.]), m(1, 1, &[2.])]);
    }
}

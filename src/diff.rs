//! The differentiator: numerator-layout derivatives built with the simplifier's smart
//! constructors, so results are canonical as they are formed.
//!
//! Three modes share one table of local derivatives:
//! - reverse (backpropagation) for a 1×1 expression: the gradient, same shape as the
//!   variable, built by pushing adjoints from the output down, node by node;
//! - forward Jacobians for a vector expression by a vector (or matrix, in `kron`
//!   form) variable: the chain rule as a product of Jacobians;
//! - forward tangents for any expression by a scalar.
//!
//! All three walk node ids in order (children have smaller ids), so none recurses.

use crate::graph::{Func, Graph, Id, Kind, Node, Symbol};
use crate::shape::Shape;
use std::collections::HashMap;

/// Which way a derivative is laid out when printed (SPEC §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Layout {
    /// Gradients shaped like the variable, Jacobians in numerator layout.
    #[default]
    Mixed,
    /// Numerator layout throughout: the gradient of a scalar is a row.
    Numerator,
    /// Denominator layout: the transpose of numerator layout.
    Denominator,
}

impl Layout {
    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Mixed => "mixed",
            Layout::Numerator => "numerator",
            Layout::Denominator => "denominator",
        }
    }
}

/// A derivative that cannot be formed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DiffError {
    /// The derivative exists but jacob has no rule for it yet.
    #[error("{0} is not supported yet")]
    Unsupported(String),
    /// The Hessian was asked of an expression that is not 1×1.
    #[error("the Hessian needs a scalar expression, but this one is {0}")]
    NotScalar(String),
}

/// What the expression and variable are, for choosing a mode and a layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rank {
    /// 1×1.
    Scalar,
    /// n×1 or 1×n.
    Vector,
    /// m×n.
    Matrix,
}

impl Graph {
    /// Whether a node is a scalar, a vector or a matrix.
    pub fn rank(&self, id: Id) -> Rank {
        let s = self.shape(id);
        if self.dims.is_scalar(s) {
            Rank::Scalar
        } else if self.dims.is_column(s) || self.dims.is_row(s) {
            Rank::Vector
        } else {
            Rank::Matrix
        }
    }
}

/// The derivative of `f` by `var`, laid out as `layout` asks, simplified.
pub fn derivative(g: &mut Graph, f: Id, var: Symbol, layout: Layout) -> Result<Id, DiffError> {
    let v = g.sym(var);
    let raw = match (g.rank(f), g.rank(v)) {
        (_, Rank::Scalar) => {
            let d = tangent(g, f, var)?;
            if layout == Layout::Denominator && g.rank(f) == Rank::Vector {
                g.t(d)
            } else {
                d
            }
        }
        (Rank::Scalar, _) => {
            let grad = gradient(g, f, var)?;
            let grad = symmetrize(g, grad, var);
            // Factor before transposing, so that the row reads `x'*(A + A')`.
            let grad = g.simplify(grad, true);
            if layout == Layout::Numerator {
                g.t(grad)
            } else {
                grad
            }
        }
        (Rank::Vector, _) => {
            let j = jacobian(g, f, var)?;
            let j = symmetrize_jacobian(g, j, var)?;
            let j = g.simplify(j, true);
            if layout == Layout::Denominator {
                g.t(j)
            } else {
                j
            }
        }
        (Rank::Matrix, _) => {
            return Err(DiffError::Unsupported(
                "the derivative of a matrix-valued expression by a vector or matrix (a kron form)"
                    .into(),
            ));
        }
    };
    Ok(g.simplify(raw, true))
}

/// The Hessian of a scalar `f`: n×n for a vector variable, d²f/ds² for a scalar.
pub fn hessian(g: &mut Graph, f: Id, var: Symbol) -> Result<Id, DiffError> {
    if !g.is_scalar(f) {
        let mut names = crate::shape::DimNames::default();
        let shape = names.shape(&g.dims, g.shape(f));
        return Err(DiffError::NotScalar(shape));
    }
    let v = g.sym(var);
    let raw = match g.rank(v) {
        Rank::Scalar => {
            let d = tangent(g, f, var)?;
            tangent(g, d, var)?
        }
        Rank::Vector => {
            let grad = gradient(g, f, var)?;
            let grad = g.simplify(grad, false);
            let h = jacobian(g, grad, var)?;
            // A Hessian is symmetric; averaging with its transpose often shortens it.
            let ht = g.t(h);
            let avg = g.add(&[h, ht]);
            let avg = g.scale(0.5, avg);
            let (h, avg) = (g.simplify(h, true), g.simplify(avg, true));
            if g.cost(avg) < g.cost(h) { avg } else { h }
        }
        Rank::Matrix => {
            return Err(DiffError::Unsupported(
                "the Hessian with respect to a matrix (a kron form)".into(),
            ));
        }
    };
    Ok(g.simplify(raw, true))
}

/// `(G + G')/2` for a variable declared symmetric.
pub(crate) fn symmetrize(g: &mut Graph, grad: Id, var: Symbol) -> Id {
    if g.symbol(var).kind != Kind::Symmetric || g.is_symmetric(grad) {
        return grad;
    }
    let gt = g.t(grad);
    let s = g.add(&[grad, gt]);
    g.scale(0.5, s)
}

/// `J*(I + K)/2` for a Jacobian J by a variable declared symmetric, with K the
/// commutation matrix (K*vec(X) = vec(X')): the derivative along symmetric
/// perturbations, consistent with the symmetric gradient (G + G')/2.
pub(crate) fn symmetrize_jacobian(g: &mut Graph, j: Id, var: Symbol) -> Result<Id, DiffError> {
    if g.symbol(var).kind != Kind::Symmetric {
        return Ok(j);
    }
    let jk = commuted(g, j)?;
    let s = g.add(&[j, jk]);
    Ok(g.scale(0.5, s))
}

/// `J*K`: a Jacobian by vec(X) turned into the Jacobian by vec(X'), for the forms the
/// forward mode builds (sums and products ending in `kron(a', B)` or `vec(G)'`).
fn commuted(g: &mut Graph, j: Id) -> Result<Id, DiffError> {
    let unsupported = || {
        DiffError::Unsupported(
            "the Jacobian of this expression by a symmetric matrix (declare it --matrix to get the unsymmetrized one)"
                .into(),
        )
    };
    let one = |g: &Graph, d| g.dims.find(d) == crate::shape::Dim::One;
    match g.node(j).clone() {
        Node::Zero(..) => Ok(j),
        Node::Add(ts) => {
            let mut out = Vec::with_capacity(ts.len());
            for t in ts.iter() {
                out.push(commuted(g, *t)?);
            }
            Ok(g.add(&out))
        }
        Node::Mul(fs) => {
            let (last, front) = fs.split_last().ok_or_else(unsupported)?;
            let mut factors = front.to_vec();
            factors.push(commuted(g, *last)?);
            Ok(g.mul(&factors))
        }
        // (a' ⊗ B) K = B ⊗ a' and (A ⊗ b') K = b' ⊗ A for a row a' or b'.
        Node::Kron([a, b]) if one(g, g.shape(a).rows) || one(g, g.shape(b).rows) => {
            Ok(g.kron(b, a))
        }
        Node::Transpose(c) => {
            let cc = commuted_column(g, c).ok_or_else(unsupported)?;
            Ok(g.t(cc))
        }
        _ => Err(unsupported()),
    }
}

/// `K*v` for a column v = vec(G): vec(G').
fn commuted_column(g: &mut Graph, v: Id) -> Option<Id> {
    match g.node(v).clone() {
        Node::Zero(..) => Some(v),
        Node::Call(Func::Vec, m) => {
            let mt = g.t(m);
            Some(g.func(Func::Vec, mt))
        }
        Node::Add(ts) => {
            let mut out = Vec::with_capacity(ts.len());
            for t in ts.iter() {
                out.push(commuted_column(g, *t)?);
            }
            Some(g.add(&out))
        }
        Node::Mul(fs) => {
            let (last, front) = fs.split_last()?;
            if front.iter().any(|f| !g.is_scalar(*f)) {
                return None;
            }
            let mut factors = front.to_vec();
            factors.push(commuted_column(g, *last)?);
            Some(g.mul(&factors))
        }
        _ => None,
    }
}

/// The gradient of a 1×1 `f` by `var`, shaped like `var`: reverse mode.
pub fn gradient(g: &mut Graph, f: Id, var: Symbol) -> Result<Id, DiffError> {
    let v = g.sym(var);
    let var_shape = g.shape(v);
    let dep = g.depends_on(f, var);
    if !dep[f.idx()] {
        return Ok(g.zero(var_shape));
    }
    let order: Vec<Id> = g
        .reachable(&[f])
        .into_iter()
        .filter(|id| dep[id.idx()])
        .rev()
        .collect();
    let mut adjoints: HashMap<Id, Vec<Id>> = HashMap::new();
    let one = g.num(1.0);
    adjoints.insert(f, vec![one]);
    let mut result = None;
    for id in order {
        let Some(contributions) = adjoints.remove(&id) else {
            continue;
        };
        let ybar = g.add(&contributions);
        if id == v {
            result = Some(ybar);
            continue;
        }
        for (child, adj) in backprop(g, id, ybar, &dep)? {
            adjoints.entry(child).or_default().push(adj);
        }
    }
    Ok(result.unwrap_or_else(|| g.zero(var_shape)))
}

/// The adjoint contributions of node `id` to its children, given its own adjoint `ybar`.
fn backprop(g: &mut Graph, id: Id, ybar: Id, dep: &[bool]) -> Result<Vec<(Id, Id)>, DiffError> {
    let node = g.node(id).clone();
    let d = |c: &Id| dep[c.idx()];
    let mut out = Vec::new();
    match node {
        Node::Add(ts) => {
            let y_scalar = g.is_scalar(id);
            for t in ts.iter().filter(|t| d(t)) {
                let adj = if g.is_scalar(*t) && !y_scalar {
                    g.func(Func::Sum, ybar)
                } else {
                    ybar
                };
                out.push((*t, adj));
            }
        }
        Node::Mul(fs) => {
            let parts = g.parts(id);
            // Positions of 1×1 factors and of the chain, in `fs`.
            let scalar_pos: Vec<usize> = (0..fs.len()).filter(|&i| g.is_scalar(fs[i])).collect();
            let chain: Vec<Id> = parts.chain.clone();
            for &i in scalar_pos.iter().filter(|&&i| d(&fs[i])) {
                let others: Vec<Id> = fs
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, &f)| f)
                    .collect();
                let rest = g.mul(&others);
                let adj = if g.is_scalar(id) {
                    g.mul(&[ybar, rest])
                } else {
                    g.inner(ybar, rest)
                };
                out.push((fs[i], adj));
            }
            let mut front: Vec<Id> = vec![g.num(parts.coef)];
            front.extend(parts.scalars.iter().copied());
            for (j, &c) in chain.iter().enumerate() {
                if !d(&c) {
                    continue;
                }
                let mut factors = front.clone();
                if j > 0 {
                    let prefix = g.mul(&chain[..j]);
                    factors.push(g.t(prefix));
                }
                factors.push(ybar);
                if j + 1 < chain.len() {
                    let suffix = g.mul(&chain[j + 1..]);
                    factors.push(g.t(suffix));
                }
                out.push((c, g.mul(&factors)));
            }
        }
        Node::Had(fs) => {
            for (i, f) in fs.iter().enumerate().filter(|(_, f)| d(f)) {
                let mut others: Vec<Id> = fs
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, &x)| x)
                    .collect();
                others.push(ybar);
                out.push((*f, g.had(&others)));
            }
        }
        Node::Pow([b, p]) => {
            if d(&b) {
                let pm1 = minus_one(g, p);
                let bp = g.pow(b, pm1);
                out.push((b, g.mul(&[ybar, p, bp])));
            }
            if d(&p) {
                let lb = g.func(Func::Log, b);
                out.push((p, g.mul(&[ybar, id, lb])));
            }
        }
        Node::EPow([u, p]) => {
            if d(&u) {
                let pm1 = minus_one(g, p);
                let up = g.epow(u, pm1);
                let local = g.mul(&[p, up]);
                out.push((u, g.had(&[ybar, local])));
            }
            if d(&p) {
                let lu = g.func(Func::Log, u);
                let local = g.had(&[id, lu]);
                out.push((p, g.inner(ybar, local)));
            }
        }
        Node::Transpose(a) => out.push((a, g.t(ybar))),
        Node::Call(f, u) if f.is_elementwise() => {
            if let Some(local) = elementwise_derivative(g, f, u, id) {
                out.push((u, g.had(&[ybar, local])));
            }
        }
        Node::Call(f, u) => {
            let adj = match f {
                Func::Sum => {
                    let ones = {
                        let s = g.shape(u);
                        g.ones(s)
                    };
                    g.mul(&[ybar, ones])
                }
                Func::Norm2 => {
                    let inv = g.powf(id, -1.0);
                    g.mul(&[ybar, u, inv])
                }
                Func::Norm1 => {
                    let s = g.func(Func::Sign, u);
                    g.mul(&[ybar, s])
                }
                Func::Softmax => {
                    let st = g.t(id);
                    let sy = g.mul(&[st, ybar]);
                    let diff = g.sub(ybar, sy);
                    g.had(&[id, diff])
                }
                Func::Logsumexp => {
                    let s = g.func(Func::Softmax, u);
                    g.mul(&[ybar, s])
                }
                Func::Tr => {
                    let n = g.shape(u).rows;
                    let eye = g.identity(n);
                    g.mul(&[ybar, eye])
                }
                Func::Det => {
                    let inv = g.func(Func::Inv, u);
                    let it = g.t(inv);
                    g.mul(&[ybar, id, it])
                }
                Func::Logdet => {
                    let inv = g.func(Func::Inv, u);
                    let it = g.t(inv);
                    g.mul(&[ybar, it])
                }
                Func::Inv => {
                    let it = g.t(id);
                    let m = g.mul(&[it, ybar, it]);
                    g.neg(m)
                }
                Func::DiagMat => g.func(Func::DiagVec, ybar),
                Func::DiagVec => g.func(Func::DiagMat, ybar),
                Func::Vec => {
                    if g.rank(u) == Rank::Matrix {
                        return Err(DiffError::Unsupported(
                            "differentiating through vec(A) of a matrix A".into(),
                        ));
                    }
                    let t_needed = g.dims.is_row(g.shape(u));
                    if t_needed { g.t(ybar) } else { ybar }
                }
                _ => {
                    return Err(DiffError::Unsupported(format!(
                        "the derivative of {}",
                        f.name()
                    )));
                }
            };
            out.push((u, adj));
        }
        Node::Kron(_) => {
            return Err(DiffError::Unsupported(
                "differentiating through kron(A, B)".into(),
            ));
        }
        Node::Num(_)
        | Node::Sym(_)
        | Node::Identity(_)
        | Node::Ones(..)
        | Node::Zero(..)
        | Node::Size(_) => {}
    }
    Ok(out)
}

/// `p - 1`
fn minus_one(g: &mut Graph, p: Id) -> Id {
    match g.as_num(p) {
        Some(v) => g.num(v - 1.0),
        None => {
            let m = g.num(-1.0);
            g.add(&[p, m])
        }
    }
}

/// The entrywise derivative f'(u) of an elementwise function, given y = f(u);
/// `None` where it is zero almost everywhere (step, sign).
pub fn elementwise_derivative(g: &mut Graph, f: Func, u: Id, y: Id) -> Option<Id> {
    use Func::*;
    let one = g.num(1.0);
    Some(match f {
        Exp => y,
        Log => g.epowf(u, -1.0),
        Sin => g.func(Cos, u),
        Cos => {
            let s = g.func(Sin, u);
            g.neg(s)
        }
        Tan => {
            let y2 = g.epowf(y, 2.0);
            g.add(&[one, y2])
        }
        Tanh => {
            let y2 = g.epowf(y, 2.0);
            g.sub(one, y2)
        }
        Sqrt => {
            let inv = g.epowf(y, -1.0);
            g.scale(0.5, inv)
        }
        Abs => g.func(Sign, u),
        Arcsin | Arccos => {
            let u2 = g.epowf(u, 2.0);
            let d = g.sub(one, u2);
            let r = g.epowf(d, -0.5);
            if f == Arccos { g.neg(r) } else { r }
        }
        Arctan => {
            let u2 = g.epowf(u, 2.0);
            let d = g.add(&[one, u2]);
            g.epowf(d, -1.0)
        }
        Relu => g.func(Step, u),
        Step | Sign => return None,
        Sigmoid => {
            let rest = g.sub(one, y);
            g.had(&[y, rest])
        }
        Softplus => g.func(Sigmoid, u),
        _ => return None,
    })
}

/// The derivative of any `f` by a scalar `var`, shaped like `f`: forward mode.
pub fn tangent(g: &mut Graph, f: Id, var: Symbol) -> Result<Id, DiffError> {
    let v = g.sym(var);
    let dep = g.depends_on(f, var);
    if !dep[f.idx()] {
        let s = g.shape(f);
        return Ok(g.zero(s));
    }
    let mut tan: HashMap<Id, Id> = HashMap::new();
    for id in g.reachable(&[f]).into_iter().filter(|id| dep[id.idx()]) {
        let t = if id == v {
            g.num(1.0)
        } else {
            tangent_of(g, id, &tan, &dep)?
        };
        tan.insert(id, t);
    }
    Ok(tan[&f])
}

fn tangent_of(g: &mut Graph, id: Id, tan: &HashMap<Id, Id>, dep: &[bool]) -> Result<Id, DiffError> {
    let node = g.node(id).clone();
    let shape = g.shape(id);
    let d = |c: &Id| dep[c.idx()];
    Ok(match node {
        Node::Add(ts) => {
            let mut terms = Vec::new();
            for t in ts.iter().filter(|t| d(t)) {
                let dt = tan[t];
                terms.push(if g.is_scalar(*t) && !g.is_scalar(id) {
                    let ones = g.ones(shape);
                    g.mul(&[dt, ones])
                } else {
                    dt
                });
            }
            g.add(&terms)
        }
        Node::Mul(fs) => {
            let mut terms = Vec::new();
            for i in (0..fs.len()).filter(|&i| d(&fs[i])) {
                let mut factors = fs.to_vec();
                factors[i] = tan[&fs[i]];
                terms.push(g.mul(&factors));
            }
            g.add(&terms)
        }
        Node::Had(fs) => {
            let mut terms = Vec::new();
            for i in (0..fs.len()).filter(|&i| d(&fs[i])) {
                let mut factors = fs.to_vec();
                factors[i] = tan[&fs[i]];
                terms.push(g.had(&factors));
            }
            g.add(&terms)
        }
        Node::Pow([b, p]) => {
            let mut terms = Vec::new();
            if d(&b) {
                let pm1 = minus_one(g, p);
                let bp = g.pow(b, pm1);
                terms.push(g.mul(&[p, bp, tan[&b]]));
            }
            if d(&p) {
                let lb = g.func(Func::Log, b);
                terms.push(g.mul(&[id, lb, tan[&p]]));
            }
            g.add(&terms)
        }
        Node::EPow([u, p]) => {
            let mut terms = Vec::new();
            if d(&u) {
                let pm1 = minus_one(g, p);
                let up = g.epow(u, pm1);
                let local = g.mul(&[p, up]);
                terms.push(g.had(&[local, tan[&u]]));
            }
            if d(&p) {
                let lu = g.func(Func::Log, u);
                let h = g.had(&[id, lu]);
                terms.push(g.mul(&[tan[&p], h]));
            }
            g.add(&terms)
        }
        Node::Transpose(a) => g.t(tan[&a]),
        Node::Call(f, u) if f.is_elementwise() => match elementwise_derivative(g, f, u, id) {
            Some(local) => g.had(&[local, tan[&u]]),
            None => g.zero(shape),
        },
        Node::Call(f, u) => {
            let du = tan[&u];
            match f {
                Func::Sum | Func::Tr | Func::DiagMat | Func::DiagVec | Func::Vec => g.func(f, du),
                Func::Norm2 => {
                    let ip = g.inner(u, du);
                    g.div(ip, id)
                }
                Func::Norm1 => {
                    let s = g.func(Func::Sign, u);
                    g.inner(s, du)
                }
                Func::Softmax => {
                    let st = g.t(id);
                    let sd = g.mul(&[st, du]);
                    let diff = g.sub(du, sd);
                    g.had(&[id, diff])
                }
                Func::Logsumexp => {
                    let s = g.func(Func::Softmax, u);
                    g.inner(s, du)
                }
                Func::Det | Func::Logdet => {
                    let inv = g.func(Func::Inv, u);
                    let m = g.mul(&[inv, du]);
                    let tr = g.func(Func::Tr, m);
                    if f == Func::Det { g.mul(&[id, tr]) } else { tr }
                }
                Func::Inv => {
                    let m = g.mul(&[id, du, id]);
                    g.neg(m)
                }
                _ => {
                    return Err(DiffError::Unsupported(format!(
                        "the derivative of {}",
                        f.name()
                    )));
                }
            }
        }
        Node::Kron([a, b]) => {
            let mut terms = Vec::new();
            if d(&a) {
                terms.push(g.kron(tan[&a], b));
            }
            if d(&b) {
                terms.push(g.kron(a, tan[&b]));
            }
            g.add(&terms)
        }
        Node::Num(_)
        | Node::Sym(_)
        | Node::Identity(_)
        | Node::Ones(..)
        | Node::Zero(..)
        | Node::Size(_) => g.zero(shape),
    })
}

/// The numerator-layout Jacobian of a vector (or 1×1) `f` by a vector variable
/// (p×n), or by a matrix variable X (p×mn, the derivative by vec(X), in `kron` form).
pub fn jacobian(g: &mut Graph, f: Id, var: Symbol) -> Result<Id, DiffError> {
    let v = g.sym(var);
    let vs = g.shape(v);
    let numel = g.dims.product(vs.rows, vs.cols);
    let dep = g.depends_on(f, var);
    let fs = g.shape(f);
    let frows = if g.dims.is_row(fs) { fs.cols } else { fs.rows };
    if !dep[f.idx()] {
        return Ok(g.zero(Shape::new(frows, numel)));
    }
    let mut jac: HashMap<Id, Id> = HashMap::new();
    for id in g.reachable(&[f]).into_iter().filter(|id| dep[id.idx()]) {
        if id == v {
            if g.rank(v) == Rank::Vector || g.rank(v) == Rank::Scalar {
                let eye = g.identity(numel);
                jac.insert(id, eye);
            }
            continue;
        }
        match g.rank(id) {
            // Matrices get no Jacobian of their own; a product that uses the variable
            // matrix directly is handled where it is used.
            Rank::Matrix => {}
            Rank::Scalar if id != f => {}
            _ => {
                let j = jacobian_of(g, id, &jac, &dep, var)?;
                jac.insert(id, j);
            }
        }
    }
    match jac.get(&f) {
        Some(&j) => Ok(j),
        None => scalar_row(g, f, var),
    }
}

/// The Jacobian of a 1×1 node: its gradient as a row.
fn scalar_row(g: &mut Graph, s: Id, var: Symbol) -> Result<Id, DiffError> {
    let grad = gradient(g, s, var)?;
    let v = g.sym(var);
    let grad = if g.rank(v) == Rank::Matrix {
        g.func(Func::Vec, grad)
    } else {
        grad
    };
    Ok(g.t(grad))
}

/// A vector node as a column of its entries.
pub(crate) fn entries(g: &mut Graph, id: Id) -> Id {
    if g.dims.is_row(g.shape(id)) {
        g.t(id)
    } else {
        id
    }
}

fn jacobian_of(
    g: &mut Graph,
    id: Id,
    jac: &HashMap<Id, Id>,
    dep: &[bool],
    var: Symbol,
) -> Result<Id, DiffError> {
    let v = g.sym(var);
    let node = g.node(id).clone();
    let d = |c: &Id| dep[c.idx()];
    // The Jacobian of a dependent child: vectors from the table, scalars via their gradient.
    let child = |g: &mut Graph, c: Id| -> Result<Id, DiffError> {
        if let Some(&j) = jac.get(&c) {
            return Ok(j);
        }
        if g.is_scalar(c) {
            return scalar_row(g, c, var);
        }
        Err(DiffError::Unsupported(
            "the Jacobian through a matrix-valued subexpression that depends on the variable"
                .into(),
        ))
    };
    let row_result = g.dims.is_row(g.shape(id));
    let mut terms: Vec<Id> = Vec::new();
    match node {
        Node::Add(ts) => {
            let e = entries(g, id);
            let rows = g.shape(e).rows;
            for &t in ts.iter().filter(|t| d(t)) {
                let jt = child(g, t)?;
                terms.push(if g.is_scalar(t) {
                    let ones = g.ones(Shape::new(rows, crate::shape::Dim::One));
                    g.mul(&[ones, jt])
                } else {
                    jt
                });
            }
        }
        Node::Mul(fs) => {
            let parts = g.parts(id);
            let dep_scalars: Vec<Id> = fs
                .iter()
                .copied()
                .filter(|&f| g.is_scalar(f) && d(&f))
                .collect();
            for s in dep_scalars {
                let others: Vec<Id> = {
                    let mut seen = false;
                    fs.iter()
                        .copied()
                        .filter(|&f| {
                            if f == s && !seen {
                                seen = true;
                                false
                            } else {
                                true
                            }
                        })
                        .collect()
                };
                let rest = g.mul(&others);
                let rest = entries(g, rest);
                let js = child(g, s)?;
                terms.push(g.mul(&[rest, js]));
            }
            let chain = parts.chain;
            let mut front: Vec<Id> = vec![g.num(parts.coef)];
            front.extend(parts.scalars);
            for (j, &c) in chain.iter().enumerate() {
                if !d(&c) {
                    continue;
                }
                let left = if j > 0 {
                    Some(g.mul(&chain[..j]))
                } else {
                    None
                };
                let right = if j + 1 < chain.len() {
                    Some(g.mul(&chain[j + 1..]))
                } else {
                    None
                };
                let mut factors = front.clone();
                if c == v && g.rank(c) == Rank::Matrix && !row_result {
                    // d(L*X*r) = kron(r', L) d vec(X)
                    let r = right.ok_or_else(|| DiffError::Unsupported("this product".into()))?;
                    let rt = g.t(r);
                    let l = match left {
                        Some(l) => l,
                        None => {
                            let m = g.shape(v).rows;
                            g.identity(m)
                        }
                    };
                    factors.push(g.kron(rt, l));
                    terms.push(g.mul(&factors));
                    continue;
                }
                let jc = child(g, c)?;
                let c_row = g.dims.is_row(g.shape(c));
                let rt = right.map(|r| g.t(r));
                match (row_result, c_row) {
                    (false, false) => factors.extend(left.into_iter().chain(right)),
                    (false, true) | (true, true) => factors.extend(left.into_iter().chain(rt)),
                    (true, false) => factors.extend(rt.into_iter().chain(left)),
                }
                factors.push(jc);
                terms.push(g.mul(&factors));
            }
        }
        Node::Had(fs) => {
            for (i, &f) in fs.iter().enumerate().filter(|(_, f)| d(f)) {
                let others: Vec<Id> = fs
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, &x)| x)
                    .collect();
                let h = g.had(&others);
                let h = entries(g, h);
                let dm = g.func(Func::DiagMat, h);
                let jf = child(g, f)?;
                terms.push(g.mul(&[dm, jf]));
            }
        }
        Node::EPow([u, p]) => {
            if d(&u) {
                let pm1 = minus_one(g, p);
                let up = g.epow(u, pm1);
                let local = g.mul(&[p, up]);
                let local = entries(g, local);
                let dm = g.func(Func::DiagMat, local);
                let ju = child(g, u)?;
                terms.push(g.mul(&[dm, ju]));
            }
            if d(&p) {
                let lu = g.func(Func::Log, u);
                let h = g.had(&[id, lu]);
                let h = entries(g, h);
                let jp = child(g, p)?;
                terms.push(g.mul(&[h, jp]));
            }
        }
        Node::Transpose(a) => terms.push(child(g, a)?),
        Node::Call(f, u) if f.is_elementwise() => {
            if let Some(local) = elementwise_derivative(g, f, u, id) {
                let local = entries(g, local);
                let dm = g.func(Func::DiagMat, local);
                let ju = child(g, u)?;
                terms.push(g.mul(&[dm, ju]));
            }
        }
        Node::Call(Func::Softmax, u) => {
            let dm = g.func(Func::DiagMat, id);
            let st = g.t(id);
            let outer = g.mul(&[id, st]);
            let local = g.sub(dm, outer);
            let ju = child(g, u)?;
            terms.push(g.mul(&[local, ju]));
        }
        Node::Call(Func::Vec, u) if u == v => {
            let vs = g.shape(v);
            let numel = g.dims.product(vs.rows, vs.cols);
            terms.push(g.identity(numel));
        }
        Node::Call(Func::Vec | Func::DiagMat | Func::DiagVec, u) if g.rank(u) != Rank::Matrix => {
            terms.push(child(g, u)?);
        }
        Node::Call(f, _) => {
            return Err(DiffError::Unsupported(format!(
                "the Jacobian through {}(…) of a matrix",
                f.name()
            )));
        }
        Node::Pow(_) | Node::Kron(_) => {
            return Err(DiffError::Unsupported("this Jacobian".into()));
        }
        Node::Num(_)
        | Node::Sym(_)
        | Node::Identity(_)
        | Node::Ones(..)
        | Node::Zero(..)
        | Node::Size(_) => {}
    }
    let result_rows = {
        let e = entries(g, id);
        g.shape(e).rows
    };
    let vs = g.shape(v);
    let numel = g.dims.product(vs.rows, vs.cols);
    if terms.is_empty() {
        return Ok(g.zero(Shape::new(result_rows, numel)));
    }
    Ok(g.add(&terms))
}

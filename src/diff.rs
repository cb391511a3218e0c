//! The differentiator: one differential rule per operation (Magnus–Neudecker), in one
//! table, and every mode derived from it, with nodes built by the simplifier's smart
//! constructors so that results are canonical as they are formed.
//!
//! - The **differential** of an expression (forward mode) applies each operation's rule
//!   to its operands' differentials: `d(inv(X)) = -inv(X)*dX*inv(X)`. By a scalar with
//!   seed 1 it is the derivative (a tangent); seeded with `dX` it is the differential
//!   form `--form differential` prints.
//! - The **kron form** (Jacobian of vec(F) by vec(X)) identifies a differential that is
//!   linear in dX: vec(A*dX*B) = kron(B', A)*vec(dX), and so on for each linear
//!   operation ([`vectorize`]).
//! - **Reverse mode** (the gradient of a scalar, backpropagation) transposes each
//!   operation's differential: the rule's differential, written with placeholders for
//!   the operands' differentials, is a linear map, and the adjoint of a linear map is
//!   found by the transposition rules of the few linear operations (sums, products,
//!   `.*`, transpose, `sum`, `tr`, `diag`, `vec`, `kron`).
//!
//! Every pass walks node ids in order (children have smaller ids), so none recurses.

use crate::graph::{Func, Graph, Id, Kind, Node, Symbol};
use crate::shape::{Dim, Shape};
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
    /// A name the differential form needs is taken by the expression.
    #[error("{0}")]
    NameTaken(String),
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

// ---------------------------------------------------------------------------------------
// The table: one differential per operation.

/// An operation's differential: its name and textbook formula (what `--explain`
/// shows), and the rewrite that builds dY from the node and its operands'
/// differentials (`None` for an operand that does not depend on the variable). The
/// rewrite gives `None` when dY is zero.
pub struct Rule {
    /// The operation the row is for.
    op: Op,
    /// What the rule is called: "derivative of the inverse".
    pub name: &'static str,
    /// Its differential as a textbook writes it: "d(inv(U)) = -inv(U)*dU*inv(U)".
    pub formula: &'static str,
    apply: Apply,
}

/// How a rule builds dY.
type Apply = fn(&mut Graph, Id, &[Option<Id>]) -> Result<Option<Id>, DiffError>;

/// The operations rules are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Constant,
    Add,
    Mul,
    Had,
    Pow,
    EPow,
    Transpose,
    Kron,
    Call(Func),
}

fn op_of(node: &Node) -> Op {
    match node {
        Node::Add(_) => Op::Add,
        Node::Mul(_) => Op::Mul,
        Node::Had(_) => Op::Had,
        Node::Pow(_) => Op::Pow,
        Node::EPow(_) => Op::EPow,
        Node::Transpose(_) => Op::Transpose,
        Node::Kron(_) => Op::Kron,
        Node::Call(f, _) => Op::Call(*f),
        _ => Op::Constant,
    }
}

/// Shorthand for a row of [`RULES`].
const fn row(op: Op, name: &'static str, formula: &'static str, apply: Apply) -> Rule {
    Rule {
        op,
        name,
        formula,
        apply,
    }
}

/// The differential of every operation, one row each.
pub const RULES: &[Rule] = &[
    row(Op::Constant, "a constant", "dC = 0", |_, _, _| Ok(None)),
    row(Op::Add, "sum rule", "d(U + V) = dU + dV", d_add),
    row(Op::Mul, "product rule", "d(U*V) = dU*V + U*dV", d_mul),
    row(
        Op::Had,
        "product rule, elementwise",
        "d(U.*V) = dU.*V + U.*dV",
        d_had,
    ),
    row(
        Op::Pow,
        "power rule",
        "d(s^p) = p*s^(p-1)*ds + s^p*log(s)*dp",
        d_pow,
    ),
    row(
        Op::EPow,
        "power rule, elementwise",
        "d(U.^p) = p*U.^(p-1).*dU + U.^p.*log(U)*dp",
        d_epow,
    ),
    row(Op::Transpose, "transpose", "d(U') = dU'", d_transpose),
    row(
        Op::Kron,
        "Kronecker product",
        "d(kron(U, V)) = kron(dU, V) + kron(U, dV)",
        d_kron,
    ),
    row(
        Op::Call(Func::Exp),
        "derivative of exp",
        "d(exp(U)) = exp(U).*dU",
        d_elementwise,
    ),
    row(
        Op::Call(Func::Log),
        "derivative of log",
        "d(log(U)) = dU./U",
        d_elementwise,
    ),
    row(
        Op::Call(Func::Sin),
        "derivative of sin",
        "d(sin(U)) = cos(U).*dU",
        d_elementwise,
    ),
    row(
        Op::Call(Func::Cos),
        "derivative of cos",
        "d(cos(U)) = -sin(U).*dU",
        d_elementwise,
    ),
    row(
        Op::Call(Func::Tan),
        "derivative of tan",
        "d(tan(U)) = (1 + tan(U).^2).*dU",
        d_elementwise,
    ),
    row(
        Op::Call(Func::Tanh),
        "derivative of tanh",
        "d(tanh(U)) = (1 - tanh(U).^2).*dU",
        d_elementwise,
    ),
    row(
        Op::Call(Func::Sqrt),
        "derivative of sqrt",
        "d(sqrt(U)) = dU./(2*sqrt(U))",
        d_elementwise,
    ),
    row(
        Op::Call(Func::Abs),
        "derivative of abs",
        "d(abs(U)) = sign(U).*dU",
        d_elementwise,
    ),
    row(
        Op::Call(Func::Arcsin),
        "derivative of arcsin",
        "d(arcsin(U)) = dU./sqrt(1 - U.^2)",
        d_elementwise,
    ),
    row(
        Op::Call(Func::Arccos),
        "derivative of arccos",
        "d(arccos(U)) = -dU./sqrt(1 - U.^2)",
        d_elementwise,
    ),
    row(
        Op::Call(Func::Arctan),
        "derivative of arctan",
        "d(arctan(U)) = dU./(1 + U.^2)",
        d_elementwise,
    ),
    row(
        Op::Call(Func::Relu),
        "derivative of relu",
        "d(relu(U)) = step(U).*dU",
        d_elementwise,
    ),
    row(
        Op::Call(Func::Step),
        "derivative of step",
        "d(step(U)) = 0 almost everywhere",
        d_elementwise,
    ),
    row(
        Op::Call(Func::Sign),
        "derivative of sign",
        "d(sign(U)) = 0 almost everywhere",
        d_elementwise,
    ),
    row(
        Op::Call(Func::Sigmoid),
        "derivative of sigmoid",
        "d(sigmoid(U)) = sigmoid(U).*(1 - sigmoid(U)).*dU",
        d_elementwise,
    ),
    row(
        Op::Call(Func::Softplus),
        "derivative of softplus",
        "d(softplus(U)) = sigmoid(U).*dU",
        d_elementwise,
    ),
    row(
        Op::Call(Func::Sum),
        "derivative of sum",
        "d(sum(U)) = sum(dU)",
        d_linear_call,
    ),
    row(
        Op::Call(Func::Tr),
        "derivative of the trace",
        "d(tr(U)) = tr(dU)",
        d_linear_call,
    ),
    row(
        Op::Call(Func::DiagMat),
        "derivative of diag",
        "d(diag(u)) = diag(du)",
        d_linear_call,
    ),
    row(
        Op::Call(Func::DiagVec),
        "derivative of diag",
        "d(diag(U)) = diag(dU)",
        d_linear_call,
    ),
    row(
        Op::Call(Func::Vec),
        "derivative of vec",
        "d(vec(U)) = vec(dU)",
        d_linear_call,
    ),
    row(
        Op::Call(Func::Norm2),
        "derivative of norm2",
        "d(norm2(U)) = sum(U.*dU)/norm2(U)",
        d_norm2,
    ),
    row(
        Op::Call(Func::Norm1),
        "derivative of norm1",
        "d(norm1(U)) = sum(sign(U).*dU)",
        d_norm1,
    ),
    row(
        Op::Call(Func::Softmax),
        "derivative of softmax",
        "d(softmax(u)) = s.*(du - s'*du) with s = softmax(u)",
        d_softmax,
    ),
    row(
        Op::Call(Func::Logsumexp),
        "derivative of logsumexp",
        "d(logsumexp(u)) = softmax(u)'*du",
        d_logsumexp,
    ),
    row(
        Op::Call(Func::Det),
        "Jacobi's formula",
        "d(det(U)) = det(U)*tr(inv(U)*dU)",
        d_det,
    ),
    row(
        Op::Call(Func::Logdet),
        "derivative of logdet",
        "d(logdet(U)) = tr(inv(U)*dU)",
        d_logdet,
    ),
    row(
        Op::Call(Func::Inv),
        "derivative of the inverse",
        "d(inv(U)) = -inv(U)*dU*inv(U)",
        d_inv,
    ),
];

/// The rule for a node's operation.
pub fn rule(g: &Graph, id: Id) -> &'static Rule {
    let op = op_of(g.node(id));
    RULES.iter().find(|r| r.op == op).unwrap_or(&RULES[0])
}

fn d_add(g: &mut Graph, id: Id, dc: &[Option<Id>]) -> Result<Option<Id>, DiffError> {
    let ts = g.children(id).to_vec();
    let shape = g.shape(id);
    let mut terms = Vec::new();
    for (t, dt) in ts.iter().zip(dc) {
        let Some(dt) = *dt else { continue };
        // A 1×1 term broadcast into a larger sum changes every entry alike.
        terms.push(if g.is_scalar(*t) && !g.is_scalar(id) {
            let ones = g.ones(shape);
            g.mul(&[dt, ones])
        } else {
            dt
        });
    }
    Ok(Some(g.add(&terms)))
}

/// The product rule, for a product built by `join`: each factor in turn replaced by its
/// differential.
fn product_rule(
    g: &mut Graph,
    id: Id,
    dc: &[Option<Id>],
    join: fn(&mut Graph, &[Id]) -> Id,
) -> Result<Option<Id>, DiffError> {
    let fs = g.children(id).to_vec();
    let mut terms = Vec::new();
    for (i, dfi) in dc.iter().enumerate() {
        let Some(dfi) = *dfi else { continue };
        let mut factors = fs.clone();
        factors[i] = dfi;
        terms.push(join(g, &factors));
    }
    Ok(Some(g.add(&terms)))
}

fn d_mul(g: &mut Graph, id: Id, dc: &[Option<Id>]) -> Result<Option<Id>, DiffError> {
    product_rule(g, id, dc, |g, fs| g.mul(fs))
}

fn d_had(g: &mut Graph, id: Id, dc: &[Option<Id>]) -> Result<Option<Id>, DiffError> {
    product_rule(g, id, dc, |g, fs| g.had(fs))
}

fn d_pow(g: &mut Graph, id: Id, dc: &[Option<Id>]) -> Result<Option<Id>, DiffError> {
    let Node::Pow([b, p]) = *g.node(id) else {
        return Ok(None);
    };
    let mut terms = Vec::new();
    if let Some(db) = dc[0] {
        let pm1 = minus_one(g, p);
        let bp = g.pow(b, pm1);
        terms.push(g.mul(&[p, bp, db]));
    }
    if let Some(dp) = dc[1] {
        let lb = g.func(Func::Log, b);
        terms.push(g.mul(&[id, lb, dp]));
    }
    Ok(Some(g.add(&terms)))
}

fn d_epow(g: &mut Graph, id: Id, dc: &[Option<Id>]) -> Result<Option<Id>, DiffError> {
    let Node::EPow([u, p]) = *g.node(id) else {
        return Ok(None);
    };
    let mut terms = Vec::new();
    if let Some(du) = dc[0] {
        let pm1 = minus_one(g, p);
        let up = g.epow(u, pm1);
        let local = g.mul(&[p, up]);
        terms.push(g.had(&[local, du]));
    }
    if let Some(dp) = dc[1] {
        let lu = g.func(Func::Log, u);
        let h = g.had(&[id, lu]);
        terms.push(g.mul(&[dp, h]));
    }
    Ok(Some(g.add(&terms)))
}

fn d_transpose(g: &mut Graph, _id: Id, dc: &[Option<Id>]) -> Result<Option<Id>, DiffError> {
    Ok(dc[0].map(|da| g.t(da)))
}

fn d_kron(g: &mut Graph, id: Id, dc: &[Option<Id>]) -> Result<Option<Id>, DiffError> {
    let Node::Kron([a, b]) = *g.node(id) else {
        return Ok(None);
    };
    let mut terms = Vec::new();
    if let Some(da) = dc[0] {
        terms.push(g.kron(da, b));
    }
    if let Some(db) = dc[1] {
        terms.push(g.kron(a, db));
    }
    Ok(Some(g.add(&terms)))
}

fn d_elementwise(g: &mut Graph, id: Id, dc: &[Option<Id>]) -> Result<Option<Id>, DiffError> {
    let (&Node::Call(f, u), Some(du)) = (g.node(id), dc[0]) else {
        return Ok(None);
    };
    Ok(elementwise_derivative(g, f, u, id).map(|local| g.had(&[local, du])))
}

fn d_linear_call(g: &mut Graph, id: Id, dc: &[Option<Id>]) -> Result<Option<Id>, DiffError> {
    let (&Node::Call(f, _), Some(du)) = (g.node(id), dc[0]) else {
        return Ok(None);
    };
    Ok(Some(g.func(f, du)))
}

/// The operand of a call and its differential.
fn call_operand(g: &Graph, id: Id, dc: &[Option<Id>]) -> Option<(Id, Id)> {
    match (g.node(id), dc[0]) {
        (Node::Call(_, u), Some(du)) => Some((*u, du)),
        _ => None,
    }
}

fn d_norm2(g: &mut Graph, id: Id, dc: &[Option<Id>]) -> Result<Option<Id>, DiffError> {
    let Some((u, du)) = call_operand(g, id, dc) else {
        return Ok(None);
    };
    let ip = g.inner(u, du);
    Ok(Some(g.div(ip, id)))
}

fn d_norm1(g: &mut Graph, id: Id, dc: &[Option<Id>]) -> Result<Option<Id>, DiffError> {
    let Some((u, du)) = call_operand(g, id, dc) else {
        return Ok(None);
    };
    let s = g.func(Func::Sign, u);
    Ok(Some(g.inner(s, du)))
}

fn d_softmax(g: &mut Graph, id: Id, dc: &[Option<Id>]) -> Result<Option<Id>, DiffError> {
    let Some((_, du)) = call_operand(g, id, dc) else {
        return Ok(None);
    };
    let st = g.t(id);
    let sd = g.mul(&[st, du]);
    let diff = g.sub(du, sd);
    Ok(Some(g.had(&[id, diff])))
}

fn d_logsumexp(g: &mut Graph, id: Id, dc: &[Option<Id>]) -> Result<Option<Id>, DiffError> {
    let Some((u, du)) = call_operand(g, id, dc) else {
        return Ok(None);
    };
    let s = g.func(Func::Softmax, u);
    Ok(Some(g.inner(s, du)))
}

fn d_det(g: &mut Graph, id: Id, dc: &[Option<Id>]) -> Result<Option<Id>, DiffError> {
    let Some(tr) = d_logdet(g, id, dc)? else {
        return Ok(None);
    };
    Ok(Some(g.mul(&[id, tr])))
}

fn d_logdet(g: &mut Graph, id: Id, dc: &[Option<Id>]) -> Result<Option<Id>, DiffError> {
    let Some((u, du)) = call_operand(g, id, dc) else {
        return Ok(None);
    };
    let inv = g.func(Func::Inv, u);
    let m = g.mul(&[inv, du]);
    Ok(Some(g.func(Func::Tr, m)))
}

fn d_inv(g: &mut Graph, id: Id, dc: &[Option<Id>]) -> Result<Option<Id>, DiffError> {
    let Some((_, du)) = call_operand(g, id, dc) else {
        return Ok(None);
    };
    let m = g.mul(&[id, du, id]);
    Ok(Some(g.neg(m)))
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

/// dY of node `id` from its operands' differentials, by its rule; zero of its shape
/// when the rule gives none.
fn apply_rule(g: &mut Graph, id: Id, dc: &[Option<Id>]) -> Result<Id, DiffError> {
    let done = (rule(g, id).apply)(g, id, dc)?;
    Ok(match done {
        Some(d) => d,
        None => {
            let s = g.shape(id);
            g.zero(s)
        }
    })
}

// ---------------------------------------------------------------------------------------
// Forward: the differential.

/// The differential of `f` when `var` changes by `seed` (shaped like `var`): dF, linear
/// in the seed. By a scalar with seed 1 it is df/ds.
pub fn differential(g: &mut Graph, f: Id, var: Symbol, seed: Id) -> Result<Id, DiffError> {
    let v = g.sym(var);
    let dep = g.depends_on(f, var);
    if !dep[f.idx()] {
        let s = g.shape(f);
        return Ok(g.zero(s));
    }
    let mut d: HashMap<Id, Id> = HashMap::new();
    for id in g.reachable(&[f]).into_iter().filter(|id| dep[id.idx()]) {
        let did = if id == v {
            seed
        } else {
            let dc: Vec<Option<Id>> = g
                .children(id)
                .iter()
                .map(|c| dep[c.idx()].then(|| d[c]))
                .collect();
            apply_rule(g, id, &dc)?
        };
        d.insert(id, did);
    }
    Ok(d[&f])
}

/// The derivative of any `f` by a scalar `var`, shaped like `f`: the differential with
/// seed 1.
pub fn tangent(g: &mut Graph, f: Id, var: Symbol) -> Result<Id, DiffError> {
    let one = g.num(1.0);
    differential(g, f, var, one)
}

// ---------------------------------------------------------------------------------------
// Kron form: the Jacobian of vec(L) by vec(dX) for a differential L linear in dX.

/// The number of entries of a shape, as a size.
fn numel(g: &mut Graph, s: Shape) -> Dim {
    g.dims.product(s.rows, s.cols)
}

/// vec(u): a column as it is, a row transposed, a matrix's columns stacked.
fn vec_of(g: &mut Graph, u: Id) -> Id {
    match g.rank(u) {
        Rank::Scalar => u,
        Rank::Vector => entries(g, u),
        Rank::Matrix => g.func(Func::Vec, u),
    }
}

/// `d*J`, with d multiplied into each term of a sum J: `diag(s)*(I - ones*s')` is
/// `diag(s) - s*s'`.
fn distribute(g: &mut Graph, d: Id, j: Id) -> Id {
    match g.node(j).clone() {
        // A 1×1 term of a larger sum is broadcast (`A + alpha`): d*alpha would be wrong,
        // so such a sum stays whole.
        Node::Add(ts) if !g.is_scalar(j) && !ts.iter().any(|t| g.is_scalar(*t)) => {
            let mut out = Vec::with_capacity(ts.len());
            for t in ts.iter() {
                out.push(g.mul(&[d, *t]));
            }
            g.add(&out)
        }
        _ => g.mul(&[d, j]),
    }
}

/// The Jacobian J of vec(l) by vec(hole), for an expression `l` linear in `hole`:
/// vec(l) = J*vec(hole). Each linear operation has its identification rule
/// (Magnus–Neudecker): vec(A*dX*B) = kron(B', A)*vec(dX), vec(dX') = K*vec(dX),
/// vec(a.*dX) = diag(vec(a))*vec(dX), …
pub(crate) fn vectorize(g: &mut Graph, l: Id, hole: Id) -> Result<Id, DiffError> {
    let hs = g.shape(hole);
    let n = numel(g, hs);
    let dep = Deps::Dense(depends_on_node(g, l, hole));
    if !dep.has(l) {
        let ls = g.shape(l);
        let rows = numel(g, ls);
        return Ok(g.zero(Shape::new(rows, n)));
    }
    let mut jac: HashMap<Id, Id> = HashMap::new();
    for id in g.reachable(&[l]).into_iter().filter(|id| dep.has(*id)) {
        let j = if id == hole {
            g.identity(n)
        } else {
            vectorize_step(g, id, &jac, &dep)?
        };
        jac.insert(id, j);
    }
    Ok(jac[&l])
}

fn not_linear() -> DiffError {
    DiffError::Unsupported("identifying a differential that is not linear".into())
}

/// The Jacobian of one linear node from its operands' Jacobians.
fn vectorize_step(
    g: &mut Graph,
    id: Id,
    jac: &HashMap<Id, Id>,
    dep: &Deps,
) -> Result<Id, DiffError> {
    let node = g.node(id).clone();
    let d = |c: &Id| dep.has(*c);
    let shape = g.shape(id);
    let mut terms: Vec<Id> = Vec::new();
    match node {
        Node::Add(ts) => {
            let rows = numel(g, shape);
            for t in ts.iter().filter(|t| d(t)) {
                terms.push(if g.is_scalar(*t) && !g.is_scalar(id) {
                    // A broadcast 1×1 term adds to every entry.
                    let ones = g.ones(Shape::new(rows, Dim::One));
                    g.mul(&[ones, jac[t]])
                } else {
                    jac[t]
                });
            }
        }
        Node::Mul(fs) => {
            let p = g.parts(id);
            for (i, &f) in fs.iter().enumerate() {
                if !d(&f) || !g.is_scalar(f) {
                    continue;
                }
                // vec(s*M) = vec(M)*ds for a 1×1 factor s.
                let others: Vec<Id> = fs
                    .iter()
                    .enumerate()
                    .filter(|&(k, _)| k != i)
                    .map(|(_, &x)| x)
                    .collect();
                let rest = g.mul(&others);
                let v = vec_of(g, rest);
                terms.push(g.mul(&[v, jac[&f]]));
            }
            let mut front = vec![g.num(p.coef)];
            front.extend(p.scalars.iter().copied());
            let chain = p.chain;
            for (k, &c) in chain.iter().enumerate() {
                if !d(&c) {
                    continue;
                }
                // vec(A*M*B) = kron(B', A)*vec(M)
                let cs = g.shape(c);
                let left = if k > 0 {
                    g.mul(&chain[..k])
                } else {
                    g.identity(cs.rows)
                };
                let right = if k + 1 < chain.len() {
                    let b = g.mul(&chain[k + 1..]);
                    g.t(b)
                } else {
                    g.identity(cs.cols)
                };
                let kr = g.kron(right, left);
                let mut factors = front.clone();
                factors.push(kr);
                factors.push(jac[&c]);
                terms.push(g.mul(&factors));
            }
        }
        Node::Had(fs) => {
            for (i, &f) in fs.iter().enumerate().filter(|(_, f)| d(f)) {
                let others: Vec<Id> = fs
                    .iter()
                    .enumerate()
                    .filter(|&(k, _)| k != i)
                    .map(|(_, &x)| x)
                    .collect();
                let h = g.had(&others);
                terms.push(if g.is_scalar(f) && !g.is_scalar(id) {
                    let v = vec_of(g, h);
                    g.mul(&[v, jac[&f]])
                } else if g.is_scalar(h) {
                    g.mul(&[h, jac[&f]])
                } else {
                    let v = vec_of(g, h);
                    let dm = g.func(Func::DiagMat, v);
                    distribute(g, dm, jac[&f])
                });
            }
        }
        Node::Transpose(a) => {
            terms.push(if g.rank(a) == Rank::Matrix {
                let s = g.shape(a);
                let k = g.commutation(s.rows, s.cols);
                g.mul(&[k, jac[&a]])
            } else {
                jac[&a]
            });
        }
        Node::Call(f, u) => {
            let us = g.shape(u);
            let ju = jac[&u];
            terms.push(match f {
                Func::Vec => ju,
                Func::Sum => {
                    let n = numel(g, us);
                    let ones = g.ones(Shape::new(Dim::One, n));
                    g.mul(&[ones, ju])
                }
                Func::Tr => {
                    let eye = g.identity(us.rows);
                    let v = g.func(Func::Vec, eye);
                    let row = g.t(v);
                    g.mul(&[row, ju])
                }
                // vec(diag(u)) = diag(vec(I))*kron(ones, I)*u
                Func::DiagMat => {
                    let eye = g.identity(us.rows);
                    let v = g.func(Func::Vec, eye);
                    let select = g.func(Func::DiagMat, v);
                    let ones = g.ones(Shape::new(us.rows, Dim::One));
                    let spread = g.kron(ones, eye);
                    g.mul(&[select, spread, ju])
                }
                // diag(U) = kron(ones', I)*diag(vec(I))*vec(U)
                Func::DiagVec => {
                    let eye = g.identity(us.rows);
                    let v = g.func(Func::Vec, eye);
                    let select = g.func(Func::DiagMat, v);
                    let ones = g.ones(Shape::new(Dim::One, us.rows));
                    let gather = g.kron(ones, eye);
                    g.mul(&[gather, select, ju])
                }
                _ => return Err(not_linear()),
            });
        }
        // vec(kron(A, B)) = (I_n ⊗ K_{q,m} ⊗ I_p)(vec(A) ⊗ vec(B)) for A m×n, B p×q.
        Node::Kron([a, b]) => {
            let (sa, sb) = (g.shape(a), g.shape(b));
            let eye_n = g.identity(sa.cols);
            let k = g.commutation(sb.cols, sa.rows);
            let eye_p = g.identity(sb.rows);
            let inner = g.kron(eye_n, k);
            let perm = g.kron(inner, eye_p);
            if d(&a) {
                let mn = numel(g, sa);
                let eye = g.identity(mn);
                let vb = vec_of(g, b);
                let spread = g.kron(eye, vb);
                terms.push(g.mul(&[perm, spread, jac[&a]]));
            }
            if d(&b) {
                let pq = numel(g, sb);
                let eye = g.identity(pq);
                let va = vec_of(g, a);
                let spread = g.kron(va, eye);
                terms.push(g.mul(&[perm, spread, jac[&b]]));
            }
        }
        _ => return Err(not_linear()),
    }
    Ok(g.add(&terms))
}

/// Which nodes depend on what is being differentiated by: a table over the whole graph,
/// or a set for a small differential.
enum Deps {
    Dense(Vec<bool>),
    Sparse(rustc_hash::FxHashSet<Id>),
}

impl Deps {
    fn has(&self, id: Id) -> bool {
        match self {
            Deps::Dense(v) => v.get(id.idx()).copied().unwrap_or(false),
            Deps::Sparse(s) => s.contains(&id),
        }
    }
}

/// Which nodes reachable from `root` contain the node `leaf`.
fn depends_on_node(g: &Graph, root: Id, leaf: Id) -> Vec<bool> {
    let mut dep = vec![false; g.len()];
    for id in g.reachable(&[root]) {
        dep[id.idx()] = id == leaf || g.children(id).iter().any(|c| dep[c.idx()]);
    }
    dep
}

/// The numerator-layout Jacobian of vec(f) by vec(var): numel(f)×numel(var), in
/// `kron` form where a matrix is involved.
pub fn jacobian(g: &mut Graph, f: Id, var: Symbol) -> Result<Id, DiffError> {
    let v = g.sym(var);
    let vs = g.shape(v);
    let hole = g.hole(0, vs);
    let df = differential(g, f, var, hole)?;
    vectorize(g, df, hole)
}

// ---------------------------------------------------------------------------------------
// Reverse: the gradient, each rule's differential transposed.

/// The gradient of a 1×1 `f` by `var`, shaped like `var`: reverse mode.
pub fn gradient(g: &mut Graph, f: Id, var: Symbol) -> Result<Id, DiffError> {
    let v = g.sym(var);
    let var_shape = g.shape(v);
    let dep = Deps::Dense(g.depends_on(f, var));
    if !dep.has(f) {
        return Ok(g.zero(var_shape));
    }
    let one = g.num(1.0);
    let mut found = adjoints(g, f, one, &dep, false, |id| id == v)?;
    Ok(found.remove(&v).unwrap_or_else(|| g.zero(var_shape)))
}

/// Pushes the adjoint `seed` of `root` down to the nodes `stop` accepts (which are not
/// opened), through the nodes `dep` marks; returns the adjoint reaching each of them.
/// With `linear`, `root` is a differential and only the linear operations' transposition
/// rules apply.
fn adjoints(
    g: &mut Graph,
    root: Id,
    seed: Id,
    dep: &Deps,
    linear: bool,
    stop: impl Fn(Id) -> bool,
) -> Result<HashMap<Id, Id>, DiffError> {
    let order: Vec<Id> = g
        .reachable_where(&[root], |id| dep.has(id))
        .into_iter()
        .rev()
        .collect();
    let mut pending: HashMap<Id, Vec<Id>> = HashMap::new();
    pending.insert(root, vec![seed]);
    let mut found = HashMap::new();
    for id in order {
        let Some(contributions) = pending.remove(&id) else {
            continue;
        };
        let ybar = g.add(&contributions);
        if stop(id) {
            found.insert(id, ybar);
            continue;
        }
        let contributions = if linear {
            transpose_linear(g, id, ybar, dep)?.ok_or_else(not_linear)?
        } else {
            adjoint(g, id, ybar, dep)?
        };
        for (child, adj) in contributions {
            pending.entry(child).or_default().push(adj);
        }
    }
    Ok(found)
}

/// The adjoint contributions of node `id` to its operands, given its own adjoint: the
/// transposition rule of a linear operation, or else the transpose of the node's
/// differential by its rule.
fn adjoint(g: &mut Graph, id: Id, ybar: Id, dep: &Deps) -> Result<Vec<(Id, Id)>, DiffError> {
    if let Some(out) = transpose_linear(g, id, ybar, dep)? {
        return Ok(out);
    }
    // The differential with a placeholder for each dependent operand's differential,
    // transposed: what reaches each placeholder is that operand's adjoint.
    let children = g.children(id).to_vec();
    let mut holes: Vec<Option<Id>> = Vec::with_capacity(children.len());
    for (k, c) in children.iter().enumerate() {
        holes.push(if dep.has(*c) {
            let s = g.shape(*c);
            Some(g.hole(k as u32, s))
        } else {
            None
        });
    }
    let Some(dy) = (rule(g, id).apply)(g, id, &holes)? else {
        return Ok(Vec::new());
    };
    // Only the part of the differential with placeholders in it is walked (not the
    // forward pass it refers to): a set, not a table the size of the graph.
    let dep_l: rustc_hash::FxHashSet<Id> = g
        .reachable_where(&[dy], |x| g.has_hole(x))
        .into_iter()
        .collect();
    let dep_l = Deps::Sparse(dep_l);
    let holes_only = |x: Id| holes.contains(&Some(x));
    let found = adjoints(g, dy, ybar, &dep_l, true, holes_only)?;
    let mut out = Vec::new();
    for (k, h) in holes.iter().enumerate() {
        if let Some(h) = h
            && let Some(&adj) = found.get(h)
        {
            out.push((children[k], adj));
        }
    }
    Ok(out)
}

/// The transposition rules of the linear operations: for y = L(x, …) linear (or, for
/// products, linear in each factor), what the adjoint of y gives each dependent
/// operand. `None` for a node that is not one of them.
fn transpose_linear(
    g: &mut Graph,
    id: Id,
    ybar: Id,
    dep: &Deps,
) -> Result<Option<Vec<(Id, Id)>>, DiffError> {
    let node = g.node(id).clone();
    let d = |c: &Id| dep.has(*c);
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
            for (i, &f) in fs.iter().enumerate() {
                if !d(&f) || !g.is_scalar(f) {
                    continue;
                }
                let others: Vec<Id> = fs
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, &x)| x)
                    .collect();
                let rest = g.mul(&others);
                let adj = if g.is_scalar(id) {
                    g.mul(&[ybar, rest])
                } else {
                    g.inner(ybar, rest)
                };
                out.push((f, adj));
            }
            let mut front: Vec<Id> = vec![g.num(parts.coef)];
            front.extend(parts.scalars.iter().copied());
            let chain = parts.chain;
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
                let h = g.had(&others);
                // A broadcast 1×1 factor meets every entry.
                let adj = if g.is_scalar(*f) && !g.is_scalar(id) {
                    g.func(Func::Sum, h)
                } else {
                    h
                };
                out.push((*f, adj));
            }
        }
        Node::Transpose(a) => out.push((a, g.t(ybar))),
        Node::Call(Func::Sum, u) => {
            let s = g.shape(u);
            let ones = g.ones(s);
            out.push((u, g.mul(&[ybar, ones])));
        }
        Node::Call(Func::Tr, u) => {
            let n = g.shape(u).rows;
            let eye = g.identity(n);
            out.push((u, g.mul(&[ybar, eye])));
        }
        Node::Call(Func::DiagMat, u) => out.push((u, g.func(Func::DiagVec, ybar))),
        Node::Call(Func::DiagVec, u) => out.push((u, g.func(Func::DiagMat, ybar))),
        Node::Call(Func::Vec, u) => {
            let s = g.shape(u);
            out.push((u, unvec(g, ybar, s)));
        }
        // The adjoint of kron by its Jacobian: vec(Ā) = J'*vec(Ȳ).
        Node::Kron(_) => {
            let children = g.children(id).to_vec();
            for (k, &c) in children.iter().enumerate() {
                if !d(&c) {
                    continue;
                }
                let cs = g.shape(c);
                let hole = g.hole(k as u32, cs);
                let mut dc = vec![None; children.len()];
                dc[k] = Some(hole);
                let l = apply_rule(g, id, &dc)?;
                let j = vectorize(g, l, hole)?;
                let jt = g.t(j);
                let vy = vec_of(g, ybar);
                let v = g.mul(&[jt, vy]);
                out.push((c, unvec(g, v, cs)));
            }
        }
        _ => return Ok(None),
    }
    Ok(Some(out))
}

/// The m×n matrix whose columns, stacked, are the column `v`: kron(vec(I_n)', I_m) *
/// kron(I_n, v); a vector's entries as that vector.
fn unvec(g: &mut Graph, v: Id, s: Shape) -> Id {
    let one = |g: &Graph, d: Dim| g.dims.find(d) == Dim::One;
    if one(g, s.cols) {
        return v;
    }
    if one(g, s.rows) {
        return g.t(v);
    }
    let eye_n = g.identity(s.cols);
    let eye_m = g.identity(s.rows);
    let vi = g.func(Func::Vec, eye_n);
    let row = g.t(vi);
    let left = g.kron(row, eye_m);
    let right = g.kron(eye_n, v);
    g.mul(&[left, right])
}

// ---------------------------------------------------------------------------------------
// What users ask for.

/// The derivative of `f` by `var`, laid out as `layout` asks, simplified.
pub fn derivative(g: &mut Graph, f: Id, var: Symbol, layout: Layout) -> Result<Id, DiffError> {
    g.focus = Some(var);
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
        _ => {
            let j = jacobian(g, f, var)?;
            let j = symmetrize_jacobian(g, j, var)?;
            let j = g.simplify(j, true);
            if layout == Layout::Denominator {
                g.t(j)
            } else {
                j
            }
        }
    };
    Ok(g.simplify(raw, true))
}

/// The Hessian of a scalar `f`: d²f/ds² by a scalar, n×n by a vector, mn×mn (the
/// Jacobian of vec of the gradient, in `kron` form) by a matrix.
pub fn hessian(g: &mut Graph, f: Id, var: Symbol) -> Result<Id, DiffError> {
    if !g.is_scalar(f) {
        let mut names = crate::shape::DimNames::default();
        let shape = names.shape(&g.dims, g.shape(f));
        return Err(DiffError::NotScalar(shape));
    }
    g.focus = Some(var);
    let v = g.sym(var);
    let raw = match g.rank(v) {
        Rank::Scalar => {
            let d = tangent(g, f, var)?;
            tangent(g, d, var)?
        }
        _ => {
            let grad = gradient(g, f, var)?;
            let grad = symmetrize(g, grad, var);
            let grad = g.simplify(grad, false);
            let h = jacobian(g, grad, var)?;
            let h = symmetrize_jacobian(g, h, var)?;
            // A Hessian is symmetric; averaging with its transpose often shortens it.
            let ht = g.t(h);
            let avg = g.add(&[h, ht]);
            let avg = g.scale(0.5, avg);
            let (h, avg) = (g.simplify(h, true), g.simplify(avg, true));
            if g.cost(avg) < g.cost(h) { avg } else { h }
        }
    };
    Ok(g.simplify(raw, true))
}

/// The symbol `dX` for the variable `X`: shaped and declared like X (a symmetric X has
/// a symmetric dX), remembered as X's differential.
pub fn differential_symbol(g: &mut Graph, var: Symbol) -> Result<Symbol, DiffError> {
    let info = g.symbol(var).clone();
    let name = format!("d{}", info.name);
    if let Some(s) = g.lookup(&name) {
        if g.differential_of.get(&s) == Some(&var) {
            return Ok(s);
        }
        return Err(DiffError::NameTaken(format!(
            "the differential form writes the differential of {} as {name}, but the expression has a symbol {name}: rename it",
            info.name
        )));
    }
    let d = g.declare_shaped(&name, info.kind, info.shape);
    g.differential_of.insert(d, var);
    Ok(d)
}

/// The differential form (`--form differential`): dF in terms of dX for `diff`, the
/// Hessian applied to dX (the differential of the gradient) for `hess`.
pub fn differential_form(
    g: &mut Graph,
    f: Id,
    var: Symbol,
    hessian: bool,
) -> Result<Id, DiffError> {
    g.focus = Some(var);
    let dvar = differential_symbol(g, var)?;
    let seed = g.sym(dvar);
    let of = if hessian {
        if !g.is_scalar(f) {
            let mut names = crate::shape::DimNames::default();
            let shape = names.shape(&g.dims, g.shape(f));
            return Err(DiffError::NotScalar(shape));
        }
        let grad = gradient(g, f, var)?;
        let grad = symmetrize(g, grad, var);
        g.simplify(grad, false)
    } else {
        f
    };
    let d = differential(g, of, var, seed)?;
    Ok(g.simplify(d, true))
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
    let jk = match commuted(g, j) {
        Some(jk) => jk,
        None => {
            let s = g.symbol(var).shape;
            let k = g.commutation(s.rows, s.cols);
            g.mul(&[j, k])
        }
    };
    let s = g.add(&[j, jk]);
    Ok(g.scale(0.5, s))
}

/// `J*K` written without K where the form allows: a Jacobian by vec(X) turned into the
/// Jacobian by vec(X'), for sums and products ending in `kron(a', B)` or `vec(G)'`.
fn commuted(g: &mut Graph, j: Id) -> Option<Id> {
    let one = |g: &Graph, d| g.dims.find(d) == Dim::One;
    match g.node(j).clone() {
        Node::Zero(..) => Some(j),
        Node::Add(ts) => {
            let mut out = Vec::with_capacity(ts.len());
            for t in ts.iter() {
                out.push(commuted(g, *t)?);
            }
            Some(g.add(&out))
        }
        Node::Mul(fs) => {
            let (last, front) = fs.split_last()?;
            let mut factors = front.to_vec();
            factors.push(commuted(g, *last)?);
            Some(g.mul(&factors))
        }
        // (a' ⊗ B) K = B ⊗ a' and (A ⊗ b') K = b' ⊗ A for a row a' or b'.
        Node::Kron([a, b]) if one(g, g.shape(a).rows) || one(g, g.shape(b).rows) => {
            Some(g.kron(b, a))
        }
        Node::Transpose(c) => {
            let cc = commuted_column(g, c)?;
            Some(g.t(cc))
        }
        _ => None,
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

/// A vector node as a column of its entries.
pub(crate) fn entries(g: &mut Graph, id: Id) -> Id {
    if g.dims.is_row(g.shape(id)) {
        g.t(id)
    } else {
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_one_rule() {
        let mut seen = std::collections::HashSet::new();
        for r in RULES {
            assert!(seen.insert(format!("{:?}", r.op)), "{:?} twice", r.op);
            assert!(r.formula.starts_with('d'), "{}", r.formula);
        }
        for (_, f) in crate::graph::FUNCTION_NAMES {
            assert!(
                RULES.iter().any(|r| r.op == Op::Call(f)),
                "{f:?} has no rule"
            );
        }
        assert!(RULES.iter().any(|r| r.op == Op::Call(Func::DiagVec)));
    }
}

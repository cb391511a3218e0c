//! The simplifier's named identities for function calls: each rule has a kebab-case
//! name, an example of what it rewrites and what `simplify` then prints, and the
//! function that applies it. `Graph::call` tries them in order as it builds `f(u)`;
//! a test runs every example, and checks it numerically.

use crate::graph::{Func, Graph, Id, Node};

/// One identity applied when `f(u)` is built: `apply` gives the rewritten node, or
/// `None` where the rule does not apply. (`name` and `example` are read by the tests,
/// which run every example.)
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct CallRule {
    /// The rule's name, kebab-case.
    pub(crate) name: &'static str,
    /// An expression the rule rewrites, and what `jacob simplify` prints for it.
    pub(crate) example: (&'static str, &'static str),
    /// The rewrite.
    pub(crate) apply: fn(&mut Graph, Func, Id) -> Option<Id>,
}

/// The identities for `f(u)`, tried in this order.
pub(crate) const CALL_RULES: &[CallRule] = &[
    CallRule {
        name: "fold-number",
        example: ("exp(0) + sqrt(4) + abs(-2)", "5"),
        apply: fold_number,
    },
    CallRule {
        name: "softplus-zero",
        example: ("softplus(0)", "log(2)"),
        apply: softplus_zero,
    },
    CallRule {
        name: "sqrt-scalar",
        example: ("sqrt(alpha)^3*sqrt(alpha)", "alpha^2"),
        apply: sqrt_scalar,
    },
    CallRule {
        name: "scalar-argument",
        example: (
            "sum(alpha) + tr(beta) + norm2(gamma)",
            "abs(gamma) + alpha + beta",
        ),
        apply: scalar_argument,
    },
    CallRule {
        name: "zero-argument",
        example: ("sum(x - x) + norm2(A - A)", "0"),
        apply: zero_argument,
    },
    CallRule {
        name: "constant-argument",
        example: ("logsumexp(x - x)", "log(rows(x))"),
        apply: constant_argument,
    },
    CallRule {
        name: "identity-argument",
        example: ("tr(I + A - A) + det(I + A - A)", "1 + rows(A)"),
        apply: identity_argument,
    },
    CallRule {
        name: "log-exp",
        example: ("log(exp(x))", "x"),
        apply: log_exp,
    },
    CallRule {
        name: "exp-log",
        example: ("exp(log(x))", "x"),
        apply: exp_log,
    },
    CallRule {
        name: "log-det",
        example: ("log(det(A))", "logdet(A)"),
        apply: log_det,
    },
    CallRule {
        name: "log-sigmoid",
        example: ("log(sigmoid(x))", "-softplus(-x)"),
        apply: log_sigmoid,
    },
    CallRule {
        name: "log-one-minus-sigmoid",
        example: ("log(1 - sigmoid(x))", "-softplus(x)"),
        apply: log_one_minus_sigmoid,
    },
    CallRule {
        name: "log-one-plus-exp",
        example: ("log(1 + exp(x))", "softplus(x)"),
        apply: log_one_plus_exp,
    },
    CallRule {
        name: "log-softmax",
        example: ("log(softmax(x))", "x - logsumexp(x)"),
        apply: log_softmax,
    },
    CallRule {
        name: "log-sum-exp",
        example: ("log(sum(exp(x)))", "logsumexp(x)"),
        apply: log_sum_exp,
    },
    CallRule {
        name: "exp-logsumexp",
        example: ("exp(logsumexp(x))", "sum(exp(x))"),
        apply: exp_logsumexp,
    },
    CallRule {
        name: "inv-inv",
        example: ("inv(inv(A))", "A"),
        apply: inv_inv,
    },
    CallRule {
        name: "idempotent",
        example: ("relu(relu(x)) + abs(abs(y))", "abs(y) + relu(x)"),
        apply: idempotent,
    },
    CallRule {
        name: "nonnegative-argument",
        example: ("relu(exp(x)) + abs(sigmoid(y))", "exp(x) + sigmoid(y)"),
        apply: nonnegative_argument,
    },
    CallRule {
        name: "transpose-inside",
        example: ("tr(A') + sum(exp(B'))", "sum(exp(B)) + tr(A)"),
        apply: transpose_inside,
    },
    CallRule {
        name: "diag-diag",
        example: ("diag(diag(x))", "x"),
        apply: diag_diag,
    },
    CallRule {
        name: "scalars-out",
        example: ("tr(alpha*A) + sum(2*x)", "2*sum(x) + alpha*tr(A)"),
        apply: scalars_out,
    },
    CallRule {
        name: "trace-outer",
        example: ("tr(x*y')", "y'*x"),
        apply: trace_outer,
    },
];

/// The value of a function at a number, where it is a number worth writing: `exp(0)`
/// is 1, but `exp(1)` stays as it is.
fn fold_number(g: &mut Graph, f: Func, u: Id) -> Option<Id> {
    let v = g.as_num(u)?;
    let r = fold(f, v)?;
    (r.is_finite() && (r.fract() == 0.0 || !is_transcendental(f))).then(|| g.num(r))
}

/// `softplus(0)` is `log(2)`.
fn softplus_zero(g: &mut Graph, f: Func, u: Id) -> Option<Id> {
    if f != Func::Softplus || g.as_num(u) != Some(0.0) {
        return None;
    }
    let two = g.num(2.0);
    Some(g.call(Func::Log, two))
}

/// The square root of a 1×1 value is its power 1/2, so that powers of one base
/// combine: `sqrt(s)^3/s` is `s^0.5`.
fn sqrt_scalar(g: &mut Graph, f: Func, u: Id) -> Option<Id> {
    (f == Func::Sqrt && g.is_scalar(u) && g.as_num(u).is_none()).then(|| g.powf(u, 0.5))
}

/// Functions of a 1×1 argument: `sum(s)` is s, `norm2(s)` is `abs(s)`, `inv(s)` is
/// `s^-1`.
fn scalar_argument(g: &mut Graph, f: Func, u: Id) -> Option<Id> {
    use Func::*;
    if !g.is_scalar(u) {
        return None;
    }
    Some(match f {
        Sum | Tr | Det | Logsumexp | DiagMat | DiagVec | Vec => u,
        Norm2 | Norm1 => g.call(Abs, u),
        Inv => g.powf(u, -1.0),
        Logdet => g.call(Log, u),
        Softmax => g.num(1.0),
        _ => return None,
    })
}

/// Functions that are 0 at a zero array: `sum(0)`, `relu(0)`, `diag(0)`, … (of the
/// function's shape).
fn zero_argument(g: &mut Graph, f: Func, u: Id) -> Option<Id> {
    use Func::*;
    let zero_at_zero = matches!(
        f,
        Relu | Step
            | Sign
            | Sin
            | Tan
            | Tanh
            | Sqrt
            | Abs
            | Arcsin
            | Arctan
            | Sum
            | Norm2
            | Norm1
            | Tr
            | Det
            | DiagMat
            | DiagVec
            | Vec
    );
    if !(zero_at_zero && g.is_zero(u)) {
        return None;
    }
    let shape = g.call_shape(f, u);
    Some(g.zero(shape))
}

/// A function of an array with one value c in every entry (`ones`, a zero array,
/// `c*ones`): `exp(0)` of a vector is `ones`, `sum(ones)` its length, `softmax(0)`
/// is `ones/n`.
fn constant_argument(g: &mut Graph, f: Func, u: Id) -> Option<Id> {
    use Func::*;
    let c = g.broadcast_scalar(u)?;
    let shape = g.call_shape(f, u);
    let us = g.shape(u);
    let numel = {
        let (r, c) = (g.size(us.rows), g.size(us.cols));
        g.mul(&[r, c])
    };
    Some(match f {
        _ if f.is_elementwise() => {
            let fc = g.call(f, c);
            let ones = g.ones(shape);
            g.mul(&[fc, ones])
        }
        Sum => g.mul(&[c, numel]),
        Norm1 => {
            let a = g.call(Abs, c);
            g.mul(&[a, numel])
        }
        Norm2 => {
            let a = g.call(Abs, c);
            let root = g.powf(numel, 0.5);
            g.mul(&[a, root])
        }
        Logsumexp => {
            let l = g.call(Log, numel);
            g.add(&[c, l])
        }
        Softmax => {
            let inv = g.powf(numel, -1.0);
            let ones = g.ones(shape);
            g.mul(&[inv, ones])
        }
        DiagVec | Vec => {
            let ones = g.ones(shape);
            g.mul(&[c, ones])
        }
        DiagMat => {
            let eye = g.identity(us.rows);
            g.mul(&[c, eye])
        }
        Tr => {
            let n = g.size(us.rows);
            g.mul(&[c, n])
        }
        _ => return None,
    })
}

/// Functions of an identity: `tr(I)` is its size, `det(I)` 1, `inv(I)` I.
fn identity_argument(g: &mut Graph, f: Func, u: Id) -> Option<Id> {
    use Func::*;
    let Node::Identity(n) = *g.node(u) else {
        return None;
    };
    Some(match f {
        Sum | Tr => g.size(n),
        DiagVec => {
            let shape = g.call_shape(f, u);
            g.ones(shape)
        }
        Det => g.num(1.0),
        Logdet => g.num(0.0),
        Inv => u,
        _ => return None,
    })
}

/// The argument of `f(u)` when it is `inner(v)`.
fn arg_of(g: &Graph, u: Id, inner: Func) -> Option<Id> {
    match *g.node(u) {
        Node::Call(h, v) if h == inner => Some(v),
        _ => None,
    }
}

/// `log(exp(u))` is u.
fn log_exp(g: &mut Graph, f: Func, u: Id) -> Option<Id> {
    (f == Func::Log).then(|| arg_of(g, u, Func::Exp)).flatten()
}

/// `exp(log(u))` is u where it is defined (u > 0).
fn exp_log(g: &mut Graph, f: Func, u: Id) -> Option<Id> {
    (f == Func::Exp).then(|| arg_of(g, u, Func::Log)).flatten()
}

/// `log(det(A))` is `logdet(A)`.
fn log_det(g: &mut Graph, f: Func, u: Id) -> Option<Id> {
    let a = (f == Func::Log)
        .then(|| arg_of(g, u, Func::Det))
        .flatten()?;
    Some(g.call(Func::Logdet, a))
}

/// `log(sigmoid(v))` is `-softplus(-v)`.
fn log_sigmoid(g: &mut Graph, f: Func, u: Id) -> Option<Id> {
    let v = (f == Func::Log)
        .then(|| arg_of(g, u, Func::Sigmoid))
        .flatten()?;
    let nv = g.neg(v);
    let sp = g.call(Func::Softplus, nv);
    Some(g.neg(sp))
}

/// `log(1 - sigmoid(v))` is `-softplus(v)`.
fn log_one_minus_sigmoid(g: &mut Graph, f: Func, u: Id) -> Option<Id> {
    if f != Func::Log {
        return None;
    }
    let Node::Add(ts) = g.node(u).clone() else {
        return None;
    };
    let [a, b] = *ts else {
        return None;
    };
    for (one, rest) in [(a, b), (b, a)] {
        if g.as_num(one) != Some(1.0) {
            continue;
        }
        let p = g.parts(rest);
        if p.coef == -1.0
            && p.scalars.len() + p.chain.len() == 1
            && let Some(v) = arg_of(
                g,
                p.scalars.first().or(p.chain.first()).copied()?,
                Func::Sigmoid,
            )
        {
            let sp = g.call(Func::Softplus, v);
            return Some(g.neg(sp));
        }
    }
    None
}

/// `log(1 + exp(v))` is `softplus(v)`.
fn log_one_plus_exp(g: &mut Graph, f: Func, u: Id) -> Option<Id> {
    let v = (f == Func::Log).then(|| g.is_one_plus_exp(u)).flatten()?;
    Some(g.call(Func::Softplus, v))
}

/// `log(softmax(z))` is `z - logsumexp(z)` (and computes without overflow).
fn log_softmax(g: &mut Graph, f: Func, u: Id) -> Option<Id> {
    let z = (f == Func::Log)
        .then(|| arg_of(g, u, Func::Softmax))
        .flatten()?;
    let l = g.call(Func::Logsumexp, z);
    Some(g.sub(z, l))
}

/// `log(sum(exp(u)))` is `logsumexp(u)`.
fn log_sum_exp(g: &mut Graph, f: Func, u: Id) -> Option<Id> {
    let s = (f == Func::Log)
        .then(|| arg_of(g, u, Func::Sum))
        .flatten()?;
    let v = arg_of(g, s, Func::Exp)?;
    Some(g.call(Func::Logsumexp, v))
}

/// `exp(logsumexp(u))` is `sum(exp(u))`.
fn exp_logsumexp(g: &mut Graph, f: Func, u: Id) -> Option<Id> {
    let v = (f == Func::Exp)
        .then(|| arg_of(g, u, Func::Logsumexp))
        .flatten()?;
    let e = g.call(Func::Exp, v);
    Some(g.call(Func::Sum, e))
}

/// `inv(inv(A))` is A.
fn inv_inv(g: &mut Graph, f: Func, u: Id) -> Option<Id> {
    (f == Func::Inv).then(|| arg_of(g, u, Func::Inv)).flatten()
}

/// `relu(relu(u))` is `relu(u)`, `abs(abs(u))` is `abs(u)`.
fn idempotent(g: &mut Graph, f: Func, u: Id) -> Option<Id> {
    (matches!(f, Func::Relu | Func::Abs) && arg_of(g, u, f).is_some()).then_some(u)
}

/// `relu` and `abs` of a function that is never negative are that function.
fn nonnegative_argument(g: &mut Graph, f: Func, u: Id) -> Option<Id> {
    use Func::*;
    let Node::Call(h, _) = *g.node(u) else {
        return None;
    };
    let nonneg = match f {
        Relu => matches!(h, Abs | Exp | Sigmoid | Softplus),
        Abs => matches!(h, Exp | Sigmoid | Softplus | Relu),
        _ => false,
    };
    nonneg.then_some(u)
}

/// Through a transpose: `tr(A')` is `tr(A)`, `inv(A')` is `inv(A)'`, an elementwise
/// `f(A')` is `f(A)'`.
fn transpose_inside(g: &mut Graph, f: Func, u: Id) -> Option<Id> {
    use Func::*;
    let Node::Transpose(v) = *g.node(u) else {
        return None;
    };
    Some(match f {
        Det | Tr | Logdet | Sum | Norm2 | Norm1 | Logsumexp => g.call(f, v),
        Inv => {
            let i = g.call(Inv, v);
            g.t(i)
        }
        _ if f.is_elementwise() => {
            let inner = g.call(f, v);
            g.t(inner)
        }
        _ => return None,
    })
}

/// `diag(diag(u))` is u for a vector u.
fn diag_diag(g: &mut Graph, f: Func, u: Id) -> Option<Id> {
    (f == Func::DiagVec)
        .then(|| arg_of(g, u, Func::DiagMat))
        .flatten()
}

/// `tr`, `sum`, `diag` and `vec` are linear: 1×1 factors come out.
fn scalars_out(g: &mut Graph, f: Func, u: Id) -> Option<Id> {
    use Func::*;
    if !matches!(f, Tr | Sum | DiagMat | DiagVec | Vec) || !matches!(g.node(u), Node::Mul(_)) {
        return None;
    }
    let p = g.parts(u);
    if p.coef == 1.0 && p.scalars.is_empty() {
        return None;
    }
    let inner = g.mul(&p.chain);
    let core = g.call(f, inner);
    let mut outside = p.scalars;
    outside.insert(0, g.num(p.coef));
    outside.push(core);
    Some(g.mul(&outside))
}

/// `tr(u*v')` is `v'*u`.
fn trace_outer(g: &mut Graph, f: Func, u: Id) -> Option<Id> {
    if f != Func::Tr || !matches!(g.node(u), Node::Mul(_)) {
        return None;
    }
    let p = g.parts(u);
    if p.chain.len() != 2 || !g.dims.is_column(g.shape(p.chain[0])) {
        return None;
    }
    let (a, b) = (p.chain[0], p.chain[1]);
    let tb = g.t(b);
    Some(g.inner(a, tb))
}

/// One identity applied to the terms of a sum as it is built: `apply` gives the
/// terms rewritten, or `None` where the rule does not apply.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct SumRule {
    /// The rule's name, kebab-case.
    pub(crate) name: &'static str,
    /// An expression the rule rewrites, and what `jacob simplify` prints for it.
    pub(crate) example: (&'static str, &'static str),
    /// The rewrite of the (flattened) terms.
    pub(crate) apply: fn(&mut Graph, &[Id]) -> Option<Vec<Id>>,
}

/// The identities for a sum, tried in this order (each sees the terms the ones before
/// it left).
pub(crate) const SUM_RULES: &[SumRule] = &[
    SumRule {
        name: "trace-cyclic",
        example: ("tr(A*B) - tr(B*A) + tr(A*B*C) - tr(C*A*B)", "0"),
        apply: trace_cyclic,
    },
    SumRule {
        name: "diag-sum",
        example: ("diag(x) + 2*diag(y) - diag(z)", "diag(2*y + x - z)"),
        apply: diag_sum,
    },
];

/// `tr(A*B*C)` and `tr(B*C*A)` are one trace: a trace of a product that equals
/// another term's trace up to a rotation of its factors is written as that term.
fn trace_cyclic(g: &mut Graph, terms: &[Id]) -> Option<Vec<Id>> {
    // Only sums with two traces in them: a look at each term's factors, without taking
    // products apart.
    let is_trace = |g: &Graph, t: Id| matches!(g.node(t), Node::Call(Func::Tr, _));
    let traces = terms
        .iter()
        .filter(|&&t| {
            is_trace(g, t)
                || matches!(g.node(t), Node::Mul(fs)
                    if fs.iter().take_while(|&&f| g.is_scalar(f)).any(|&f| is_trace(g, f)))
        })
        .count();
    if traces < 2 {
        return None;
    }
    // Each trace's rotations, by the rotation with the least structural key.
    let mut canon: Vec<Option<Vec<Id>>> = Vec::with_capacity(terms.len());
    let mut any = false;
    for &t in terms {
        let p = g.parts(t);
        let core = match (p.scalars.as_slice(), p.chain.as_slice()) {
            ([s], []) | ([], [s]) => *s,
            _ => t,
        };
        let rotations = match *g.node(core) {
            Node::Call(Func::Tr, m) => {
                let q = g.parts(m);
                (q.coef == 1.0 && q.scalars.is_empty() && q.chain.len() >= 2).then(|| {
                    let k = q.chain.len();
                    let best = (0..k)
                        .min_by_key(|&i| {
                            (0..k)
                                .map(|j| g.key(q.chain[(i + j) % k]))
                                .collect::<Vec<u64>>()
                        })
                        .unwrap_or(0);
                    (0..k).map(|j| q.chain[(best + j) % k]).collect::<Vec<Id>>()
                })
            }
            _ => None,
        };
        any |= rotations.is_some();
        canon.push(rotations);
    }
    if !any {
        return None;
    }
    // Rewrite a trace only where an earlier trace has the same rotation.
    let mut first: Vec<(Vec<Id>, Id)> = Vec::new();
    let mut out = Vec::with_capacity(terms.len());
    let mut changed = false;
    for (&t, c) in terms.iter().zip(canon) {
        let Some(rot) = c else {
            out.push(t);
            continue;
        };
        let Some((_, tr)) = first.iter().find(|(r, _)| *r == rot) else {
            let p = g.parts(t);
            let core = p.scalars.first().or(p.chain.first()).copied().unwrap_or(t);
            first.push((rot, core));
            out.push(t);
            continue;
        };
        let tr = *tr;
        let p = g.parts(t);
        let mut factors = vec![g.num(p.coef)];
        factors.push(tr);
        out.push(g.mul(&factors));
        changed = true;
    }
    changed.then_some(out)
}

/// `diag(u) + diag(v)` is `diag(u + v)`, with the terms' coefficients.
fn diag_sum(g: &mut Graph, terms: &[Id]) -> Option<Vec<Id>> {
    let is_diag = |g: &Graph, t: Id| matches!(g.node(t), Node::Call(Func::DiagMat, _));
    let diags = terms
        .iter()
        .filter(|&&t| {
            is_diag(g, t)
                || matches!(g.node(t), Node::Mul(fs) if fs.last().is_some_and(|&f| is_diag(g, f)))
        })
        .count();
    if diags < 2 {
        return None;
    }
    let mut inside: Vec<Id> = Vec::new();
    let mut out: Vec<Id> = Vec::with_capacity(terms.len());
    for &t in terms {
        let p = g.parts(t);
        match p.chain.as_slice() {
            [d] if matches!(g.node(*d), Node::Call(Func::DiagMat, _)) => {
                let Node::Call(_, u) = *g.node(*d) else {
                    continue;
                };
                let mut factors = vec![g.num(p.coef)];
                factors.extend(p.scalars);
                factors.push(u);
                inside.push(g.mul(&factors));
            }
            _ => out.push(t),
        }
    }
    if inside.len() < 2 {
        return None;
    }
    let sum = g.add(&inside);
    out.push(g.call(Func::DiagMat, sum));
    Some(out)
}

/// A way to write a sum shorter, tried by the finishing pass (`Graph::factor_sum`),
/// which keeps whichever candidate is cheapest by [`Graph::cost`].
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Factoring {
    /// The rule's name, kebab-case.
    pub(crate) name: &'static str,
    /// An expression the rule rewrites, and what `jacob simplify` prints for it.
    pub(crate) example: (&'static str, &'static str),
    /// The candidate for the sum of these terms.
    pub(crate) apply: fn(&mut Graph, &[Id]) -> Option<Id>,
}

/// The candidates for a shorter sum.
pub(crate) const FACTORINGS: &[Factoring] = &[
    Factoring {
        name: "factor-right",
        example: ("A*x + B*x", "(A + B)*x"),
        apply: Graph::factor_right,
    },
    Factoring {
        name: "factor-left",
        example: ("A*x + A*y", "A*(x + y)"),
        apply: Graph::factor_left,
    },
    Factoring {
        name: "factor-kron",
        example: ("kron(A, B) - 2*kron(A, C)", "kron(A, B - 2*C)"),
        apply: factor_kron,
    },
    Factoring {
        name: "scalar-orientation",
        example: ("y'*A*x + 2*x'*B*y", "x'*(2*B + A')*y"),
        apply: scalar_orientation,
    },
    Factoring {
        name: "common-scalar",
        example: ("alpha*A + alpha*B' - 2*alpha*C", "alpha*(A + B' - 2*C)"),
        apply: common_scalar,
    },
    Factoring {
        name: "common-elementwise",
        example: (
            "exp(x).*cos(x) + exp(x).*sin(x)",
            "exp(x).*(cos(x) + sin(x))",
        ),
        apply: common_elementwise,
    },
    Factoring {
        name: "expand-elementwise",
        example: ("sigmoid(x).*(1 - y) - y.*sigmoid(-x)", "sigmoid(x) - y"),
        apply: expand_elementwise,
    },
];

/// `h*A + h*B + C` → `h*(A + B) + C`, `A/2 + B/2` → `(A + B)/2`: the 1×1 factor
/// most terms have comes out of them; a coefficient all terms share comes out of all.
fn common_scalar(g: &mut Graph, terms: &[Id]) -> Option<Id> {
    if terms.len() < 2 {
        return None;
    }
    // A look at the leading factors first, without taking products apart: most sums
    // share nothing, and this pass sees every sum.
    let lead = |g: &Graph, t: Id| -> (f64, Vec<Id>) {
        match g.node(t) {
            Node::Num(n) => (n.get(), Vec::new()),
            Node::Mul(fs) => {
                let mut coef = 1.0;
                let mut scalars = Vec::new();
                for &f in fs.iter().take_while(|&&f| g.is_scalar(f)) {
                    match g.as_num(f) {
                        Some(v) => coef *= v,
                        None => scalars.push(f),
                    }
                }
                (coef, scalars)
            }
            _ if g.is_scalar(t) => (1.0, vec![t]),
            _ => (1.0, Vec::new()),
        }
    };
    let leads: Vec<(f64, Vec<Id>)> = terms.iter().map(|&t| lead(g, t)).collect();
    let c0 = leads[0].0.abs();
    let mut coef = if c0 != 0.0 && leads.iter().all(|(c, _)| c.abs() == c0) {
        c0
    } else {
        1.0
    };
    // A minus sign every term has comes out too: `-(a + b)/2`, not `-(-a - b)/2`.
    if leads.iter().all(|(c, _)| *c < 0.0) {
        coef = -coef;
    }
    // The 1×1 factor in the most terms (the first such, for a stable choice).
    let mut count: std::collections::HashMap<Id, usize> = std::collections::HashMap::new();
    let mut order: Vec<Id> = Vec::new();
    for (_, scalars) in &leads {
        let mut seen: Vec<Id> = Vec::new();
        for &s in scalars {
            if seen.contains(&s) {
                continue;
            }
            seen.push(s);
            let c = count.entry(s).or_insert(0);
            if *c == 0 {
                order.push(s);
            }
            *c += 1;
        }
    }
    let most = order.iter().map(|s| count[s]).max().unwrap_or(0);
    let shared = (most >= 2)
        .then(|| order.iter().copied().find(|s| count[s] == most))
        .flatten();
    if shared.is_none() && coef == 1.0 {
        return None;
    }
    let parts: Vec<crate::simplify::Parts> = terms.iter().map(|&t| g.parts(t)).collect();
    let mut inside = Vec::new();
    let mut outside = Vec::new();
    for (p, &t) in parts.into_iter().zip(terms) {
        let has = shared.is_none_or(|s| p.scalars.contains(&s));
        if !has {
            outside.push(g.scale(1.0 / coef, t));
            continue;
        }
        let mut factors = vec![g.num(p.coef / coef)];
        let mut taken = false;
        for s in p.scalars {
            if Some(s) == shared && !taken {
                taken = true;
            } else {
                factors.push(s);
            }
        }
        factors.extend(p.chain);
        inside.push(g.mul(&factors));
    }
    // Only a real grouping is factored again: a sum that only lost its coefficient has
    // already been factored every other way at this level.
    let inner = g.add(&inside);
    let inner = if shared.is_some() {
        g.factor_sum(inner)
    } else {
        inner
    };
    let mut factors: Vec<Id> = shared.into_iter().collect();
    factors.push(inner);
    outside.push(g.mul(&factors));
    let sum = g.add(&outside);
    // What the grouping left may factor further: `h*(A + B) + C*(A + B)`.
    let sum = if shared.is_some() && outside.len() >= 2 {
        g.factor_sum(sum)
    } else {
        sum
    };
    Some(g.scale(coef, sum))
}

/// The factors of an elementwise product with small whole powers written out:
/// `u.*v.^2` is [u, v, v]; anything else is itself.
fn power_factors(g: &Graph, t: Id) -> Vec<Id> {
    let fs = match g.node(t) {
        Node::Had(_) => g.had_factors(std::slice::from_ref(&t), |_| true),
        _ => vec![t],
    };
    let mut out = Vec::with_capacity(fs.len());
    for f in fs {
        match *g.node(f) {
            Node::EPow([b, p])
                if g.as_num(p)
                    .is_some_and(|e| (2.0..=4.0).contains(&e) && e.fract() == 0.0) =>
            {
                let k = g.as_num(p).unwrap_or(1.0) as usize;
                out.extend(std::iter::repeat_n(b, k));
            }
            _ => out.push(f),
        }
    }
    out
}

/// `kron(A, B) + kron(A, C)` → `kron(A, B + C)`, and alike on the right: the terms'
/// coefficients go with the side that differs.
fn factor_kron(g: &mut Graph, terms: &[Id]) -> Option<Id> {
    if terms
        .iter()
        .filter(|&&t| ends_in(g, t, |n| matches!(n, Node::Kron(_))))
        .count()
        < 2
    {
        return None;
    }
    // Each term as (coefficient and 1×1 factors, left, right) when it is a kron.
    let mut krons: Vec<(Vec<Id>, Id, Id)> = Vec::new();
    let mut others: Vec<Id> = Vec::new();
    for &t in terms {
        let p = g.parts(t);
        match p.chain.as_slice() {
            [k] if matches!(g.node(*k), Node::Kron(_)) => {
                let Node::Kron([a, b]) = *g.node(*k) else {
                    continue;
                };
                let mut front = vec![g.num(p.coef)];
                front.extend(p.scalars);
                krons.push((front, a, b));
            }
            _ => others.push(t),
        }
    }
    if krons.len() < 2 {
        return None;
    }
    let mut best: Option<Id> = None;
    for left in [true, false] {
        // Group by the shared side, in order of first appearance.
        let mut groups: Vec<(Id, Vec<Id>)> = Vec::new();
        for (front, a, b) in &krons {
            let (shared, rest) = if left { (*a, *b) } else { (*b, *a) };
            let mut factors = front.clone();
            factors.push(rest);
            let scaled = g.mul(&factors);
            match groups.iter_mut().find(|(s, _)| *s == shared) {
                Some((_, members)) => members.push(scaled),
                None => groups.push((shared, vec![scaled])),
            }
        }
        if groups.len() == krons.len() {
            continue;
        }
        let mut out = others.clone();
        for (shared, members) in groups {
            let inner = g.add(&members);
            let inner = g.factor_sum(inner);
            out.push(if left {
                g.kron(shared, inner)
            } else {
                g.kron(inner, shared)
            });
        }
        let candidate = g.add(&out);
        if best.is_none_or(|b| g.cost(candidate) < g.cost(b)) {
            best = Some(candidate);
        }
    }
    best
}

/// A 1×1 term both ways round: its chain, the chain transposed, its coefficient and
/// its other 1×1 factors.
type Turnable = (Vec<Id>, Vec<Id>, f64, Vec<Id>);

/// `y'*A*x + x'*B*y` → `y'*(A + B')*x`: a 1×1 product reads the same transposed, so
/// the terms of a 1×1 sum are turned to share the factor most of them can start with,
/// then factored.
fn scalar_orientation(g: &mut Graph, terms: &[Id]) -> Option<Id> {
    if terms.len() < 2 || terms.len() > 16 || !terms.iter().all(|&t| g.is_scalar(t)) {
        return None;
    }
    // Each term's chain both ways round.
    let mut ways: Vec<Option<Turnable>> = Vec::new();
    for &t in terms {
        let mut p = g.parts(t);
        // `2*x'*A*x` keeps its product as one 1×1 factor.
        if p.chain.is_empty()
            && let Some(i) = p.scalars.iter().position(|&s| g.parts(s).chain.len() >= 2)
        {
            let s = p.scalars.remove(i);
            let q = g.parts(s);
            p.coef *= q.coef;
            p.scalars.extend(q.scalars);
            p.chain = q.chain;
        }
        if p.chain.len() < 2 {
            ways.push(None);
            continue;
        }
        let mut rev = Vec::with_capacity(p.chain.len());
        for &f in p.chain.iter().rev() {
            rev.push(g.t(f));
        }
        ways.push(Some((p.chain, rev, p.coef, p.scalars)));
    }
    // The first factor most terms can start with.
    let mut count: Vec<(Id, usize)> = Vec::new();
    for (chain, rev, ..) in ways.iter().flatten() {
        for first in [chain[0], rev[0]] {
            match count.iter_mut().find(|(f, _)| *f == first) {
                Some((_, c)) => *c += 1,
                None => count.push((first, 1)),
            }
        }
    }
    let &(edge, n) = count.iter().max_by_key(|(_, c)| *c)?;
    if n < 2 {
        return None;
    }
    // The terms, turned to start with it where they can, as products that keep that
    // orientation (factor-left reads their first factors).
    let mut turned = Vec::with_capacity(terms.len());
    for (&t, way) in terms.iter().zip(ways) {
        let Some((chain, rev, coef, scalars)) = way else {
            turned.push(t);
            continue;
        };
        let chain = if chain[0] == edge {
            chain
        } else if rev[0] == edge {
            rev
        } else {
            chain
        };
        let mut factors = Vec::with_capacity(chain.len() + scalars.len() + 1);
        if coef != 1.0 {
            factors.push(g.num(coef));
        }
        factors.extend(scalars);
        factors.extend(chain);
        turned.push(g.intern(Node::Mul(factors.into()), crate::shape::Shape::SCALAR));
    }
    g.factor_left(&turned)
}

/// True when the term is such a node, or a product whose last factor is one (`2*kron(A,
/// B)`): a look that takes nothing apart.
fn ends_in(g: &Graph, t: Id, is: impl Fn(&Node) -> bool) -> bool {
    match g.node(t) {
        Node::Mul(fs) => fs.last().is_some_and(|&f| is(g.node(f))),
        n => is(n),
    }
}

/// The elementwise factors of a term and what multiplies them: `2*alpha*(u.*v)` is
/// (2*alpha, [u, v]); a term that is no elementwise product is one factor.
fn elementwise_factors(g: &mut Graph, t: Id) -> (Vec<Id>, Vec<Id>) {
    let p = g.parts(t);
    let mut front = vec![g.num(p.coef)];
    front.extend(p.scalars);
    match p.chain.as_slice() {
        [one] => (front, power_factors(g, *one)),
        _ => (vec![], vec![t]),
    }
}

/// `u.*v + u.*w` → `u.*(v + w)`: the elementwise factor most terms share comes out of
/// them.
fn common_elementwise(g: &mut Graph, terms: &[Id]) -> Option<Id> {
    let elementwise = |n: &Node| matches!(n, Node::Had(_) | Node::EPow(_));
    if terms.len() < 2
        || terms.iter().all(|&t| g.is_scalar(t))
        || !terms.iter().any(|&t| ends_in(g, t, elementwise))
    {
        return None;
    }
    let split: Vec<(Vec<Id>, Vec<Id>)> = terms.iter().map(|&t| elementwise_factors(g, t)).collect();
    // The factor in the most terms (the first such, for a stable choice).
    let mut count: std::collections::HashMap<Id, usize> = std::collections::HashMap::new();
    let mut order: Vec<Id> = Vec::new();
    for (_, fs) in &split {
        let mut seen: Vec<Id> = Vec::new();
        for &f in fs {
            if g.is_scalar(f) || seen.contains(&f) {
                continue;
            }
            seen.push(f);
            let c = count.entry(f).or_insert(0);
            if *c == 0 {
                order.push(f);
            }
            *c += 1;
        }
    }
    let most = order.iter().map(|f| count[f]).max()?;
    if most < 2 {
        return None;
    }
    let best = order.iter().copied().find(|f| count[f] == most)?;
    let mut rests = Vec::new();
    let mut others = Vec::new();
    for ((front, fs), &t) in split.into_iter().zip(terms) {
        match fs.iter().position(|&f| f == best) {
            Some(i) if fs.len() > 1 || !front.is_empty() => {
                let mut rest: Vec<Id> = fs;
                rest.remove(i);
                let h = if rest.is_empty() {
                    g.num(1.0)
                } else {
                    g.had(&rest)
                };
                let mut factors = front;
                factors.push(h);
                rests.push(g.mul(&factors));
            }
            _ => others.push(t),
        }
    }
    if rests.len() < 2 {
        return None;
    }
    let inner = g.add(&rests);
    let inner = g.factor_sum(inner);
    others.push(g.had(&[best, inner]));
    Some(g.add(&others))
}

/// The most monomials [`expand_elementwise`] writes out.
const MAX_MONOMIALS: usize = 32;

/// The deepest [`expand`] looks into a term; deeper parts are kept whole, so that a
/// sum over a deep expression costs time linear in its depth.
const MAX_EXPAND_DEPTH: u32 = 8;

/// Multiplies out elementwise products of sums, writes `sigmoid(-z)` as
/// `1 - sigmoid(z)`, and collects like terms: `s.*(1 - y) - y.*(1 - s)` is `s - y`.
fn expand_elementwise(g: &mut Graph, terms: &[Id]) -> Option<Id> {
    let worth = terms
        .iter()
        .any(|&t| ends_in(g, t, |n| matches!(n, Node::Had(_))));
    if !worth {
        return None;
    }
    let mut monomials: Vec<(f64, Vec<Id>)> = Vec::new();
    for &t in terms {
        monomials.extend(expand(g, t, MAX_EXPAND_DEPTH)?);
        if monomials.len() > MAX_MONOMIALS {
            return None;
        }
    }
    // Like terms: the same factors, whatever their order.
    let mut order: Vec<Vec<Id>> = Vec::new();
    let mut coefs: std::collections::HashMap<Vec<Id>, f64> = std::collections::HashMap::new();
    for (c, mut factors) in monomials {
        factors.sort_unstable();
        let entry = coefs.entry(factors.clone()).or_insert_with(|| {
            order.push(factors);
            0.0
        });
        *entry += c;
    }
    let mut out = Vec::with_capacity(order.len());
    for factors in order {
        let c = coefs[&factors];
        if c == 0.0 {
            continue;
        }
        let coef = g.num(c);
        let term = if factors.is_empty() {
            coef
        } else {
            let h = g.had(&factors);
            g.mul(&[coef, h])
        };
        out.push(term);
    }
    // The sum keeps its shape even when every elementwise term cancels.
    let shape = g.shape(terms[0]);
    let shape = terms
        .iter()
        .map(|&t| g.shape(t))
        .find(|s| !g.dims.is_scalar(*s))
        .unwrap_or(shape);
    if out.is_empty() {
        return Some(g.zero(shape));
    }
    let sum = g.add(&out);
    if g.shape(sum) != g.dims.resolve(shape) {
        let ones = g.ones(shape);
        return Some(g.mul(&[sum, ones]));
    }
    Some(sum)
}

/// A term as a sum of elementwise monomials (coefficient, factors), or `None` when it
/// would take more than [`MAX_MONOMIALS`]; parts `depth` levels down are kept whole.
fn expand(g: &mut Graph, t: Id, depth: u32) -> Option<Vec<(f64, Vec<Id>)>> {
    let atom = |t: Id| Some(vec![(1.0, vec![t])]);
    let Some(depth) = depth.checked_sub(1) else {
        return atom(t);
    };
    match g.node(t).clone() {
        Node::Num(n) => Some(vec![(n.get(), Vec::new())]),
        Node::Add(ts) => {
            let mut out = Vec::new();
            for x in ts.iter() {
                out.extend(expand(g, *x, depth)?);
            }
            (out.len() <= MAX_MONOMIALS).then_some(out)
        }
        Node::Mul(_) => {
            let p = g.parts(t);
            let inner = match p.chain.as_slice() {
                [] => vec![(1.0, Vec::new())],
                [one] => expand(g, *one, depth)?,
                _ => return atom(t),
            };
            Some(
                inner
                    .into_iter()
                    .map(|(c, mut fs)| {
                        fs.extend(p.scalars.iter().copied());
                        (c * p.coef, fs)
                    })
                    .collect(),
            )
        }
        Node::Had(_) | Node::EPow(_) => {
            let fs = power_factors(g, t);
            let mut out: Vec<(f64, Vec<Id>)> = vec![(1.0, Vec::new())];
            for f in fs.iter() {
                let e = if fs.len() == 1 {
                    atom(*f)?
                } else {
                    expand(g, *f, depth)?
                };
                if out.len() * e.len() > MAX_MONOMIALS {
                    return None;
                }
                out = out
                    .iter()
                    .flat_map(|(c, a)| {
                        e.iter().map(move |(d, b)| {
                            let mut fs = a.clone();
                            fs.extend(b.iter().copied());
                            (c * d, fs)
                        })
                    })
                    .collect();
            }
            Some(out)
        }
        Node::Call(Func::Sigmoid, v) => match g.negated(v) {
            // sigmoid(-z) = 1 - sigmoid(z)
            Some(z) => {
                let s = g.call(Func::Sigmoid, z);
                Some(vec![(1.0, Vec::new()), (-1.0, vec![s])])
            }
            None => atom(t),
        },
        _ => atom(t),
    }
}

/// Functions whose values at most numbers are best left unevaluated (`exp(1)`).
fn is_transcendental(f: Func) -> bool {
    use Func::*;
    matches!(
        f,
        Exp | Log
            | Sin
            | Cos
            | Tan
            | Tanh
            | Sqrt
            | Arcsin
            | Arccos
            | Arctan
            | Sigmoid
            | Softplus
            | Logdet
    )
}

/// The value of a function at a number, where it is a number.
fn fold(f: Func, v: f64) -> Option<f64> {
    use Func::*;
    Some(match f {
        Exp => v.exp(),
        Log if v > 0.0 => v.ln(),
        Sin => v.sin(),
        Cos => v.cos(),
        Tan => v.tan(),
        Tanh => v.tanh(),
        Sqrt if v >= 0.0 => v.sqrt(),
        Abs | Norm2 | Norm1 => v.abs(),
        Arcsin if v.abs() <= 1.0 => v.asin(),
        Arccos if v.abs() <= 1.0 => v.acos(),
        Arctan => v.atan(),
        Relu => v.max(0.0),
        Step => f64::from(u8::from(v > 0.0)),
        Sign => v.signum() * f64::from(u8::from(v != 0.0)),
        Sigmoid => 1.0 / (1.0 + (-v).exp()),
        Softplus => v.max(0.0) + (-v.abs()).exp().ln_1p(),
        Sum | Tr | Det | Logsumexp | DiagMat | DiagVec | Vec => v,
        Logdet if v > 0.0 => v.ln(),
        Inv if v != 0.0 => 1.0 / v,
        Softmax => 1.0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{Env, eval};
    use crate::numeric::{Draw, choose_sizes, random_value};

    /// Every rule's example: `simplify` prints what the rule says, the rule itself is
    /// what fires on it, and the two sides have the same value at random points.
    #[test]
    fn every_call_rule_does_what_its_example_shows() {
        for rule in CALL_RULES {
            example_holds(rule.name, rule.example);
        }
    }

    fn example_holds(name: &str, (from, to): (&str, &str)) {
        {
            let rule = name;
            let mut g = Graph::new();
            let parsed = crate::parse::parse(from, &mut g, &Default::default())
                .unwrap_or_else(|e| panic!("{rule}: {from}: {e}"));
            let s = g.simplify(parsed.root, true);
            assert_eq!(crate::print::text(&g, s), to, "rule {rule}");
            let mut rng = fastrand::Rng::with_seed(7);
            for _ in 0..3 {
                let mut env = Env::default();
                choose_sizes(&g, &mut env, &mut rng);
                let symbols: Vec<_> = g.symbols().map(|(s, _)| s).collect();
                for sym in symbols {
                    let v = random_value(&g, &env, sym, &mut rng, Draw::Positive).unwrap();
                    env.values.insert(sym, v);
                }
                let a = eval(&g, &[parsed.root], &env).unwrap();
                let b = eval(&g, &[s], &env).unwrap();
                assert_eq!(a[0].shape(), b[0].shape(), "rule {rule}");
                let close = a[0]
                    .iter()
                    .zip(b[0].iter())
                    .all(|(p, q)| (p - q).abs() <= 1e-9 * (1.0 + p.abs().max(q.abs())));
                assert!(close, "rule {rule}: {} vs {}", a[0], b[0]);
            }
        }
    }

    #[test]
    fn every_sum_rule_does_what_its_example_shows() {
        for rule in SUM_RULES {
            example_holds(rule.name, rule.example);
        }
    }

    #[test]
    fn every_factoring_does_what_its_example_shows() {
        for rule in FACTORINGS {
            example_holds(rule.name, rule.example);
        }
    }

    #[test]
    fn rule_names_are_unique_kebab_case() {
        let mut seen = std::collections::HashSet::new();
        let names = CALL_RULES
            .iter()
            .map(|r| r.name)
            .chain(SUM_RULES.iter().map(|r| r.name));
        for name in names {
            assert!(seen.insert(name), "{name} twice");
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{name}"
            );
        }
    }
}

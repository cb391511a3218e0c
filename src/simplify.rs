//! The simplifier: smart constructors that keep every node in a canonical form, and a
//! cost-driven finishing pass (factoring) that makes a result as short as a careful
//! person would write it.
//!
//! Canonical form, enforced as nodes are built:
//! - sums are flat, like terms collected (`A*x + A*x` → `2*A*x`), zeros dropped; terms
//!   that cancel leave a zero or a broadcast of their shape, never the bare scalar;
//! - products are flat, numbers folded into one leading coefficient, 1×1 factors
//!   gathered in front with their powers combined, identities dropped (a product that
//!   cancels to nothing is the identity of its size), `diag(u)*v` → `u.*v`; a product
//!   is stored in whichever orientation (`x'*A'` or `(A*x)'`) is cheaper;
//! - `.*` pulls scalars out and drops `ones`; transposes cancel and vanish on
//!   symmetric and 1×1 values;
//! - the named identities of [`crate::rules`] for calls and sums.
//!
//! "Shorter" is [`Graph::cost`], the size of the printed expression.

use crate::graph::{Func, Graph, Id, Node};
use crate::shape::{Dim, Shape};
use std::collections::HashMap;

/// A sum or product with at least this many operands is kept whole inside a larger one
/// instead of being flattened into it, so that building a long product one factor at a
/// time (the derivative of a deep chain) costs linear time and memory, not quadratic.
pub const BLOCK: usize = 64;

/// Splits a product into its numeric coefficient, its 1×1 factors and its matrix chain.
pub struct Parts {
    /// The number in front (1 if none).
    pub coef: f64,
    /// The 1×1 factors.
    pub scalars: Vec<Id>,
    /// The other factors, a matrix product in order.
    pub chain: Vec<Id>,
}

impl Graph {
    /// A zero of the given shape: the number 0 for 1×1.
    pub fn zero(&mut self, shape: Shape) -> Id {
        let shape = self.dims.resolve(shape);
        if self.dims.is_scalar(shape) {
            self.num(0.0)
        } else {
            self.intern(Node::Zero(shape.rows, shape.cols), shape)
        }
    }

    /// All ones of the given shape: the number 1 for 1×1.
    pub fn ones(&mut self, shape: Shape) -> Id {
        let shape = self.dims.resolve(shape);
        if self.dims.is_scalar(shape) {
            self.num(1.0)
        } else {
            self.intern(Node::Ones(shape.rows, shape.cols), shape)
        }
    }

    /// `commutation(X)` for an m×n X: K with K*vec(X) = vec(X'); the identity when X is a
    /// vector.
    pub fn commutation(&mut self, m: Dim, n: Dim) -> Id {
        let (m, n) = (self.dims.find(m), self.dims.find(n));
        let mn = self.dims.product(m, n);
        if m == Dim::One || n == Dim::One {
            return self.identity(mn);
        }
        self.intern(Node::Commutation(m, n), Shape::new(mn, mn))
    }

    /// A placeholder with a shape, for the differential of an operand.
    pub(crate) fn hole(&mut self, slot: u32, shape: Shape) -> Id {
        let shape = self.dims.resolve(shape);
        self.intern(Node::Hole(slot, shape.rows, shape.cols), shape)
    }

    /// The n×n identity (the number 1 for n = 1).
    pub fn identity(&mut self, n: Dim) -> Id {
        let n = self.dims.find(n);
        if n == Dim::One {
            self.num(1.0)
        } else {
            self.intern(Node::Identity(n), Shape::new(n, n))
        }
    }

    /// True for the number 0 and zero matrices.
    pub fn is_zero(&self, id: Id) -> bool {
        matches!(self.node(id), Node::Zero(..)) || self.as_num(id) == Some(0.0)
    }

    /// The parts of a node seen as a product.
    pub fn parts(&self, id: Id) -> Parts {
        let mut parts = Parts {
            coef: 1.0,
            scalars: Vec::new(),
            chain: Vec::new(),
        };
        match self.node(id) {
            Node::Num(n) => parts.coef = n.get(),
            Node::Mul(fs) => {
                for &f in fs.iter() {
                    if let Some(v) = self.as_num(f) {
                        parts.coef *= v;
                    } else if self.is_scalar(f) {
                        parts.scalars.push(f);
                    } else {
                        parts.chain.push(f);
                    }
                }
            }
            _ if self.is_scalar(id) => parts.scalars.push(id),
            _ => parts.chain.push(id),
        }
        parts
    }

    /// `c*a`
    pub fn scale(&mut self, c: f64, a: Id) -> Id {
        let c = self.num(c);
        self.mul(&[c, a])
    }

    /// `-a`
    pub fn neg(&mut self, a: Id) -> Id {
        self.scale(-1.0, a)
    }

    /// `a - b`
    pub fn sub(&mut self, a: Id, b: Id) -> Id {
        let nb = self.neg(b);
        self.add(&[a, nb])
    }

    /// `a/c` for a scalar c.
    pub fn div(&mut self, a: Id, c: Id) -> Id {
        let inv = self.powf(c, -1.0);
        self.mul(&[a, inv])
    }

    /// `s^p` for a numeric p.
    pub fn powf(&mut self, s: Id, p: f64) -> Id {
        let p = self.num(p);
        self.pow(s, p)
    }

    /// `u.^p` for a numeric p.
    pub fn epowf(&mut self, u: Id, p: f64) -> Id {
        let p = self.num(p);
        self.epow(u, p)
    }

    /// `f(u)`
    pub fn func(&mut self, f: Func, u: Id) -> Id {
        self.call(f, u)
    }

    /// The sum of the entries of `a .* b`, written `a'*b` for vectors.
    pub fn inner(&mut self, a: Id, b: Id) -> Id {
        let (sa, sb) = (self.shape(a), self.shape(b));
        if self.is_scalar(a) || self.is_scalar(b) {
            return self.mul(&[a, b]);
        }
        if self.dims.is_column(sa) && self.dims.is_column(sb) {
            let ta = self.t(a);
            return self.mul(&[ta, b]);
        }
        if self.dims.is_row(sa) && self.dims.is_row(sb) {
            let tb = self.t(b);
            return self.mul(&[a, tb]);
        }
        let h = self.had(&[a, b]);
        self.call(Func::Sum, h)
    }

    /// A sum, flattened, with like terms collected and zeros dropped.
    pub fn add(&mut self, terms: &[Id]) -> Id {
        let shape = terms
            .iter()
            .map(|&t| self.shape(t))
            .find(|s| !self.dims.is_scalar(*s))
            .unwrap_or(Shape::SCALAR);
        let mut flat: Vec<Id> = Vec::with_capacity(terms.len());
        for &t in terms {
            match self.node(t) {
                Node::Add(ts) => flat.extend_from_slice(ts),
                _ => flat.push(t),
            }
        }
        for rule in crate::rules::SUM_RULES {
            if let Some(rewritten) = (rule.apply)(self, &flat) {
                flat = rewritten;
            }
        }
        // Collect like terms: the same term up to its numeric coefficient.
        let unit = self.num(1.0);
        let mut order: Vec<Id> = Vec::new();
        let mut coefs: HashMap<Id, f64> = HashMap::new();
        for t in flat {
            if self.is_zero(t) {
                continue;
            }
            let (c, rest) = self.split_coef(t, unit);
            let entry = coefs.entry(rest).or_insert_with(|| {
                order.push(rest);
                0.0
            });
            *entry += c;
        }
        let mut out: Vec<Id> = Vec::with_capacity(order.len());
        for rest in order {
            let c = coefs[&rest];
            if c == 0.0 {
                continue;
            }
            out.push(if rest == unit {
                self.num(c)
            } else if c == 1.0 {
                // Already canonical: a term as it came, or a product made by `mul`.
                rest
            } else {
                self.scale(c, rest)
            });
        }
        if !out.is_empty() && !self.dims.is_scalar(shape) && out.iter().all(|&t| self.is_scalar(t))
        {
            // The terms that gave the sum its shape cancelled (`alpha + (x - x)`): what
            // is left is broadcast to that shape, `alpha*ones`, never the scalar alone.
            let s = self.add(&out);
            let ones = self.ones(shape);
            return self.mul(&[s, ones]);
        }
        match out.len() {
            0 => self.zero(shape),
            1 if self.shape(out[0]) == self.dims.resolve(shape) => out[0],
            _ => {
                out.sort_by_key(|&t| self.key(t));
                self.intern(Node::Add(out.into()), shape)
            }
        }
    }

    /// A term as its numeric coefficient and the rest (`unit` for a number).
    fn split_coef(&mut self, t: Id, unit: Id) -> (f64, Id) {
        match self.node(t) {
            Node::Num(n) => (n.get(), unit),
            Node::Mul(fs) => match self.as_num(fs[0]) {
                Some(c) => {
                    let rest: Vec<Id> = fs[1..].to_vec();
                    (c, self.mul(&rest))
                }
                None => (1.0, t),
            },
            _ => (1.0, t),
        }
    }

    /// A product, flattened and put in canonical order (see the module doc).
    pub fn mul(&mut self, factors: &[Id]) -> Id {
        let mut coef = 1.0;
        let mut scalars: Vec<Id> = Vec::new();
        let mut chain: Vec<Id> = Vec::new();
        for &f in factors {
            if self.is_chain_block(f) {
                chain.push(f);
                continue;
            }
            // A long product of 1×1 factors (the derivative of a deep chain by a scalar)
            // stays one factor, as a long matrix chain does, so that each level does not
            // copy all the factors below it.
            if matches!(self.node(f), Node::Mul(fs) if fs.len() >= BLOCK) && self.is_scalar(f) {
                scalars.push(f);
                continue;
            }
            let p = self.parts(f);
            coef *= p.coef;
            scalars.extend(p.scalars);
            if self.is_scalar(f) && !p.chain.is_empty() {
                // A 1×1 product such as x'*A*x is one scalar factor here.
                let inner = self.scalar_chain(&p.chain);
                scalars.push(inner);
            } else {
                chain.extend(p.chain);
            }
        }
        let shape = match (chain.first(), chain.last()) {
            (Some(&a), Some(&b)) => Shape::new(self.shape(a).rows, self.shape(b).cols),
            _ => Shape::SCALAR,
        };
        if coef == 0.0 || scalars.iter().chain(&chain).any(|&f| self.is_zero(f)) {
            return self.zero(shape);
        }
        let chain = self.tidy_chain(chain);
        let (mut chain, mut scalars) = self.split_scalar_runs(chain, scalars);
        if chain.len() > 1 && self.dims.is_scalar(shape) && self.ones_at_end(&chain) {
            // `ones'*u` is sum(u): as text, a 1×1 product with `ones` in it would need
            // `ones` sized (it could be a matrix).
            let s = self.scalar_chain(&chain);
            scalars.push(s);
            chain.clear();
        }
        if chain.len() > 1 && (coef != 1.0 || !scalars.is_empty()) && self.dims.is_scalar(shape) {
            // `2*x'*A*x` is 2 times the scalar x'*A*x.
            scalars.push(self.scalar_chain(&chain));
            chain.clear();
        }
        let scalars = self.combine_powers(&mut coef, scalars);
        if chain.is_empty() && scalars.is_empty() {
            return self.num(coef);
        }
        if coef == 0.0 {
            return self.zero(shape);
        }
        let mut out: Vec<Id> = Vec::with_capacity(1 + scalars.len() + chain.len());
        if coef != 1.0 {
            out.push(self.num(coef));
        }
        out.extend(scalars);
        out.extend(chain.iter().copied());
        if out.len() == 1 {
            return out[0];
        }
        // Store whichever orientation is cheaper: `x'*A'` becomes `(A*x)'`.
        if chain.len() >= 2 {
            let transposed_cost: u64 = chain
                .iter()
                .map(|&f| match self.node(f) {
                    Node::Transpose(g) => self.cost(*g),
                    _ if self.is_symmetric(f) => self.cost(f),
                    _ => self.cost(f) + 1,
                })
                .sum::<u64>()
                + u64::from(!self.dims.is_scalar(shape));
            let plain_cost: u64 = chain.iter().map(|&f| self.cost(f)).sum();
            let tie = transposed_cost == plain_cost && self.dims.is_scalar(shape);
            if transposed_cost < plain_cost || tie {
                let mut rev: Vec<Id> = Vec::with_capacity(chain.len());
                for &f in chain.iter().rev() {
                    let tf = self.t(f);
                    match self.node(tf) {
                        Node::Mul(fs)
                            if !self.is_scalar(tf)
                                && fs.len() < BLOCK
                                && self.parts(tf).chain.len() == fs.len() =>
                        {
                            rev.extend_from_slice(&fs.clone())
                        }
                        _ => rev.push(tf),
                    }
                }
                // A 1×1 product reads the same both ways: pick one by structure, not by id.
                if tie && self.key(rev[0]) >= self.key(chain[0]) {
                    return self.intern_product(out, chain.len(), shape);
                }
                let inner = self.intern(Node::Mul(rev.into()), shape.t());
                // A 1×1 product equals its transpose.
                let inner_t = if self.dims.is_scalar(shape) {
                    inner
                } else {
                    self.intern(Node::Transpose(inner), shape)
                };
                let mut front: Vec<Id> = out[..out.len() - chain.len()].to_vec();
                if front.is_empty() {
                    return inner_t;
                }
                front.push(inner_t);
                return self.intern(Node::Mul(front.into()), shape);
            }
        }
        self.intern_product(out, chain.len(), shape)
    }

    /// True when a matrix chain starts with a row of ones or ends with a column of ones.
    fn ones_at_end(&self, chain: &[Id]) -> bool {
        let is_ones = |f: Option<&Id>| f.is_some_and(|&f| matches!(self.node(f), Node::Ones(..)));
        is_ones(chain.first()) || is_ones(chain.last())
    }

    /// A 1×1 matrix chain as one scalar factor: `x'*A*x`; with `ones` at an end, a sum
    /// (`ones'*u` → sum(u), `ones'*A*ones` → sum(A)).
    fn scalar_chain(&mut self, chain: &[Id]) -> Id {
        if chain.len() > 1 && self.ones_at_end(chain) {
            let k = chain.len();
            let start = usize::from(matches!(self.node(chain[0]), Node::Ones(..)));
            let end = k - usize::from(matches!(self.node(chain[k - 1]), Node::Ones(..)));
            if start < end {
                let inner = self.mul(&chain[start..end]);
                return self.call(Func::Sum, inner);
            }
            // `ones'*ones`: the length.
            let n = self.shape(chain[0]).cols;
            return self.size(n);
        }
        if chain.len() == 1 {
            return chain[0];
        }
        self.intern(Node::Mul(chain.into()), Shape::SCALAR)
    }

    /// True for a product of at least [`BLOCK`] matrix factors and nothing else, which
    /// larger products keep whole instead of flattening.
    pub fn is_chain_block(&self, id: Id) -> bool {
        matches!(self.node(id), Node::Mul(fs) if fs.len() >= BLOCK && !self.is_scalar(fs[0]))
            && !self.is_scalar(id)
    }

    /// Stores a canonical product whose last `chain` factors are its matrix chain; a long
    /// chain becomes a node of its own (a block) behind the coefficient and 1×1 factors.
    fn intern_product(&mut self, mut out: Vec<Id>, chain: usize, shape: Shape) -> Id {
        if chain >= BLOCK && out.len() > chain {
            let block = self.intern(Node::Mul(out[out.len() - chain..].into()), shape);
            out.truncate(out.len() - chain);
            out.push(block);
        }
        self.intern(Node::Mul(out.into()), shape)
    }

    /// Takes the 1×1 runs out of a chain (`x'*a*B` → scalar `x'*a` times `B`,
    /// `u*(v'*w)*z'` → `v'*w` times `u*z'`): scalars commute, so each product has one
    /// canonical form.
    fn split_scalar_runs(&mut self, chain: Vec<Id>, mut scalars: Vec<Id>) -> (Vec<Id>, Vec<Id>) {
        let k = chain.len();
        let one = |g: &Graph, d: Dim| g.dims.find(d) == Dim::One;
        let mut rest: Vec<Id> = Vec::with_capacity(k);
        let mut i = 0;
        while i < k {
            if one(self, self.shape(chain[i]).rows)
                && let Some(j) = (i..k).find(|&j| one(self, self.shape(chain[j]).cols))
                && !(i == 0 && j + 1 == k)
            {
                let run = &chain[i..=j];
                scalars.push(if run.len() == 1 {
                    run[0]
                } else {
                    self.scalar_chain(run)
                });
                i = j + 1;
                continue;
            }
            rest.push(chain[i]);
            i += 1;
        }
        (rest, scalars)
    }

    /// Gathers 1×1 factors with the same base into one power; numbers join the coefficient.
    fn combine_powers(&mut self, coef: &mut f64, scalars: Vec<Id>) -> Vec<Id> {
        let mut order: Vec<Id> = Vec::new();
        let mut exps: HashMap<Id, f64> = HashMap::new();
        let mut others: Vec<Id> = Vec::new();
        for s in scalars {
            let (base, e) = match self.node(s) {
                Node::Pow([b, p]) => match self.as_num(*p) {
                    Some(e) => (*b, e),
                    None => {
                        others.push(s);
                        continue;
                    }
                },
                _ => (s, 1.0),
            };
            let entry = exps.entry(base).or_insert_with(|| {
                order.push(base);
                0.0
            });
            *entry += e;
        }
        for base in order {
            let e = exps[&base];
            if e == 0.0 {
                continue;
            }
            let p = self.powf(base, e);
            match self.as_num(p) {
                Some(v) => *coef *= v,
                None => others.push(p),
            }
        }
        others.sort_by_key(|&f| self.order_key(f));
        others
    }

    /// Local rules on a matrix chain: drop identities, `diag(u)*v` → `u.*v`,
    /// `diag(u)*diag(v)` → `diag(u.*v)`, `inv(A)*A` → `I`.
    fn tidy_chain(&mut self, chain: Vec<Id>) -> Vec<Id> {
        // What a chain that cancels entirely (`inv(A)*A`) leaves: the identity of its
        // size, never the scalar 1.
        let square = chain.first().map(|&f| self.shape(f).rows);
        // A matrix of ones inside a product is a column times a row, `ones*ones'`, so
        // that `ones(m, n)*y` becomes `sum(y)*ones`.
        let long = chain.len() > 1;
        let mut opened: Vec<Id> = Vec::with_capacity(chain.len());
        for f in chain {
            match *self.node(f) {
                Node::Ones(r, c)
                    if long && self.dims.find(r) != Dim::One && self.dims.find(c) != Dim::One =>
                {
                    opened.push(self.ones(Shape::new(r, Dim::One)));
                    opened.push(self.ones(Shape::new(Dim::One, c)));
                }
                _ => opened.push(f),
            }
        }
        let mut out: Vec<Id> = Vec::with_capacity(opened.len());
        for f in opened {
            out.push(f);
            while out.len() >= 2 {
                let (a, b) = (out[out.len() - 2], out[out.len() - 1]);
                let Some(merged) = self.merge_pair(a, b) else {
                    break;
                };
                out.truncate(out.len() - 2);
                if let Some(m) = merged {
                    if let Node::Mul(_) = self.node(m) {
                        // A merge may yield a coefficient; keep the chain flat.
                        let p = self.parts(m);
                        if p.coef == 1.0 && p.scalars.is_empty() {
                            out.extend(p.chain);
                            continue;
                        }
                    }
                    out.push(m);
                }
            }
        }
        if out.is_empty()
            && let Some(n) = square
        {
            out.push(self.identity(n));
        }
        if out.len() > 1 {
            let kept: Vec<Id> = out
                .iter()
                .copied()
                .filter(|&f| !matches!(self.node(f), Node::Identity(_)))
                .collect();
            if !kept.is_empty() {
                return kept;
            }
            return vec![out[0]];
        }
        out
    }

    /// `Some(Some(m))`: the pair `a*b` is `m`; `Some(None)`: it is an identity to drop;
    /// `None`: no rule applies.
    fn merge_pair(&mut self, a: Id, b: Id) -> Option<Option<Id>> {
        let (na, nb) = (self.node(a).clone(), self.node(b).clone());
        let one = |g: &Graph, d: Dim| g.dims.find(d) == Dim::One;
        let same = |g: &Graph, d: Dim, e: Dim| g.dims.find(d) == g.dims.find(e);
        match (&na, &nb) {
            // vec(B)'*kron(P, Q) = vec(Q'*B*P)'  (from (P' ⊗ Q)' vec(B) = vec(Q'*B*P))
            (Node::Transpose(v), Node::Kron([p, q])) => {
                if let Node::Call(Func::Vec, m) = *self.node(*v)
                    && !self.is_scalar(m)
                    && same(self, self.shape(m).rows, self.shape(*q).rows)
                    && same(self, self.shape(m).cols, self.shape(*p).rows)
                {
                    let qt = self.t(*q);
                    let inner = self.mul(&[qt, m, *p]);
                    let vi = self.call(Func::Vec, inner);
                    return Some(Some(self.t(vi)));
                }
            }
            // kron(P, Q)*vec(B) = vec(Q*B*P')
            (Node::Kron([p, q]), Node::Call(Func::Vec, m))
                if !self.is_scalar(*m)
                    && same(self, self.shape(*m).rows, self.shape(*q).cols)
                    && same(self, self.shape(*m).cols, self.shape(*p).cols) =>
            {
                let pt = self.t(*p);
                let inner = self.mul(&[*q, *m, pt]);
                return Some(Some(self.call(Func::Vec, inner)));
            }
            // (a' ⊗ B)*K = B ⊗ a' and (A ⊗ b')*K = b' ⊗ A, for K the commutation of an
            // m×n matrix, a' a 1×m row and B with n columns (and alike).
            (Node::Kron([p, q]), Node::Commutation(m, n)) => {
                let (sp, sq) = (self.shape(*p), self.shape(*q));
                let row_first =
                    one(self, sp.rows) && same(self, sp.cols, *m) && same(self, sq.cols, *n);
                let (sp2, sq2) = (sp, sq);
                let row_second =
                    one(self, sq2.rows) && same(self, sp2.cols, *m) && same(self, sq2.cols, *n);
                if row_first || row_second {
                    return Some(Some(self.kron(*q, *p)));
                }
            }
            _ => {}
        }
        match (na, nb) {
            (Node::Call(Func::DiagMat, u), Node::Call(Func::DiagMat, v)) => {
                let h = self.had(&[u, v]);
                Some(Some(self.call(Func::DiagMat, h)))
            }
            (Node::Call(Func::DiagMat, u), _) if self.dims.is_column(self.shape(b)) => {
                Some(Some(self.had(&[u, b])))
            }
            (_, Node::Call(Func::DiagMat, u)) if self.dims.is_row(self.shape(a)) => {
                let ta = self.t(a);
                let h = self.had(&[ta, u]);
                Some(Some(self.t(h)))
            }
            // K_{n,m}*K_{m,n} = I
            (Node::Commutation(p, q), Node::Commutation(r, t))
                if self.dims.find(p) == self.dims.find(t)
                    && self.dims.find(q) == self.dims.find(r) =>
            {
                Some(None)
            }
            (Node::Call(Func::Inv, m), _) if m == b => Some(None),
            (_, Node::Call(Func::Inv, m)) if m == a => Some(None),
            (Node::Transpose(ia), Node::Transpose(m)) if matches!(self.node(ia), Node::Call(Func::Inv, x) if *x == m) => {
                Some(None)
            }
            (Node::Transpose(m), Node::Transpose(ib)) if matches!(self.node(ib), Node::Call(Func::Inv, x) if *x == m) => {
                Some(None)
            }
            _ => None,
        }
    }

    /// An elementwise product: scalars pulled out, `ones` dropped, powers combined.
    pub fn had(&mut self, factors: &[Id]) -> Id {
        let shape = factors
            .iter()
            .map(|&f| self.shape(f))
            .find(|s| !self.dims.is_scalar(*s))
            .unwrap_or(Shape::SCALAR);
        if self.dims.is_scalar(shape) {
            return self.mul(factors);
        }
        let mut outside: Vec<Id> = Vec::new();
        let mut items: Vec<Id> = Vec::new();
        let mut stack: Vec<Id> = factors.iter().rev().copied().collect();
        while let Some(f) = stack.pop() {
            match self.node(f) {
                Node::Had(fs) if fs.len() < BLOCK => stack.extend(fs.iter().rev()),
                Node::Had(_) => items.push(f),
                Node::Ones(..) => {}
                Node::Zero(..) => return self.zero(shape),
                Node::Mul(_) if !self.is_scalar(f) => {
                    let p = self.parts(f);
                    if p.coef == 1.0 && p.scalars.is_empty() {
                        items.push(f);
                    } else {
                        let c = self.num(p.coef);
                        outside.push(c);
                        outside.extend(p.scalars);
                        let rest = self.mul(&p.chain);
                        stack.push(rest);
                    }
                }
                _ if self.is_scalar(f) => outside.push(f),
                _ => items.push(f),
            }
        }
        // u .* u → u.^2, u .* u.^-1 → ones.
        let mut order: Vec<Id> = Vec::new();
        let mut exps: HashMap<Id, f64> = HashMap::new();
        let mut rest: Vec<Id> = Vec::new();
        for f in items {
            let (base, e) = match self.node(f) {
                Node::EPow([b, p]) => match self.as_num(*p) {
                    Some(e) => (*b, e),
                    None => {
                        rest.push(f);
                        continue;
                    }
                },
                _ => (f, 1.0),
            };
            let entry = exps.entry(base).or_insert_with(|| {
                order.push(base);
                0.0
            });
            *entry += e;
        }
        for base in order {
            let e = exps[&base];
            if e != 0.0 {
                let p = self.epowf(base, e);
                rest.push(p);
            }
        }
        let inner = match rest.len() {
            0 => self.ones(shape),
            1 => rest[0],
            _ => {
                // Short factors first: `step(u).*(W'*d)`.
                rest.sort_by_key(|&f| self.order_key(f));
                self.recognize_sigmoid(&rest)
                    .unwrap_or_else(|| self.intern(Node::Had(rest.clone().into()), shape))
            }
        };
        if outside.is_empty() {
            return inner;
        }
        outside.push(inner);
        self.mul(&outside)
    }

    /// `exp(u) ./ (1 + exp(u))` → `sigmoid(u)`.
    fn recognize_sigmoid(&mut self, items: &[Id]) -> Option<Id> {
        if items.len() != 2 {
            return None;
        }
        for (a, b) in [(items[0], items[1]), (items[1], items[0])] {
            let (Node::Call(Func::Exp, u), Node::EPow([den, p])) = (self.node(a), self.node(b))
            else {
                continue;
            };
            if self.as_num(*p) != Some(-1.0) {
                continue;
            }
            let u = *u;
            if self.is_one_plus_exp(*den) == Some(u) {
                return Some(self.call(Func::Sigmoid, u));
            }
        }
        None
    }

    /// `Some(u)` when the node is `1 + exp(u)`.
    pub(crate) fn is_one_plus_exp(&self, id: Id) -> Option<Id> {
        let Node::Add(ts) = self.node(id) else {
            return None;
        };
        if ts.len() != 2 {
            return None;
        }
        for (a, b) in [(ts[0], ts[1]), (ts[1], ts[0])] {
            if self.as_num(a) == Some(1.0)
                && let Node::Call(Func::Exp, u) = self.node(b)
            {
                return Some(*u);
            }
        }
        None
    }

    /// `s^p` for scalars.
    pub fn pow(&mut self, s: Id, p: Id) -> Id {
        let (bs, ps) = (self.as_num(s), self.as_num(p));
        if bs == Some(0.0) && ps.is_some_and(|e| e < 0.0) {
            self.folding_problem.get_or_insert("this divides by zero");
        }
        if let (Some(b), Some(e)) = (bs, ps) {
            let v = b.powf(e);
            let exact = e.fract() == 0.0
                && (e >= 0.0 || (1.0 / v).fract() == 0.0 || format!("{v}").len() <= 8);
            if v.is_finite() && exact {
                return self.num(v);
            }
        }
        match ps {
            Some(1.0) => return s,
            Some(0.0) => return self.num(1.0),
            _ => {}
        }
        if bs == Some(1.0) {
            return s;
        }
        if let (Node::Pow([b, q]), Some(e)) = (self.node(s).clone(), ps)
            && let Some(q) = self.as_num(q)
            && e.fract() == 0.0
        {
            return self.powf(b, q * e);
        }
        self.intern(Node::Pow([s, p]), Shape::SCALAR)
    }

    /// `u.^p`: a scalar power of every entry.
    pub fn epow(&mut self, u: Id, p: Id) -> Id {
        if self.is_scalar(u) {
            return self.pow(u, p);
        }
        let shape = self.shape(u);
        match self.as_num(p) {
            Some(1.0) => return u,
            Some(0.0) => return self.ones(shape),
            _ => {}
        }
        let positive = self.as_num(p).is_some_and(|e| e > 0.0);
        match self.node(u).clone() {
            Node::Ones(..) => return u,
            // 0 and 1 to a positive power are themselves.
            Node::Identity(_) | Node::Zero(..) if positive => return u,
            Node::EPow([v, q]) => {
                if let (Some(q), Some(e)) = (self.as_num(q), self.as_num(p))
                    && e.fract() == 0.0
                {
                    return self.epowf(v, q * e);
                }
            }
            Node::Transpose(v) => {
                let inner = self.epow(v, p);
                return self.t(inner);
            }
            _ => {}
        }
        if let Some(v) = self.is_one_plus_exp(u)
            && self.as_num(p) == Some(-1.0)
            && let Some(w) = self.negated(v)
        {
            // 1 ./ (1 + exp(-w)) is sigmoid(w).
            return self.call(Func::Sigmoid, w);
        }
        self.intern(Node::EPow([u, p]), shape)
    }

    /// `Some(w)` when the node is `-w`.
    pub(crate) fn negated(&mut self, id: Id) -> Option<Id> {
        let p = self.parts(id);
        if p.coef < 0.0 {
            let mut rest = p.scalars;
            rest.extend(p.chain);
            let positive = self.num(-p.coef);
            rest.insert(0, positive);
            Some(self.mul(&rest))
        } else {
            None
        }
    }

    /// `a'`, pushed through products, sums and elementwise operations where that is
    /// no longer, and gone on symmetric and 1×1 values.
    pub fn t(&mut self, a: Id) -> Id {
        if self.is_symmetric(a) {
            return a;
        }
        if let Some(&done) = self.transposed.get(&a) {
            return done;
        }
        let shape = self.shape(a).t();
        let out = match self.node(a).clone() {
            Node::Transpose(b) => b,
            Node::Ones(r, c) => self.intern(Node::Ones(c, r), shape),
            // K_{m,n}' = K_{n,m}
            Node::Commutation(m, n) => self.commutation(n, m),
            Node::Zero(r, c) => self.intern(Node::Zero(c, r), shape),
            Node::Add(ts) => {
                let mut tt = Vec::with_capacity(ts.len());
                for &x in ts.iter() {
                    tt.push(self.t(x));
                }
                self.add(&tt)
            }
            Node::Mul(fs) => {
                let mut rev = Vec::with_capacity(fs.len());
                for &x in fs.iter().rev() {
                    rev.push(self.t(x));
                }
                let pushed = self.mul(&rev);
                if self.cost(pushed) <= self.cost(a) + 1 {
                    pushed
                } else {
                    self.intern(Node::Transpose(a), shape)
                }
            }
            Node::Had(fs) => {
                let transposed = fs
                    .iter()
                    .filter(|&&f| matches!(self.node(f), Node::Transpose(_)))
                    .count();
                if 2 * transposed >= fs.len() {
                    let mut tt = Vec::with_capacity(fs.len());
                    for &x in fs.iter() {
                        tt.push(self.t(x));
                    }
                    self.had(&tt)
                } else {
                    self.intern(Node::Transpose(a), shape)
                }
            }
            Node::Kron([x, y]) => {
                let (tx, ty) = (self.t(x), self.t(y));
                self.kron(tx, ty)
            }
            _ => self.intern(Node::Transpose(a), shape),
        };
        self.transposed.insert(a, out);
        out
    }

    /// `kron(a, b)`
    pub fn kron(&mut self, a: Id, b: Id) -> Id {
        let (sa, sb) = (self.shape(a), self.shape(b));
        let rows = self.dims.product(sa.rows, sb.rows);
        let cols = self.dims.product(sa.cols, sb.cols);
        let shape = Shape::new(rows, cols);
        if self.is_zero(a) || self.is_zero(b) {
            return self.zero(shape);
        }
        if self.is_scalar(a) || self.is_scalar(b) {
            return self.mul(&[a, b]);
        }
        // kron(I_m, I_n) = I_mn
        if let (Node::Identity(_), Node::Identity(_)) = (self.node(a), self.node(b)) {
            return self.identity(rows);
        }
        self.intern(Node::Kron([a, b]), shape)
    }

    /// The shape of `f(u)` for a function call.
    pub fn call_shape(&mut self, f: Func, u: Id) -> Shape {
        let s = self.shape(u);
        match f {
            _ if f.is_elementwise() => s,
            Func::Sum
            | Func::Norm2
            | Func::Norm1
            | Func::Logsumexp
            | Func::Tr
            | Func::Det
            | Func::Logdet => Shape::SCALAR,
            Func::Softmax | Func::Inv => s,
            Func::DiagMat => Shape::new(s.rows, s.rows),
            Func::DiagVec => Shape::new(s.rows, Dim::One),
            Func::Vec => Shape::new(self.dims.product(s.rows, s.cols), Dim::One),
            _ => s,
        }
    }

    /// `f(u)`, with the named identities of [`crate::rules::CALL_RULES`].
    pub fn call(&mut self, f: Func, u: Id) -> Id {
        for rule in crate::rules::CALL_RULES {
            if let Some(done) = (rule.apply)(self, f, u) {
                return done;
            }
        }
        let shape = self.call_shape(f, u);
        self.intern(Node::Call(f, u), shape)
    }

    /// `Some(c)` when the node is the scalar `c` in every entry: `ones` (1), a zero
    /// array (0), `c*ones`.
    pub(crate) fn broadcast_scalar(&mut self, u: Id) -> Option<Id> {
        match self.node(u) {
            Node::Ones(..) => Some(self.num(1.0)),
            Node::Zero(..) => Some(self.num(0.0)),
            Node::Mul(_) => {
                let p = self.parts(u);
                if p.chain.len() != 1 || !matches!(self.node(p.chain[0]), Node::Ones(..)) {
                    return None;
                }
                let mut factors = vec![self.num(p.coef)];
                factors.extend(p.scalars);
                Some(self.mul(&factors))
            }
            _ => None,
        }
    }

    /// Rebuilds `id` bottom-up through the smart constructors: the canonical form of a
    /// parsed expression. With `factor`, sums are also factored where that is shorter.
    pub fn simplify(&mut self, id: Id, factor: bool) -> Id {
        let mut map: HashMap<Id, Id> = HashMap::new();
        for old in self.reachable(&[id]) {
            let node = self.node(old).clone();
            let kids: Vec<Id> = node.children().iter().map(|c| map[c]).collect();
            let new = self.rebuild(&node, &kids, old);
            let new = if factor { self.factor_sum(new) } else { new };
            map.insert(old, new);
        }
        map[&id]
    }

    /// One node again through its smart constructor, with new children.
    pub(crate) fn rebuild(&mut self, node: &Node, kids: &[Id], old: Id) -> Id {
        match node {
            Node::Num(_) | Node::Sym(_) => old,
            Node::Size(d) => self.size(*d),
            Node::Commutation(m, n) => self.commutation(*m, *n),
            Node::Hole(..) => old,
            Node::Identity(n) => self.identity(*n),
            Node::Ones(r, c) => self.ones(Shape::new(*r, *c)),
            Node::Zero(r, c) => self.zero(Shape::new(*r, *c)),
            Node::Add(_) => self.add(kids),
            Node::Mul(_) => self.mul(kids),
            Node::Had(_) => self.had(kids),
            Node::Pow(_) => self.pow(kids[0], kids[1]),
            Node::EPow(_) => self.epow(kids[0], kids[1]),
            Node::Transpose(_) => self.t(kids[0]),
            Node::Call(f, _) => self.call(*f, kids[0]),
            Node::Kron(_) => self.kron(kids[0], kids[1]),
        }
    }

    /// Factors a sum where that is shorter: `A*x + A'*x` → `(A + A')*x`,
    /// `A*x + A*y` → `A*(x + y)`.
    pub fn factor_sum(&mut self, id: Id) -> Id {
        let Node::Add(terms) = self.node(id).clone() else {
            return id;
        };
        let mut best = id;
        for rule in crate::rules::FACTORINGS {
            let Some(candidate) = (rule.apply)(self, &terms) else {
                continue;
            };
            if self.cost(candidate) < self.cost(best) {
                best = candidate;
            }
        }
        best
    }

    /// `A*x + B*x` → `(A + B)*x`.
    pub(crate) fn factor_right(&mut self, terms: &[Id]) -> Option<Id> {
        self.factor_side(terms, Side::Right)
    }

    /// `A*x + A*y` → `A*(x + y)`.
    pub(crate) fn factor_left(&mut self, terms: &[Id]) -> Option<Id> {
        self.factor_side(terms, Side::Left)
    }

    fn factor_side(&mut self, terms: &[Id], side: Side) -> Option<Id> {
        // Group terms by their outermost matrix factor on one side (a hash index, so
        // that a sum of many terms is grouped in linear time).
        let mut groups: Vec<(Id, Vec<Id>)> = Vec::new();
        let mut group_of: HashMap<Id, usize> = HashMap::new();
        let mut singles: Vec<Id> = Vec::new();
        let sum_is_scalar = terms.iter().all(|&t| self.is_scalar(t));
        for &t in terms {
            // A 1×1 term broadcast into a larger sum is not a matrix product: leave it.
            if self.is_scalar(t) && !sum_is_scalar {
                singles.push(t);
                continue;
            }
            let Some(edge) = self.edge(t, side) else {
                singles.push(t);
                continue;
            };
            match group_of.get(&edge) {
                Some(&k) => groups[k].1.push(t),
                None => {
                    group_of.insert(edge, groups.len());
                    groups.push((edge, vec![t]));
                }
            }
        }
        if groups.iter().all(|(_, members)| members.len() == 1) {
            // Nothing shares a factor: the sum stays as it is.
            return None;
        }
        let mut out = singles;
        for (_, members) in groups {
            if members.len() == 1 {
                out.push(members[0]);
                continue;
            }
            // Take off the longest run of factors the members share on this side at once,
            // not one factor per level, so that long shared chains factor in linear time.
            let parts: Vec<Parts> = members.iter().map(|&t| self.open_parts(t)).collect();
            let run = common_run(&parts, side);
            let rests: Vec<Id> = parts
                .into_iter()
                .map(|p| self.rest(p, run.len(), side))
                .collect();
            // A 1×1 rest next to matrix rests stands for a multiple of the identity.
            let any_matrix = rests.iter().any(|&r| !self.is_scalar(r));
            let n = match side {
                Side::Right => self.shape(run[0]).rows,
                Side::Left => self.shape(run[run.len() - 1]).cols,
            };
            let mut fixed = Vec::with_capacity(rests.len());
            for r in rests {
                if any_matrix && self.is_scalar(r) {
                    let eye = self.identity(n);
                    fixed.push(self.mul(&[r, eye]));
                } else {
                    fixed.push(r);
                }
            }
            let inner = self.add(&fixed);
            let inner = self.factor_sum(inner);
            let mut factors = Vec::with_capacity(run.len() + 1);
            match side {
                Side::Right => {
                    factors.push(inner);
                    factors.extend(run);
                }
                Side::Left => {
                    factors.extend(run);
                    factors.push(inner);
                }
            }
            let term = self.mul(&factors);
            out.push(term);
        }
        Some(self.add(&out))
    }

    /// The parts of a product with the long chains in it opened up.
    /// A transposed product is opened too, `(A*x)'` as `x'*A'`, so that it factors with
    /// `x'*B`.
    fn open_parts(&mut self, t: Id) -> Parts {
        let mut p = self.parts(t);
        if let [one] = p.chain.as_slice()
            && let Node::Transpose(m) = *self.node(*one)
            && matches!(self.node(m), Node::Mul(_))
        {
            let q = self.parts(m);
            // Short chains only: opening costs a transpose per factor, and a long
            // transposed chain (a deep network's Hessian) seldom shares an edge.
            if (2..=8).contains(&q.chain.len()) {
                p.coef *= q.coef;
                p.scalars.extend(q.scalars);
                let mut rev = Vec::with_capacity(q.chain.len());
                for &f in q.chain.iter().rev() {
                    rev.push(self.t(f));
                }
                p.chain = rev;
            }
        }
        if p.chain.iter().any(|&c| self.is_chain_block(c)) {
            p.chain = self.mul_factors(&p.chain, |_| true);
        }
        p
    }

    /// The outermost matrix factor of a term on one side, if it has one.
    fn edge(&mut self, t: Id, side: Side) -> Option<Id> {
        let p = self.open_parts(t);
        match side {
            Side::Right => p.chain.last().copied(),
            Side::Left => p.chain.first().copied(),
        }
    }

    /// A product without `k` matrix factors on one side.
    fn rest(&mut self, p: Parts, k: usize, side: Side) -> Id {
        let mut rest: Vec<Id> = vec![self.num(p.coef)];
        rest.extend(p.scalars);
        let n = p.chain.len();
        match side {
            Side::Right => rest.extend(&p.chain[..n - k]),
            Side::Left => rest.extend(&p.chain[k..]),
        }
        self.mul(&rest)
    }
}

/// The longest run of matrix factors that every product's chain has on one side.
fn common_run(parts: &[Parts], side: Side) -> Vec<Id> {
    let first = &parts[0].chain;
    let at = |chain: &[Id], i: usize| match side {
        Side::Right => chain[chain.len() - 1 - i],
        Side::Left => chain[i],
    };
    let shortest = parts.iter().map(|p| p.chain.len()).min().unwrap_or(0);
    let k = (0..shortest)
        .take_while(|&i| parts.iter().all(|p| at(&p.chain, i) == at(first, i)))
        .count();
    match side {
        Side::Right => first[first.len() - k..].to_vec(),
        Side::Left => first[..k].to_vec(),
    }
}

#[derive(Clone, Copy)]
enum Side {
    Left,
    Right,
}

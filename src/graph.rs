//! The expression graph: a hash-consed arena where equal subexpressions are one node.
//!
//! Children always have smaller ids than their parents, so walking ids upwards is a
//! topological order; every pass over the graph is a loop over ids, not a recursion.

use crate::shape::{Dim, Dims, Shape};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// A node's index in the [`Graph`]; equal ids mean equal expressions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub u32);

impl Id {
    /// The index as usize.
    pub fn idx(self) -> usize {
        self.0 as usize
    }
}

/// An interned symbol name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol(pub u32);

/// What a symbol stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A 1×1 value (`--scalar`, Greek names).
    Scalar,
    /// An n×1 column (lowercase names, `--vector`).
    Vector,
    /// An m×n matrix (uppercase names, `--matrix`).
    Matrix,
    /// An n×n matrix equal to its transpose (`--symmetric`).
    Symmetric,
}

impl Kind {
    /// The word used in messages.
    pub fn word(self) -> &'static str {
        match self {
            Kind::Scalar => "scalar",
            Kind::Vector => "vector",
            Kind::Matrix => "matrix",
            Kind::Symmetric => "symmetric matrix",
        }
    }
}

/// What is known about a symbol.
#[derive(Clone, Debug)]
pub struct SymbolInfo {
    /// The name as written.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Its shape.
    pub shape: Shape,
}

/// The built-in functions. Elementwise ones map each entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Func {
    /// `exp(u)`
    Exp,
    /// `log(u)`
    Log,
    /// `sin(u)`
    Sin,
    /// `cos(u)`
    Cos,
    /// `tan(u)`
    Tan,
    /// `tanh(u)`
    Tanh,
    /// `sqrt(u)`
    Sqrt,
    /// `abs(u)`
    Abs,
    /// `arcsin(u)`
    Arcsin,
    /// `arccos(u)`
    Arccos,
    /// `arctan(u)`
    Arctan,
    /// `relu(u)`
    Relu,
    /// `step(u)`
    Step,
    /// `sign(u)`
    Sign,
    /// `sigmoid(u)`
    Sigmoid,
    /// `softplus(u)`
    Softplus,
    /// `sum(u)`
    Sum,
    /// `norm2(u)`
    Norm2,
    /// `norm1(u)`
    Norm1,
    /// `softmax(u)`
    Softmax,
    /// `logsumexp(u)`
    Logsumexp,
    /// `tr(A)`
    Tr,
    /// `det(A)`
    Det,
    /// `logdet(A)`
    Logdet,
    /// `inv(A)`
    Inv,
    /// `diag(u)` of a vector: the diagonal matrix.
    DiagMat,
    /// `diag(A)` of a matrix: the vector of its diagonal.
    DiagVec,
    /// `vec(A)`
    Vec,
}

/// Every function name the language knows, with the function it names.
pub const FUNCTION_NAMES: [(&str, Func); 27] = [
    ("exp", Func::Exp),
    ("log", Func::Log),
    ("sin", Func::Sin),
    ("cos", Func::Cos),
    ("tan", Func::Tan),
    ("tanh", Func::Tanh),
    ("sqrt", Func::Sqrt),
    ("abs", Func::Abs),
    ("arcsin", Func::Arcsin),
    ("arccos", Func::Arccos),
    ("arctan", Func::Arctan),
    ("relu", Func::Relu),
    ("step", Func::Step),
    ("sign", Func::Sign),
    ("sigmoid", Func::Sigmoid),
    ("softplus", Func::Softplus),
    ("sum", Func::Sum),
    ("norm2", Func::Norm2),
    ("norm1", Func::Norm1),
    ("softmax", Func::Softmax),
    ("logsumexp", Func::Logsumexp),
    ("tr", Func::Tr),
    ("det", Func::Det),
    ("logdet", Func::Logdet),
    ("inv", Func::Inv),
    ("diag", Func::DiagMat),
    ("vec", Func::Vec),
];

impl Func {
    /// The name as written in jacob's language.
    pub fn name(self) -> &'static str {
        match self {
            Func::DiagVec => "diag",
            f => FUNCTION_NAMES
                .iter()
                .find(|(_, g)| *g == f)
                .map(|(n, _)| *n)
                .unwrap_or("?"),
        }
    }

    /// True for functions applied entry by entry.
    pub fn is_elementwise(self) -> bool {
        use Func::*;
        matches!(
            self,
            Exp | Log
                | Sin
                | Cos
                | Tan
                | Tanh
                | Sqrt
                | Abs
                | Arcsin
                | Arccos
                | Arctan
                | Relu
                | Step
                | Sign
                | Sigmoid
                | Softplus
        )
    }

    /// True for functions whose value is 1×1.
    pub fn is_scalar_valued(self) -> bool {
        use Func::*;
        matches!(self, Sum | Norm2 | Norm1 | Logsumexp | Tr | Det | Logdet)
    }
}

/// A number stored by its bits so that it can be hashed; -0 is stored as 0.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Num(u64);

impl Num {
    /// Wraps a finite number.
    pub fn new(v: f64) -> Num {
        Num(if v == 0.0 { 0.0f64 } else { v }.to_bits())
    }
    /// The value.
    pub fn get(self) -> f64 {
        f64::from_bits(self.0)
    }
}

impl fmt::Debug for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.get())
    }
}

/// One node of the graph. Sums and products are n-ary, so a sum of 100,000 terms is
/// one wide node, not 100,000 levels.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    /// `2.5`
    Num(Num),
    /// `x`, `A`, `lambda`
    Sym(Symbol),
    /// `I`, the identity of the given size.
    Identity(Dim),
    /// `ones`, all ones of the given shape.
    Ones(Dim, Dim),
    /// `0`, all zeros of the given shape.
    Zero(Dim, Dim),
    /// `rows(A)`, `cols(A)`, `3`: a size as a 1×1 number (a constant: its derivative is 0).
    Size(Dim),
    /// `commutation(X)` for an m×n X: the mn×mn permutation K with K*vec(X) = vec(X').
    Commutation(Dim, Dim),
    /// A placeholder for the differential of an operand while the differentiator works
    /// (slot, rows, columns); never printed or evaluated.
    Hole(u32, Dim, Dim),
    /// `a + b - c`: terms of one shape; a 1×1 term is broadcast.
    Add(Box<[Id]>),
    /// `2*A*x`: 1×1 factors scale; the others form a matrix product, in order.
    Mul(Box<[Id]>),
    /// `u .* v`: elementwise product of factors of one shape.
    Had(Box<[Id]>),
    /// `s^p`: power of a scalar, `[base, exponent]` (`s/c` is `s*c^-1`).
    Pow([Id; 2]),
    /// `u.^p`: elementwise power by a scalar, `[base, exponent]` (`u./v` is `u.*v.^-1`).
    EPow([Id; 2]),
    /// `A'`
    Transpose(Id),
    /// `f(u)`
    Call(Func, Id),
    /// `kron(A, B)`
    Kron([Id; 2]),
}

impl Node {
    /// The children, in order.
    pub fn children(&self) -> &[Id] {
        match self {
            Node::Num(_)
            | Node::Sym(_)
            | Node::Identity(_)
            | Node::Ones(..)
            | Node::Zero(..)
            | Node::Size(_)
            | Node::Commutation(..)
            | Node::Hole(..) => &[],
            Node::Add(c) | Node::Mul(c) | Node::Had(c) => c,
            Node::Pow(ab) | Node::EPow(ab) | Node::Kron(ab) => ab,
            Node::Transpose(a) | Node::Call(_, a) => std::slice::from_ref(a),
        }
    }
}

/// The store of all expressions: nodes, their shapes, the dimension table and the
/// symbol table.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    nodes: Vec<Node>,
    shapes: Vec<Shape>,
    memo: rustc_hash::FxHashMap<Node, Id>,
    costs: Vec<u64>,
    keys: Vec<u64>,
    symmetric: Vec<bool>,
    /// Whether a node contains a differentiator's placeholder ([`Node::Hole`]).
    holes: Vec<bool>,
    /// Transposes already formed, so that pushing `'` through a subexpression is done once.
    pub(crate) transposed: HashMap<Id, Id>,
    /// The symbolic dimensions.
    pub dims: Dims,
    symbols: Vec<SymbolInfo>,
    symbol_ids: HashMap<String, Symbol>,
    /// Why constant folding went wrong, if it did: a number that is not finite is never
    /// stored, and the command reports this instead of an answer.
    pub(crate) folding_problem: Option<&'static str>,
    /// Names the input binds with `where`: printed bindings never reuse them.
    pub reserved: HashSet<String>,
    /// The symbols `dX` that stand for the differential of a variable `X`
    /// (`--form differential`), with that variable.
    pub differential_of: HashMap<Symbol, Symbol>,
    /// The variable derivatives are being taken by: sizes are written with it first
    /// (`eye(rows(y))` in a Hessian by y).
    pub focus: Option<Symbol>,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Graph {
        Graph::default()
    }

    /// Stores a node with its shape, or finds it if stored already.
    pub fn intern(&mut self, node: Node, shape: Shape) -> Id {
        if let Some(&id) = self.memo.get(&node) {
            return id;
        }
        let id = Id(self.nodes.len() as u32);
        let cost = self.node_cost(&node);
        let key = self.node_key(&node);
        let symmetric = self.node_symmetric(&node, shape);
        self.nodes.push(node.clone());
        self.shapes.push(shape);
        self.costs.push(cost);
        self.keys.push(key);
        self.symmetric.push(symmetric);
        let hole =
            matches!(node, Node::Hole(..)) || node.children().iter().any(|c| self.holes[c.idx()]);
        self.holes.push(hole);
        self.memo.insert(node, id);
        id
    }

    /// The size of the expression as printed: one per operator, name or number,
    /// counting a shared subexpression each time it occurs (saturating).
    pub fn cost(&self, id: Id) -> u64 {
        self.costs[id.idx()]
    }

    /// A hash of the expression's structure that does not depend on ids, so that the
    /// same expression sorts the same way in any graph (deterministic output order).
    pub fn key(&self, id: Id) -> u64 {
        self.keys[id.idx()]
    }

    /// The order in which commutative operands are stored and printed.
    pub fn order_key(&self, id: Id) -> (u64, u64, Id) {
        (self.cost(id), self.key(id), id)
    }

    /// FNV-1a over the node's kind, its own data and its children's keys: a hash whose
    /// algorithm is fixed (std's `DefaultHasher` may change between Rust releases, and
    /// the order of terms and the snapshots with it).
    fn node_key(&self, node: &Node) -> u64 {
        use std::hash::Hasher;
        let mut h = fnv::FnvHasher::default();
        let tag: u8 = match node {
            Node::Num(_) => 0,
            Node::Sym(_) => 1,
            Node::Identity(_) => 2,
            Node::Ones(..) => 3,
            Node::Zero(..) => 4,
            Node::Add(_) => 5,
            Node::Mul(_) => 6,
            Node::Had(_) => 7,
            Node::Pow(_) => 8,
            Node::EPow(_) => 9,
            Node::Transpose(_) => 10,
            Node::Call(..) => 11,
            Node::Kron(_) => 12,
            Node::Size(_) => 13,
            Node::Commutation(..) => 14,
            Node::Hole(..) => 15,
        };
        h.write_u8(tag);
        match node {
            Node::Num(n) => h.write_u64(n.get().to_bits()),
            Node::Sym(s) => h.write(self.symbol(*s).name.as_bytes()),
            Node::Call(f, _) => h.write_u8(*f as u8),
            Node::Size(d) => h.write_u64(self.dims.value(*d).unwrap_or(0)),
            Node::Hole(k, ..) => h.write_u32(*k),
            _ => {}
        }
        for c in node.children() {
            h.write_u64(self.keys[c.idx()]);
        }
        h.finish()
    }

    /// True when the node is known to equal its transpose.
    pub fn is_symmetric(&self, id: Id) -> bool {
        self.symmetric[id.idx()] || self.is_scalar(id)
    }

    fn node_cost(&self, node: &Node) -> u64 {
        let children = node.children();
        let sum = children
            .iter()
            .fold(0u64, |acc, c| acc.saturating_add(self.costs[c.idx()]));
        let ops = match node {
            Node::Add(_) | Node::Mul(_) | Node::Had(_) => children.len().saturating_sub(1) as u64,
            _ => 1,
        };
        match node {
            Node::Num(n) if n.get() < 0.0 => 2,
            Node::Num(_) | Node::Sym(_) | Node::Identity(_) | Node::Ones(..) | Node::Zero(..) => 1,
            Node::Size(_) | Node::Commutation(..) => 2,
            Node::Hole(..) => 1,
            // A coefficient -1 prints as a minus sign: `-x` is two, not three.
            Node::Mul(f) if f.first().and_then(|&c| self.as_num(c)) == Some(-1.0) => {
                sum.saturating_add(ops).saturating_sub(1)
            }
            _ => sum.saturating_add(ops),
        }
    }

    fn node_symmetric(&self, node: &Node, shape: Shape) -> bool {
        let sym = |id: &Id| self.symmetric[id.idx()] || self.is_scalar(*id);
        match node {
            Node::Sym(s) => self.symbol(*s).kind == Kind::Symmetric,
            Node::Identity(_) | Node::Call(Func::DiagMat, _) => true,
            Node::Ones(r, c) | Node::Zero(r, c) | Node::Commutation(r, c) => {
                self.dims.find(*r) == self.dims.find(*c)
            }
            Node::Add(ts) | Node::Had(ts) => !self.dims.is_scalar(shape) && ts.iter().all(sym),
            Node::Mul(fs) => {
                let chain: Vec<Id> = fs.iter().copied().filter(|f| !self.is_scalar(*f)).collect();
                let k = chain.len();
                k > 0
                    && (0..k.div_ceil(2)).all(|i| {
                        let (a, b) = (chain[i], chain[k - 1 - i]);
                        if i == k - 1 - i {
                            sym(&a)
                        } else {
                            self.nodes[b.idx()] == Node::Transpose(a)
                                || self.nodes[a.idx()] == Node::Transpose(b)
                                || (a == b && sym(&a))
                        }
                    })
            }
            Node::EPow([u, _]) | Node::Transpose(u) => sym(u),
            Node::Call(f, u) => (f.is_elementwise() || *f == Func::Inv) && sym(u),
            Node::Kron([a, b]) => sym(a) && sym(b),
            _ => false,
        }
    }

    /// The node with this id.
    pub fn node(&self, id: Id) -> &Node {
        &self.nodes[id.idx()]
    }

    /// The children of a node, in order.
    pub fn children(&self, id: Id) -> &[Id] {
        self.node(id).children()
    }

    /// The shape of a node, with dimensions resolved.
    pub fn shape(&self, id: Id) -> Shape {
        self.dims.resolve(self.shapes[id.idx()])
    }

    /// True when the node is 1×1.
    pub fn is_scalar(&self, id: Id) -> bool {
        self.dims.is_scalar(self.shapes[id.idx()])
    }

    /// The number of nodes stored.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The symbol with this name, if declared.
    pub fn lookup(&self, name: &str) -> Option<Symbol> {
        self.symbol_ids.get(name).copied()
    }

    /// Declares a symbol of a kind, with a fresh shape.
    pub fn declare(&mut self, name: &str, kind: Kind) -> Symbol {
        if let Some(s) = self.lookup(name) {
            return s;
        }
        let shape = match kind {
            Kind::Scalar => Shape::SCALAR,
            Kind::Vector => Shape::new(self.dims.fresh(), Dim::One),
            Kind::Matrix => Shape::new(self.dims.fresh(), self.dims.fresh()),
            Kind::Symmetric => {
                let n = self.dims.fresh();
                Shape::new(n, n)
            }
        };
        self.declare_shaped(name, kind, shape)
    }

    /// Declares a symbol that stands for a subexpression of a known shape (the named
    /// steps of `--explain`); an existing name keeps its symbol.
    pub fn declare_shaped(&mut self, name: &str, kind: Kind, shape: Shape) -> Symbol {
        if let Some(s) = self.lookup(name) {
            return s;
        }
        let sym = Symbol(self.symbols.len() as u32);
        self.symbols.push(SymbolInfo {
            name: name.to_string(),
            kind,
            shape,
        });
        self.symbol_ids.insert(name.to_string(), sym);
        sym
    }

    /// What is known about a symbol.
    pub fn symbol(&self, s: Symbol) -> &SymbolInfo {
        &self.symbols[s.0 as usize]
    }

    /// All symbols, in order of declaration.
    pub fn symbols(&self) -> impl Iterator<Item = (Symbol, &SymbolInfo)> {
        self.symbols
            .iter()
            .enumerate()
            .map(|(i, s)| (Symbol(i as u32), s))
    }

    /// The node for a symbol.
    pub fn sym(&mut self, s: Symbol) -> Id {
        let shape = self.symbol(s).shape;
        self.intern(Node::Sym(s), shape)
    }

    /// The node for a number. A number that is not finite (an overflow in constant
    /// folding) is recorded as a [`Graph::folding_problem`] and stored as 0.
    pub fn num(&mut self, v: f64) -> Id {
        let v = if v.is_finite() {
            v
        } else {
            self.folding_problem.get_or_insert(if v.is_nan() {
                "the constants have no numeric value (0/0 or ∞ - ∞)"
            } else {
                "the constants overflow to infinity when multiplied or added out"
            });
            0.0
        };
        self.intern(Node::Num(Num::new(v)), Shape::SCALAR)
    }

    /// What went wrong in constant folding, if anything.
    pub fn folding_problem(&self) -> Option<&'static str> {
        self.folding_problem
    }

    /// A symbol with the size `d` as its rows (`false`) or columns (`true`), the first in
    /// order of declaration: what `rows(A)` or `cols(A)` is printed with.
    pub fn size_witness(&self, d: Dim) -> Option<(Symbol, bool)> {
        self.size_witness_in(d, &HashSet::new())
    }

    /// As [`Graph::size_witness`], preferring the symbols in `prefer` (those of the text
    /// being printed, so that `eye(rows(z))` names a symbol the reader sees).
    pub fn size_witness_in(&self, d: Dim, prefer: &HashSet<Symbol>) -> Option<(Symbol, bool)> {
        let d = self.dims.find(d);
        let has = |info: &SymbolInfo| {
            if self.dims.find(info.shape.rows) == d {
                Some(false)
            } else if self.dims.find(info.shape.cols) == d {
                Some(true)
            } else {
                None
            }
        };
        // A symbol the text shows, then a vector (`rows(z)` is z's length), then any,
        // each in order of declaration.
        let rank = |s: Symbol, info: &SymbolInfo| {
            (
                !prefer.contains(&s),
                self.focus != Some(s),
                info.kind != Kind::Vector,
                self.differential_of.contains_key(&s),
            )
        };
        self.symbols()
            .filter_map(|(s, info)| has(info).map(|c| (rank(s, info), s, c)))
            .min_by_key(|(r, s, _)| (*r, *s))
            .map(|(_, s, c)| (s, c))
    }

    /// The node for the size `d` as a 1×1 number: `rows(A)`, `3`.
    pub fn size(&mut self, d: Dim) -> Id {
        let d = self.dims.find(d);
        match self.dims.value(d) {
            Some(n) => self.num(n as f64),
            None => self.intern(Node::Size(d), Shape::SCALAR),
        }
    }

    /// The numeric value, if the node is a number.
    pub fn as_num(&self, id: Id) -> Option<f64> {
        match self.node(id) {
            Node::Num(n) => Some(n.get()),
            _ => None,
        }
    }

    /// True when the node contains a placeholder of the differentiator.
    pub(crate) fn has_hole(&self, id: Id) -> bool {
        self.holes[id.idx()]
    }

    /// The nodes reachable from `roots` through nodes `keep` accepts (others are neither
    /// listed nor entered), in increasing id order.
    pub(crate) fn reachable_where(&self, roots: &[Id], keep: impl Fn(Id) -> bool) -> Vec<Id> {
        let mut seen: rustc_hash::FxHashSet<Id> = rustc_hash::FxHashSet::default();
        let mut stack: Vec<Id> = roots.iter().copied().filter(|&r| keep(r)).collect();
        let mut out = Vec::new();
        while let Some(id) = stack.pop() {
            if seen.insert(id) {
                out.push(id);
                stack.extend(self.children(id).iter().copied().filter(|&c| keep(c)));
            }
        }
        out.sort_unstable();
        out
    }

    /// The nodes reachable from `roots`, in increasing id order (children first).
    pub fn reachable(&self, roots: &[Id]) -> Vec<Id> {
        // Work in the size of what is reached, not of the whole graph: printing one
        // small step of a large graph (`--explain`) must stay cheap.
        let mut seen: rustc_hash::FxHashSet<Id> = rustc_hash::FxHashSet::default();
        let mut stack: Vec<Id> = roots.to_vec();
        let mut out = Vec::new();
        while let Some(id) = stack.pop() {
            if seen.insert(id) {
                out.push(id);
                stack.extend_from_slice(self.children(id));
            }
        }
        out.sort_unstable();
        out
    }

    /// Which of the nodes reachable from `root` contain the symbol `var`.
    pub fn depends_on(&self, root: Id, var: Symbol) -> Vec<bool> {
        let mut dep = vec![false; self.len()];
        for id in self.reachable(&[root]) {
            dep[id.idx()] = match self.node(id) {
                Node::Sym(s) => *s == var,
                _ => self.children(id).iter().any(|c| dep[c.idx()]),
            };
        }
        dep
    }

    /// The factors of an elementwise product with the products nested in it (and
    /// accepted by `open`) opened up, in the order a flat product would have them.
    pub fn had_factors(&self, factors: &[Id], open: impl Fn(Id) -> bool) -> Vec<Id> {
        let mut out = Vec::with_capacity(factors.len());
        let mut stack: Vec<Id> = factors.iter().rev().copied().collect();
        let mut opened = false;
        while let Some(x) = stack.pop() {
            match self.node(x) {
                Node::Had(fs) if open(x) => {
                    stack.extend(fs.iter().rev());
                    opened = true;
                }
                _ => out.push(x),
            }
        }
        if opened {
            out.sort_by_key(|&x| self.order_key(x));
        }
        out
    }

    /// The factors of a product with the long matrix chains nested in it (and accepted
    /// by `open`) opened up, in order.
    pub fn mul_factors(&self, factors: &[Id], open: impl Fn(Id) -> bool) -> Vec<Id> {
        let mut out = Vec::with_capacity(factors.len());
        let mut stack: Vec<Id> = factors.iter().rev().copied().collect();
        while let Some(x) = stack.pop() {
            match self.node(x) {
                Node::Mul(fs) if self.is_chain_block(x) && open(x) => stack.extend(fs.iter().rev()),
                _ => out.push(x),
            }
        }
        out
    }

    /// The longest path from `root` down to a leaf.
    pub fn depth(&self, root: Id) -> usize {
        let mut depth = vec![0usize; self.len()];
        for id in self.reachable(&[root]) {
            depth[id.idx()] = 1 + self
                .children(id)
                .iter()
                .map(|c| depth[c.idx()])
                .max()
                .unwrap_or(0);
        }
        depth[root.idx()]
    }
}

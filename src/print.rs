//! The text printer: jacob's own syntax with minimal parentheses, which jacob reads
//! back to the same expression. A pure function of the graph.

use crate::fixed::Fixed;
use crate::graph::{Graph, Id, Node, Symbol};
use crate::shape::{Dim, Shape};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

/// Binding strength of a printed form, loosest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Prec {
    /// `a + b`
    Add,
    /// `a*b`, `a/b`, `a.*b`
    Mul,
    /// `-a`
    Neg,
    /// `a^b`
    Pow,
    /// `a'`
    Postfix,
    /// names, numbers, calls, parentheses
    Atom,
}

/// Formats a number so that it reads back exactly: `2`, `0.5`, `1e-7`.
pub fn format_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:?}")
    }
}

/// How deep a printed form may nest before a part of it is named on a `where` binding:
/// deep enough that no one reading meets it (a 250-layer network), shallow enough that
/// printing fits a browser's stack, where the printer's recursion cannot move to the
/// heap.
const MAX_NESTING: u32 = 500;

/// Prints an expression in jacob's syntax. A subexpression that occurs more than once
/// and is long enough is printed once, as a `where` binding, so that the output grows
/// linearly with the depth of a network, not quadratically.
pub fn text(g: &Graph, id: Id) -> String {
    let names = names_within(g, id, MAX_NESTING);
    let plain = PlainCache::default();
    let fixed = Fixed::new(g, id);
    let printer = Printer {
        g,
        names: &names,
        plain: &plain,
        fixed: &fixed,
    };
    let mut out = String::new();
    printer.expr(id, &mut out);
    let mut bound: Vec<(&Id, &String)> = names.iter().collect();
    bound.sort();
    for (i, (&node, name)) in bound.into_iter().enumerate() {
        out.push_str(if i == 0 { " where " } else { ", " });
        out.push_str(name);
        out.push_str(" = ");
        printer.form(node, &mut out);
    }
    out
}

/// The plain text of short terms, kept while one expression prints: sorting the terms
/// of nested sums would otherwise print the same subterms again at every level.
#[derive(Default)]
pub struct PlainCache(RefCell<HashMap<Id, String>>);

/// The order in which a sum's terms are printed: short terms alphabetically
/// (`A*x + b`, `A + A'`), long ones after them by size and structure; never by id, so that
/// printed text read back prints the same.
/// `cache` keeps the plain texts for the whole printing.
pub(crate) fn term_order(g: &Graph, terms: &[Id], cache: &PlainCache, fixed: &Fixed) -> Vec<Id> {
    let plain = |t: Id| {
        if g.cost(t) >= 50 {
            return String::new();
        }
        if let Some(s) = cache.0.borrow().get(&t) {
            return s.clone();
        }
        let mut out = String::new();
        Printer {
            g,
            names: &HashMap::new(),
            plain: cache,
            fixed,
        }
        .form(t, &mut out);
        cache.0.borrow_mut().insert(t, out.clone());
        out
    };
    let mut keyed: Vec<_> = terms
        .iter()
        .map(|&t| {
            (
                g.cost(t) >= 50,
                plain(t),
                std::cmp::Reverse(g.cost(t)),
                g.key(t),
                t,
            )
        })
        .collect();
    keyed.sort();
    keyed.into_iter().map(|k| k.4).collect()
}

/// Chooses the subexpressions worth naming, with names that no symbol uses: those
/// that occur more than once and are long enough, and those nested deeper than
/// `max_depth` levels below the last name, so that no printed form nests deeper (LaTeX
/// allows 255 levels of grouping; a browser's stack a few hundred).
pub fn names_within(g: &Graph, root: Id, max_depth: u32) -> HashMap<Id, String> {
    let order = g.reachable(&[root]);
    let mut uses: HashMap<Id, u64> = HashMap::new();
    for &id in &order {
        for &c in g.children(id) {
            *uses.entry(c).or_default() += 1;
        }
    }
    // Printed size of each node once the nodes below it that get names are names.
    let mut size: HashMap<Id, u64> = HashMap::new();
    let mut depth: HashMap<Id, u32> = HashMap::new();
    let mut named: Vec<Id> = Vec::new();
    for &id in &order {
        let d = 1 + g.children(id).iter().map(|c| depth[c]).max().unwrap_or(0);
        let own = g.cost(id).saturating_sub(
            g.children(id)
                .iter()
                .map(|c| g.cost(*c))
                .fold(0u64, u64::saturating_add),
        );
        let s = g
            .children(id)
            .iter()
            .fold(own.max(1), |acc, c| acc.saturating_add(size[c]));
        let k = uses.get(&id).copied().unwrap_or(0);
        // A name for `1/gamma` or `x'` would save nothing a reader cares about.
        let trivial = d <= 2 && s <= 4;
        let worth = k >= 2
            && !trivial
            && s >= 4
            && k.saturating_mul(s) >= k.saturating_add(s).saturating_add(2);
        let deep = d > max_depth && id != root;
        if (worth || deep) && !matches!(g.node(id), Node::Num(_) | Node::Sym(_)) {
            named.push(id);
            size.insert(id, 1);
            depth.insert(id, 1);
        } else {
            size.insert(id, s);
            depth.insert(id, d);
        }
    }
    if named.is_empty() {
        return HashMap::new();
    }
    let taken: HashSet<&str> = g
        .symbols()
        .map(|(_, info)| info.name.as_str())
        .chain(g.reserved.iter().map(String::as_str))
        .collect();
    let prefix = ["h", "t", "u", "v", "z"]
        .into_iter()
        .find(|p| {
            !taken
                .iter()
                .any(|n| n.starts_with(p) && n[p.len()..].chars().all(|c| c.is_ascii_digit()))
        })
        .unwrap_or("tmp_h");
    named
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, format!("{prefix}{}", i + 1)))
        .collect()
}

struct Printer<'a> {
    g: &'a Graph,
    names: &'a HashMap<Id, String>,
    plain: &'a PlainCache,
    fixed: &'a Fixed,
}

/// How a constant whose size the text around it does not fix carries its size:
/// `eye(n)`, `ones(n)`, `ones(n)'`, `ones(m, n)`, `zeros(…)` alike.
pub(crate) enum Sized {
    /// `eye(n)`
    Eye(Dim),
    /// `ones(n)` or `zeros(n)`: a column.
    Column(Dim),
    /// `ones(n)'` or `zeros(n)'`: a row.
    Row(Dim),
    /// `ones(m, n)` or `zeros(m, n)`.
    Matrix(Dim, Dim),
}

impl Sized {
    /// The sized form of a constant of shape `s`.
    pub(crate) fn of(g: &Graph, node: &Node, s: Shape) -> Sized {
        let one = |d: Dim| g.dims.find(d) == Dim::One;
        match node {
            Node::Identity(n) => Sized::Eye(*n),
            _ if one(s.cols) => Sized::Column(s.rows),
            _ if one(s.rows) => Sized::Row(s.cols),
            _ => Sized::Matrix(s.rows, s.cols),
        }
    }
}

/// The factors of a size as the text writes them: a number, or `rows(A)`/`cols(A)` of
/// the first symbol that has it (`(symbol, columns?)`); a product dimension (the rows of
/// `vec(A)`) is several factors.
pub(crate) enum SizePart {
    /// A size written as a number.
    Number(u64),
    /// `rows(A)` (false) or `cols(A)` (true).
    Of(crate::graph::Symbol, bool),
    /// A size no symbol has (it came from a bare `I` in the input): `rows(I)`, as
    /// unknown as the input left it.
    Unknown,
}

/// The parts of the size `d`, multiplied.
pub(crate) fn size_parts(g: &Graph, d: Dim, prefer: &HashSet<Symbol>) -> Vec<SizePart> {
    let d = g.dims.find(d);
    if let Some(n) = g.dims.value(d) {
        return vec![SizePart::Number(n)];
    }
    if let Some((s, cols)) = g.size_witness_in(d, prefer) {
        return vec![SizePart::Of(s, cols)];
    }
    if g.dims.factors(d).is_none() {
        return vec![SizePart::Unknown];
    }
    g.dims
        .atoms(d)
        .into_iter()
        .map(|a| match (g.dims.value(a), g.size_witness_in(a, prefer)) {
            (Some(n), _) => SizePart::Number(n),
            (None, Some((s, cols))) => SizePart::Of(s, cols),
            (None, None) => SizePart::Unknown,
        })
        .collect()
}

/// A symbol whose shape is exactly `m×n`, if any, in order of declaration.
pub(crate) fn symbol_of_shape(g: &Graph, m: Dim, n: Dim) -> Option<crate::graph::Symbol> {
    let (m, n) = (g.dims.find(m), g.dims.find(n));
    g.symbols()
        .find(|(_, i)| g.dims.find(i.shape.rows) == m && g.dims.find(i.shape.cols) == n)
        .map(|(s, _)| s)
}

/// `commutation(X)` for a symbol X of the shape, else `commutation(m, n)` with sizes.
fn commutation_text(g: &Graph, m: Dim, n: Dim, prefer: &HashSet<Symbol>) -> String {
    match symbol_of_shape(g, m, n) {
        Some(s) => format!("commutation({})", g.symbol(s).name),
        None => format!(
            "commutation({}, {})",
            size_text(g, m, prefer),
            size_text(g, n, prefer)
        ),
    }
}

/// The text of the size `d`: `rows(A)`, `cols(x)`, `3`, `rows(A)*cols(A)`.
pub(crate) fn size_text(g: &Graph, d: Dim, prefer: &HashSet<Symbol>) -> String {
    let parts: Vec<String> = size_parts(g, d, prefer)
        .into_iter()
        .map(|p| match p {
            SizePart::Number(n) => n.to_string(),
            SizePart::Of(s, false) => format!("rows({})", g.symbol(s).name),
            SizePart::Of(s, true) => format!("cols({})", g.symbol(s).name),
            SizePart::Unknown => "rows(I)".to_string(),
        })
        .collect();
    parts.join("*")
}

/// A product split for printing: sign, numeric coefficient, numerator and denominator
/// factors. The text and LaTeX printers share it, so both lay a product out alike.
pub(crate) struct Fraction {
    pub(crate) negative: bool,
    pub(crate) coef: f64,
    pub(crate) num: Vec<Id>,
    pub(crate) den: Vec<(Id, f64)>,
}

impl Fraction {
    /// The factors of `id`; a named subexpression stays one factor.
    pub(crate) fn of(g: &Graph, id: Id, names: &HashMap<Id, String>) -> Fraction {
        let mut f = Fraction {
            negative: false,
            coef: 1.0,
            num: Vec::new(),
            den: Vec::new(),
        };
        let factors: Vec<Id> = match g.node(id) {
            // A long chain kept whole inside the product (see `BLOCK`) prints as part of it.
            Node::Mul(fs) => g.mul_factors(fs, |x| !names.contains_key(&x)),
            _ => vec![id],
        };
        for x in factors {
            if names.contains_key(&x) {
                f.num.push(x);
                continue;
            }
            if let Some(v) = g.as_num(x) {
                f.coef *= v;
                continue;
            }
            if let Node::Pow([b, p]) = g.node(x)
                && let Some(e) = g.as_num(*p)
                && e < 0.0
            {
                f.den.push((*b, -e));
                continue;
            }
            f.num.push(x);
        }
        if f.coef < 0.0 {
            f.negative = true;
            f.coef = -f.coef;
        }
        f
    }

    /// The whole number k when the coefficient is 1/k and reads better as a division:
    /// `(G + G')/2`.
    pub(crate) fn divisor(&self) -> Option<f64> {
        let k = 1.0 / self.coef;
        (self.coef != 1.0 && k.fract() == 0.0 && k < 1e6 && !self.num.is_empty()).then_some(k)
    }

    /// True when the product prints as a division.
    pub(crate) fn is_frac(&self) -> bool {
        !self.den.is_empty() || self.divisor().is_some()
    }
}

/// Whether a term of a sum prints with a leading minus (a named one never does).
pub(crate) fn is_negative(g: &Graph, t: Id, names: &HashMap<Id, String>) -> bool {
    if names.contains_key(&t) {
        return false;
    }
    match g.node(t) {
        Node::Num(n) => n.get() < 0.0,
        Node::Mul(_) => Fraction::of(g, t, names).negative,
        _ => false,
    }
}

impl Printer<'_> {
    fn expr(&self, id: Id, out: &mut String) {
        self.at(id, Prec::Add, out);
    }

    /// Prints `id` where a form at least as tight as `min` is needed.
    fn at(&self, id: Id, min: Prec, out: &mut String) {
        if let Some(name) = self.names.get(&id) {
            out.push_str(name);
        } else if self.prec(id) < min {
            out.push('(');
            self.form(id, out);
            out.push(')');
        } else {
            self.form(id, out);
        }
    }

    fn fraction(&self, id: Id) -> Fraction {
        Fraction::of(self.g, id, self.names)
    }

    /// A 1×n row whose length is not 1.
    fn is_row(&self, id: Id) -> bool {
        let s = self.g.shape(id);
        self.g.dims.is_row(s) && !self.g.dims.is_scalar(s)
    }

    fn prec(&self, id: Id) -> Prec {
        let g = self.g;
        match g.node(id) {
            Node::Num(n) if n.get() < 0.0 => Prec::Neg,
            Node::Size(d) if size_parts(g, *d, &self.fixed.present).len() > 1 => Prec::Mul,
            Node::Ones(..) | Node::Zero(..) if self.is_row(id) => Prec::Postfix,
            Node::Num(_)
            | Node::Sym(_)
            | Node::Identity(_)
            | Node::Ones(..)
            | Node::Zero(..)
            | Node::Size(_)
            | Node::Commutation(..)
            | Node::Hole(..)
            | Node::Call(..)
            | Node::Kron(_) => Prec::Atom,
            Node::Add(_) => Prec::Add,
            Node::Mul(_) => {
                let f = self.fraction(id);
                let plain = f.coef == 1.0 && f.den.is_empty() && f.num.len() == 1;
                match (f.negative, plain) {
                    (true, true) => Prec::Neg,
                    _ => Prec::Mul,
                }
            }
            Node::Had(_) => Prec::Mul,
            Node::Pow([_, p]) if g.as_num(*p).is_some_and(|e| e < 0.0) => Prec::Mul,
            Node::Pow([_, p]) if g.as_num(*p) == Some(0.5) => Prec::Atom,
            Node::EPow([_, p]) if g.as_num(*p) == Some(-1.0) => Prec::Mul,
            Node::Pow(_) | Node::EPow(_) => Prec::Pow,
            Node::Transpose(_) => Prec::Postfix,
        }
    }

    /// Prints `id` itself (not its name); once a level of nesting, on enough stack.
    fn form(&self, id: Id, out: &mut String) {
        crate::stack::deeper(|| self.form_here(id, out));
    }

    fn form_here(&self, id: Id, out: &mut String) {
        let g = self.g;
        match g.node(id) {
            Node::Num(n) => out.push_str(&format_num(n.get())),
            Node::Sym(s) => out.push_str(&g.symbol(*s).name),
            Node::Size(d) => out.push_str(&size_text(g, *d, &self.fixed.present)),
            Node::Commutation(m, n) => {
                out.push_str(&commutation_text(g, *m, *n, &self.fixed.present))
            }
            Node::Hole(k, ..) => out.push_str(&format!("d{k}")),
            Node::Identity(_) if self.fixed.bare(g, id) => out.push('I'),
            // A row of ones reads back only with its transpose.
            Node::Ones(..) if self.fixed.bare(g, id) && self.is_row(id) => out.push_str("ones'"),
            Node::Ones(..) if self.fixed.bare(g, id) => out.push_str("ones"),
            Node::Identity(_) | Node::Ones(..) | Node::Zero(..) => {
                let word = match g.node(id) {
                    Node::Identity(_) => "eye",
                    Node::Ones(..) => "ones",
                    _ => "zeros",
                };
                out.push_str(word);
                out.push('(');
                match Sized::of(g, g.node(id), g.shape(id)) {
                    Sized::Eye(n) | Sized::Column(n) => {
                        out.push_str(&size_text(g, n, &self.fixed.present))
                    }
                    Sized::Row(n) => {
                        out.push_str(&size_text(g, n, &self.fixed.present));
                        out.push_str(")'");
                        return;
                    }
                    Sized::Matrix(r, c) => {
                        out.push_str(&size_text(g, r, &self.fixed.present));
                        out.push_str(", ");
                        out.push_str(&size_text(g, c, &self.fixed.present));
                    }
                }
                out.push(')');
            }
            Node::Add(ts) => self.sum(ts, out),
            Node::Mul(_) => self.product(id, out),
            Node::Had(fs) => self.hadamard(fs, out),
            Node::Pow([b, p]) => match g.as_num(*p) {
                Some(e) if e < 0.0 => {
                    out.push_str("1/");
                    self.power(*b, -e, "^", out);
                }
                Some(0.5) => self.sqrt(*b, out),
                _ => {
                    self.at(*b, Prec::Postfix, out);
                    out.push('^');
                    self.exponent(*p, out);
                }
            },
            Node::EPow([u, p]) => {
                if g.as_num(*p) == Some(-1.0) {
                    out.push_str("1./");
                    self.at(*u, Prec::Pow, out);
                } else {
                    self.at(*u, Prec::Postfix, out);
                    out.push_str(".^");
                    self.exponent(*p, out);
                }
            }
            Node::Transpose(a) => {
                self.at(*a, Prec::Postfix, out);
                out.push('\'');
            }
            Node::Call(f, u) => {
                out.push_str(f.name());
                out.push('(');
                self.expr(*u, out);
                out.push(')');
            }
            Node::Kron([a, b]) => {
                out.push_str("kron(");
                self.expr(*a, out);
                out.push_str(", ");
                self.expr(*b, out);
                out.push(')');
            }
        }
    }

    /// `s^0.5` as `sqrt(s)`.
    fn sqrt(&self, b: Id, out: &mut String) {
        out.push_str("sqrt(");
        self.expr(b, out);
        out.push(')');
    }

    fn exponent(&self, p: Id, out: &mut String) {
        match self.g.as_num(p) {
            Some(e) => out.push_str(&format_num(e)),
            None => self.at(p, Prec::Pow, out),
        }
    }

    /// `b^e`, or `b` when e is 1.
    fn power(&self, b: Id, e: f64, op: &str, out: &mut String) {
        if e == 1.0 {
            self.at(b, Prec::Pow, out);
        } else if e == 0.5 && op == "^" {
            self.sqrt(b, out);
        } else {
            self.at(b, Prec::Postfix, out);
            out.push_str(op);
            out.push_str(&format_num(e));
        }
    }

    fn sum(&self, terms: &[Id], out: &mut String) {
        // Positive terms first, so that `-y + A*x` reads `A*x - y`.
        let terms = term_order(self.g, terms, self.plain, self.fixed);
        let (pos, neg): (Vec<Id>, Vec<Id>) = terms.iter().partition(|&&t| !self.is_negative(t));
        for (i, &t) in pos.iter().chain(neg.iter()).enumerate() {
            let negative = self.is_negative(t);
            match (i, negative) {
                (0, false) => {}
                (0, true) => out.push('-'),
                (_, false) => out.push_str(" + "),
                (_, true) => out.push_str(" - "),
            }
            if negative {
                self.magnitude(t, out);
            } else {
                self.at(t, Prec::Mul, out);
            }
        }
    }

    fn is_negative(&self, t: Id) -> bool {
        is_negative(self.g, t, self.names)
    }

    /// A negative term printed without its sign.
    fn magnitude(&self, t: Id, out: &mut String) {
        match self.g.node(t) {
            Node::Num(n) => out.push_str(&format_num(-n.get())),
            _ => {
                let f = self.fraction(t);
                self.fraction_body(&f, out);
            }
        }
    }

    fn product(&self, id: Id, out: &mut String) {
        let f = self.fraction(id);
        if f.negative {
            out.push('-');
        }
        self.fraction_body(&f, out);
    }

    /// Coefficient, factors and divisors: `2*A*x`, `x/norm2(x)`, `(G + G')/2`.
    fn fraction_body(&self, f: &Fraction, out: &mut String) {
        let divisor = f.divisor();
        let mut first = true;
        if f.coef != 1.0 && divisor.is_none() || f.num.is_empty() {
            out.push_str(&format_num(if divisor.is_some() { 1.0 } else { f.coef }));
            first = false;
        }
        for &x in &f.num {
            if !first {
                out.push('*');
            }
            let min = if first && f.num.len() == 1 && f.den.is_empty() && divisor.is_none() {
                Prec::Neg
            } else {
                Prec::Pow
            };
            // Keep products of products readable: `(u.*v)*x'`.
            let sole = f.num.len() == 1 && f.den.is_empty() && divisor.is_none() && f.coef == 1.0;
            let scalar_chain = matches!(self.g.node(x), Node::Mul(_)) && self.g.is_scalar(x) && {
                let inner = self.fraction(x);
                inner.coef == 1.0 && !inner.negative && inner.den.is_empty()
            };
            let min = match self.g.node(x) {
                // A 1×1 product among factors reads back the same without parentheses.
                Node::Mul(_) if scalar_chain => Prec::Mul,
                // `-u.*v` reads back as -(u.*v); `2*(u.*v)` keeps its parentheses.
                Node::Had(_) if sole => Prec::Mul,
                Node::Had(_) => Prec::Pow,
                _ => min,
            };
            self.at(x, min, out);
            first = false;
        }
        for &(b, e) in &f.den {
            out.push('/');
            self.power(b, e, "^", out);
        }
        if let Some(k) = divisor {
            out.push('/');
            out.push_str(&format_num(k));
        }
    }

    fn hadamard(&self, factors: &[Id], out: &mut String) {
        let g = self.g;
        // A long product kept whole inside another (see `BLOCK`) prints as part of it.
        let factors = g.had_factors(factors, |x| !self.names.contains_key(&x));
        // Negative powers divide: `x./h.^2`.
        let (den, num): (Vec<Id>, Vec<Id>) = factors.iter().partition(|&&x| {
            !self.names.contains_key(&x)
                && matches!(g.node(x), Node::EPow([_, p]) if g.as_num(*p).is_some_and(|e| e < 0.0))
        });
        if num.is_empty() {
            out.push('1');
        }
        for (i, &x) in num.iter().enumerate() {
            if i > 0 {
                out.push_str(".*");
            }
            self.at(x, Prec::Pow, out);
        }
        for &x in &den {
            if let Node::EPow([u, p]) = g.node(x) {
                out.push_str("./");
                let e = -g.as_num(*p).unwrap_or(-1.0);
                if e == 1.0 {
                    self.at(*u, Prec::Pow, out);
                } else {
                    self.at(*u, Prec::Postfix, out);
                    out.push_str(".^");
                    out.push_str(&format_num(e));
                }
            }
        }
    }
}

//! Text → graph: runs the pest grammar, infers shapes by unification, and builds nodes.
//!
//! No pest `Pair` leaves this module. Each precedence level arrives from pest as a flat
//! list and is folded here with loops; only parentheses recurse, and their depth is
//! bounded before pest runs.

use crate::error::{ExprError, Span, snippet};
use crate::graph::{FUNCTION_NAMES, Func, Graph, Id, Kind, Node};
use crate::shape::{Dim, DimNames, Shape};
use pest::Parser;
use pest::iterators::Pair;
use std::collections::HashMap;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/jacob.pest"]
struct Grammar;

/// The deepest nesting of parentheses jacob reads.
pub const MAX_DEPTH: usize = 10_000;

/// Stack that reading one level of parentheses may take (pest's rules from `expr` down
/// to `paren`, and the builder's), with room to spare for unoptimized builds.
const STACK_PER_LEVEL: usize = 16 << 10;

/// Stack for everything else a parse does.
const STACK_BASE: usize = 256 << 10;

/// Names whose default kind is scalar.
pub const GREEK: [&str; 16] = [
    "alpha", "beta", "gamma", "delta", "epsilon", "eta", "theta", "kappa", "lambda", "mu", "nu",
    "rho", "sigma", "tau", "phi", "omega",
];

/// Words that cannot name a symbol.
pub(crate) const RESERVED: [&str; 11] = [
    "I",
    "eye",
    "ones",
    "zeros",
    "where",
    "vector",
    "matrix",
    "kron",
    "rows",
    "cols",
    "commutation",
];

/// Names called like functions that are not in [`FUNCTION_NAMES`]: they build
/// constants and sizes (`eye(n)`, `ones(n)`, `zeros(m, n)`, `rows(A)`), or a product.
const BUILDERS: [&str; 9] = [
    "kron",
    "vector",
    "matrix",
    "rows",
    "cols",
    "eye",
    "ones",
    "zeros",
    "commutation",
];

/// A parsed expression.
#[derive(Clone, Debug)]
pub struct Parsed {
    /// The expression's node.
    pub root: Id,
    /// The names bound with `where`, with their places.
    pub bindings: Vec<(String, Span)>,
    /// Symbols that are scalars only by default (Greek names, not declared) and are
    /// broadcast against a vector or matrix (`x - mu`), in order of appearance: likely
    /// meant otherwise, so the command line says so.
    /// With the kind it would need to match what it is broadcast against.
    pub broadcast_by_default: Vec<(String, Kind)>,
}

/// Parses `src` into `graph`, declaring symbols as it meets them (kinds from `decls`,
/// else from the name), and unifying shapes.
pub fn parse(
    src: &str,
    graph: &mut Graph,
    decls: &HashMap<String, Kind>,
) -> Result<Parsed, ExprError> {
    let depth = pre_scan(src)?;
    // pest's parser and the builder recurse once per level of parentheses. Deep input
    // without `where` is read a slice of CHUNK_DEPTH levels at a time (see `chunks`), so
    // the recursion stays shallow on any stack, WebAssembly's included; input with
    // `where` (whose names reach into nested parentheses) is read whole, on a
    // heap-allocated stack of the size its depth needs where the stack left could run out.
    let groups = if depth > CHUNK_DEPTH && !has_where(src) {
        chunks(src)
    } else {
        Vec::new()
    };
    // A placeholder must not run into the text after it (`(x)y` would read as one
    // name), and every name called must be a function, so that no error of a deeper
    // part comes before the one about the name: other input, an error anyway, is read
    // whole.
    let bytes = src.as_bytes();
    let clear = |g: &Group| {
        g.call
            || bytes[g.close + 1..]
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_none_or(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'(')))
    };
    let known_calls = || {
        let toks = tokens(src);
        toks.iter().enumerate().all(|(k, t)| {
            t.kind != Tok::Name
                || toks.get(k + 1).is_none_or(|n| &src[n.start..n.end] != "(")
                || is_function(&src[t.start..t.end])
        })
    };
    let groups = if groups.iter().all(clear) && (groups.is_empty() || known_calls()) {
        groups
    } else {
        Vec::new()
    };
    let levels = if groups.is_empty() {
        depth
    } else {
        CHUNK_DEPTH
    };
    let need = STACK_BASE + levels * STACK_PER_LEVEL;
    stacker::maybe_grow(need, need, || parse_checked(src, graph, decls, &groups))
}

/// The deepest nesting of parentheses pest reads in one go; deeper parts are read
/// first, on their own, and stand in their parent as placeholders.
const CHUNK_DEPTH: usize = 48;

/// True when `src` uses the keyword `where`.
fn has_where(src: &str) -> bool {
    tokens(src)
        .iter()
        .any(|t| t.kind == Tok::Name && &src[t.start..t.end] == "where")
}

/// A pair of parentheses: `(` at `open`, `)` at `close`, the arguments of a call when
/// `call`.
#[derive(Clone, Copy)]
struct Group {
    open: usize,
    close: usize,
    call: bool,
}

/// The groups of parentheses every CHUNK_DEPTH levels, innermost first (in the order
/// they close). `src` passed [`pre_scan`]: ASCII, balanced.
fn chunks(src: &str) -> Vec<Group> {
    let bytes = src.as_bytes();
    let mut open: Vec<usize> = Vec::new();
    let mut out = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'(' => open.push(i),
            b')' => {
                let Some(o) = open.pop() else { continue };
                let depth = open.len() + 1;
                if depth.is_multiple_of(CHUNK_DEPTH) {
                    out.push(Group {
                        open: o,
                        close: i,
                        call: follows_name(bytes, o),
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// The name before the `(` at `open` (spaces between allowed), or "".
fn called(bytes: &[u8], open: usize) -> &str {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut end = open;
    while end > 0 && bytes[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    let mut start = end;
    while start > 0 && word(bytes[start - 1]) {
        start -= 1;
    }
    std::str::from_utf8(&bytes[start..end]).unwrap_or_default()
}

/// True when the `(` at `open` follows a name (spaces between allowed): a call.
fn follows_name(bytes: &[u8], open: usize) -> bool {
    called(bytes, open).starts_with(|c: char| c.is_ascii_alphabetic())
}

/// True for the names jacob calls: its functions and its builders (`kron`, `eye`, …).
fn is_function(name: &str) -> bool {
    FUNCTION_NAMES.iter().any(|(n, _)| *n == name) || BUILDERS.contains(&name)
}

/// A group's inside alone, for pest, its deeper parts already replaced in `masked` by
/// placeholders of the same length; pest's places in it are from `g.open + 1`.
fn inside<'m>(masked: &'m [u8], g: &Group) -> &'m str {
    std::str::from_utf8(&masked[g.open + 1..g.close]).unwrap_or_default()
}

/// pest's error in a slice that starts at `offset`, placed in the whole text.
fn shifted(mut e: pest::error::Error<Rule>, offset: usize) -> pest::error::Error<Rule> {
    e.location = match e.location {
        pest::error::InputLocation::Pos(p) => pest::error::InputLocation::Pos(p + offset),
        pest::error::InputLocation::Span((p, q)) => {
            pest::error::InputLocation::Span((p + offset, q + offset))
        }
    };
    e
}

/// The syntax of deep input, checked before anything is built, so that the error
/// reported is the first in the text, as when the text is read whole, and never an
/// error of a deeper part found first.
fn check_syntax(src: &str, groups: &[Group]) -> Result<(), ExprError> {
    let at = |e: &pest::error::Error<Rule>| match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((p, _)) => p,
    };
    let mut first: Option<pest::error::Error<Rule>> = None;
    let mut keep = |e: pest::error::Error<Rule>| {
        if first.as_ref().is_none_or(|f| at(&e) < at(f)) {
            first = Some(e);
        }
    };
    let mut masked = src.as_bytes().to_vec();
    for g in groups {
        let from = g.open + 1;
        let text = inside(&masked, g);
        let rule = if g.call { Rule::arguments } else { Rule::input };
        let read: Vec<(usize, usize)> = match Grammar::parse(rule, text) {
            Ok(mut pairs) if g.call => pairs
                .next()
                .map(Pair::into_inner)
                .into_iter()
                .flatten()
                .filter(|p| p.as_rule() == Rule::expr)
                .map(|p| (p.as_span().start() + from, p.as_span().end() + from))
                .collect(),
            Ok(_) => vec![(g.open, g.close + 1)],
            Err(e) => {
                keep(shifted(e, from));
                // Read on as if the group were fine: its inside as one placeholder.
                let inside = text.as_bytes();
                let lead = inside
                    .iter()
                    .take_while(|b| b.is_ascii_whitespace())
                    .count();
                let trail = inside
                    .iter()
                    .rev()
                    .take_while(|b| b.is_ascii_whitespace())
                    .count();
                match g.call {
                    true if lead < inside.len() => {
                        vec![(g.open + 1 + lead, g.close - trail)]
                    }
                    true => Vec::new(),
                    false => vec![(g.open, g.close + 1)],
                }
            }
        };
        for (a, b) in read {
            masked[a..b].fill(b'Z');
        }
    }
    let text = String::from_utf8(masked).unwrap_or_default();
    if let Err(e) = Grammar::parse(Rule::input, &text) {
        keep(e);
    }
    match first {
        Some(e) => Err(syntax_error(src, e)),
        None => Ok(()),
    }
}

/// [`parse`] of text that passed [`pre_scan`], the deep `groups` first.
fn parse_checked(
    src: &str,
    graph: &mut Graph,
    decls: &HashMap<String, Kind>,
    groups: &[Group],
) -> Result<Parsed, ExprError> {
    if !groups.is_empty() {
        check_syntax(src, groups)?;
    }
    let mut builder = Builder {
        src,
        graph,
        decls,
        scope: Vec::new(),
        pending: Vec::new(),
        bindings: Vec::new(),
        broadcast_by_default: Vec::new(),
        placeholders: HashMap::new(),
        offset: 0,
    };
    if !groups.is_empty() {
        builder.declare_in_order();
    }
    // What has been read, as (start, end) of text that stands for a built node.
    let mut read: Vec<(usize, usize)> = Vec::new();
    let mut masked = src.as_bytes().to_vec();
    for g in groups {
        let from = g.open + 1;
        let text = inside(&masked, g);
        let to = g.close;
        let before = read.len();
        builder.offset = from;
        if g.call {
            let mut pairs = Grammar::parse(Rule::arguments, text)
                .map_err(|e| syntax_error(src, shifted(e, from)))?;
            let args = pairs.next().map(Pair::into_inner).into_iter().flatten();
            for arg in args.filter(|p| p.as_rule() == Rule::expr) {
                let span = builder.span_of(&arg);
                let id = builder.expr(arg)?;
                builder.placeholders.insert(span.start, id);
                read.push((span.start, span.end));
            }
        } else {
            let mut pairs = Grammar::parse(Rule::input, text)
                .map_err(|e| syntax_error(src, shifted(e, from)))?;
            let expr = pairs
                .next()
                .and_then(|input| input.into_inner().next())
                .ok_or_else(|| {
                    ExprError::new("expected an operand before `)`", Span::new(to, to + 1))
                })?;
            let id = builder.expr(expr)?;
            builder.placeholders.insert(g.open, id);
            read.push((g.open, g.close + 1));
        }
        for &(a, b) in &read[before..] {
            masked[a..b].fill(b'Z');
        }
    }
    builder.offset = 0;
    let text = String::from_utf8(masked).unwrap_or_default();
    let mut pairs = Grammar::parse(Rule::input, &text).map_err(|e| syntax_error(src, e))?;
    let input = pairs
        .next()
        .ok_or_else(|| ExprError::new("the expression is empty", Span::default()))?;
    let expr = input
        .into_inner()
        .next()
        .ok_or_else(|| ExprError::new("the expression is empty", Span::default()))?;
    let root = builder.expr(expr)?;
    let bindings = builder.bindings;
    let broadcast_by_default = builder.broadcast_by_default;
    graph.dims.settle();
    graph
        .reserved
        .extend(bindings.iter().map(|(name, _)| name.clone()));
    Ok(Parsed {
        root,
        bindings,
        broadcast_by_default,
    })
}

/// An operand on its way up: its node, and its place in the text for messages.
#[derive(Clone, Copy)]
struct Operand {
    id: Id,
    span: Span,
}

struct Builder<'a> {
    src: &'a str,
    graph: &'a mut Graph,
    decls: &'a HashMap<String, Kind>,
    /// Names bound by `where`, innermost last.
    scope: Vec<(String, Id)>,
    /// Names of the current `where` clause not bound yet (a use is circular).
    pending: Vec<String>,
    bindings: Vec<(String, Span)>,
    broadcast_by_default: Vec<(String, Kind)>,
    /// Deep parts read already, by where they start: the text there is a placeholder.
    placeholders: HashMap<usize, Id>,
    /// Where the slice of text pest reads starts in the whole text.
    offset: usize,
}

fn span_of(pair: &Pair<Rule>) -> Span {
    let s = pair.as_span();
    Span::new(s.start(), s.end())
}

/// How a run of multiplicative operators combines.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RunKind {
    Matrix,
    Elementwise,
}

impl<'a> Builder<'a> {
    /// Declares the symbols in the order the text names them, as reading it whole
    /// does, before deep parts are read first (the order of symbols is the order of
    /// `jacob shape` and of random values).
    fn declare_in_order(&mut self) {
        let src = self.src;
        let bytes = src.as_bytes();
        for t in tokens(src) {
            let name = &src[t.start..t.end];
            let next = bytes[t.end..].iter().find(|b| !b.is_ascii_whitespace());
            let special = matches!(name, "where" | "I") || is_function(name);
            if t.kind == Tok::Name && next != Some(&b'(') && !special {
                let kind = self.kind_of(name);
                self.graph.declare(name, kind);
            }
        }
    }

    /// A symbol's kind: declared, or by its name.
    fn kind_of(&self, name: &str) -> Kind {
        self.decls
            .get(name)
            .copied()
            .unwrap_or_else(|| default_kind(name))
    }

    /// A pair's place in the whole text (pest's is in the slice being read).
    fn span_of(&self, pair: &Pair<Rule>) -> Span {
        let s = span_of(pair);
        Span::new(s.start + self.offset, s.end + self.offset)
    }

    fn text(&self, span: Span) -> String {
        snippet(&self.src[span.start..span.end])
    }

    fn shape(&self, id: Id) -> Shape {
        self.graph.shape(id)
    }

    fn describe(&self, names: &mut DimNames, op: Operand) -> String {
        self.describe_shape(names, self.shape(op.id), op.span)
    }

    fn describe_shape(&self, names: &mut DimNames, shape: Shape, span: Span) -> String {
        let shape = names.shape(&self.graph.dims, shape);
        format!("{} ({shape})", self.text(span))
    }

    fn expr(&mut self, pair: Pair<Rule>) -> Result<Id, ExprError> {
        let mut inner = pair.into_inner();
        let Some(body) = inner.next() else {
            return Err(ExprError::new("expected an expression", Span::default()));
        };
        let binding_pairs: Vec<Pair<Rule>> =
            inner.filter(|p| p.as_rule() == Rule::binding).collect();
        let names: Vec<(String, Span)> = binding_pairs
            .iter()
            .filter_map(|b| {
                b.clone()
                    .into_inner()
                    .next()
                    .map(|n| (n.as_str().to_string(), self.span_of(&n)))
            })
            .collect();
        let scope_len = self.scope.len();
        let pending_len = self.pending.len();
        for (k, (name, span)) in names.iter().enumerate() {
            self.check_bindable(name, *span)?;
            if names[..k].iter().any(|(earlier, _)| earlier == name) {
                return Err(ExprError::new(
                    format!(
                        "`{name}` is bound twice in this where clause: give each binding its own name"
                    ),
                    *span,
                ));
            }
        }
        self.pending
            .extend(names.iter().rev().map(|(n, _)| n.clone()));
        for binding in binding_pairs {
            let mut parts = binding.into_inner();
            let (Some(name), Some(value)) = (parts.next(), parts.next()) else {
                continue;
            };
            let value = self.sum(value)?.id;
            self.pending.pop();
            self.scope.push((name.as_str().to_string(), value));
            self.bindings
                .push((name.as_str().to_string(), self.span_of(&name)));
        }
        let root = self.sum(body)?.id;
        self.scope.truncate(scope_len);
        self.pending.truncate(pending_len);
        Ok(root)
    }

    fn check_bindable(&self, name: &str, span: Span) -> Result<(), ExprError> {
        if RESERVED.contains(&name) || FUNCTION_NAMES.iter().any(|(n, _)| *n == name) {
            return Err(ExprError::new(
                format!("`{name}` is a reserved name and cannot be bound with where"),
                span,
            ));
        }
        Ok(())
    }

    fn sum(&mut self, pair: Pair<Rule>) -> Result<Operand, ExprError> {
        let span = self.span_of(&pair);
        let mut inner = pair.into_inner();
        let Some(first) = inner.next() else {
            return Err(ExprError::new("expected an expression", span));
        };
        let first = self.term(first)?;
        let mut terms = vec![first.id];
        let mut acc = first;
        let mut result_shape: Option<Operand> = (!self.graph.is_scalar(first.id)).then_some(first);
        while let (Some(op), Some(term)) = (inner.next(), inner.next()) {
            let rhs = self.term(term)?;
            let op_span = self.span_of(&op);
            if !self.graph.is_scalar(rhs.id) {
                match result_shape {
                    None => result_shape = Some(rhs),
                    Some(lhs) => {
                        let (a, b) = (self.shape(lhs.id), self.shape(rhs.id));
                        let ok = self.graph.dims.unify(a.rows, b.rows)
                            && self.graph.dims.unify(a.cols, b.cols);
                        if !ok {
                            let verb = if op.as_str() == "+" {
                                "add"
                            } else {
                                "subtract"
                            };
                            let mut names = DimNames::default();
                            let (l, r) = (
                                self.describe(&mut names, acc),
                                self.describe(&mut names, rhs),
                            );
                            let (l, r) = if verb == "add" { (l, r) } else { (r, l) };
                            let prep = if verb == "add" { "and" } else { "from" };
                            let e = ExprError::new(
                                format!("cannot {verb} {l} {prep} {r}: the shapes differ"),
                                op_span,
                            );
                            return Err(self.scalar_hint(e, &[Some(lhs.id), Some(rhs.id)]));
                        }
                    }
                }
            }
            let id = if op.as_str() == "-" {
                self.negate(rhs.id)
            } else {
                rhs.id
            };
            terms.push(id);
            acc = Operand {
                id: rhs.id,
                span: Span::new(acc.span.start, rhs.span.end),
            };
        }
        if terms.len() == 1 {
            return Ok(Operand { id: terms[0], span });
        }
        if let Some(wide) = result_shape {
            let against = self.shape(wide.id);
            for &t in &terms {
                if self.graph.is_scalar(t) {
                    self.note_broadcast(t, against);
                }
            }
        }
        let shape = result_shape.map_or(Shape::SCALAR, |o| self.shape(o.id));
        let id = self.graph.intern(Node::Add(terms.into()), shape);
        Ok(Operand { id, span })
    }

    fn negate(&mut self, id: Id) -> Id {
        let minus = self.graph.num(-1.0);
        let shape = self.shape(id);
        self.graph.intern(Node::Mul(vec![minus, id].into()), shape)
    }

    fn term(&mut self, pair: Pair<Rule>) -> Result<Operand, ExprError> {
        let span = self.span_of(&pair);
        let mut inner = pair.into_inner();
        let Some(first) = inner.next() else {
            return Err(ExprError::new("expected an expression", span));
        };
        let mut acc = self.factor(first)?;
        let mut run: Vec<Id> = vec![acc.id];
        let mut run_kind = RunKind::Matrix;
        let mut run_shape = self.shape(acc.id);
        while let (Some(op), Some(factor)) = (inner.next(), inner.next()) {
            let rhs = self.factor(factor)?;
            let op_span = self.span_of(&op);
            let kind = if op.as_str().starts_with('.') {
                RunKind::Elementwise
            } else {
                RunKind::Matrix
            };
            if kind != run_kind && run.len() > 1 {
                let id = self.flush(run_kind, &run, run_shape);
                run = vec![id];
            }
            // A 1×1 product so far (`x'*A*x`) scales what follows; keep it one factor so
            // that the rest of the run stays a valid matrix chain.
            if run.len() > 1 && self.graph.dims.is_scalar(run_shape) {
                let id = self.flush(run_kind, &run, run_shape);
                run = vec![id];
            }
            run_kind = kind;
            let lhs = (run_shape, acc.span);
            let lhs_id = (run.len() == 1).then(|| run[0]);
            let checked: Result<(Id, Shape), ExprError> = (|| {
                Ok(match op.as_str() {
                    "*" => (rhs.id, self.check_mul(lhs, rhs, op_span)?),
                    "/" => {
                        self.check_divisor(rhs, op_span, "/")?;
                        let minus_one = self.graph.num(-1.0);
                        (
                            self.graph
                                .intern(Node::Pow([rhs.id, minus_one]), Shape::SCALAR),
                            run_shape,
                        )
                    }
                    ".*" => {
                        let shape = self.check_elementwise(lhs, rhs, op_span, ".*")?;
                        self.note_elementwise_broadcast(&run, run_shape, rhs.id);
                        (rhs.id, shape)
                    }
                    _ => {
                        let shape = self.check_elementwise(lhs, rhs, op_span, "./")?;
                        self.note_elementwise_broadcast(&run, run_shape, rhs.id);
                        let minus_one = self.graph.num(-1.0);
                        let rshape = self.shape(rhs.id);
                        (
                            self.graph.intern(Node::EPow([rhs.id, minus_one]), rshape),
                            shape,
                        )
                    }
                })
            })();
            // Only the divisor of `/` must be a scalar.
            let culprits = if op.as_str() == "/" {
                [None, Some(rhs.id)]
            } else {
                [lhs_id, Some(rhs.id)]
            };
            let (factor_id, shape) = checked.map_err(|e| self.scalar_hint(e, &culprits))?;
            // Multiplying may have made the run so far 1×1 (`ones'*x*y`: `ones'` could
            // have been a matrix until `y` came); then it scales what follows.
            if run.len() > 1 && self.graph.dims.is_scalar(run_shape) {
                let id = self.flush(run_kind, &run, run_shape);
                run = vec![id];
            }
            run.push(factor_id);
            run_shape = shape;
            acc = Operand {
                id: rhs.id,
                span: Span::new(acc.span.start, rhs.span.end),
            };
        }
        let id = if run.len() == 1 {
            run[0]
        } else {
            self.flush(run_kind, &run, run_shape)
        };
        Ok(Operand { id, span })
    }

    /// A shape error with a way out when one of `ids` is a bare name that is a vector
    /// only by default (lowercase, not declared): `t*x` by t means a scalar t.
    fn scalar_hint(&self, mut e: ExprError, ids: &[Option<Id>]) -> ExprError {
        let mut names: Vec<&str> = Vec::new();
        for id in ids.iter().flatten() {
            if let Node::Sym(s) = self.graph.node(*id) {
                let name = self.graph.symbol(*s).name.as_str();
                if !self.decls.contains_key(name)
                    && default_kind(name) == Kind::Vector
                    && !names.contains(&name)
                {
                    names.push(name);
                }
            }
        }
        let flags: Vec<String> = names.iter().map(|n| format!("--scalar {n}")).collect();
        if !names.is_empty() {
            e.message.push_str(&format!(
                "; if {} is a scalar, declare it with {}",
                either(&names),
                flags.join(" or ")
            ));
        }
        e
    }

    /// Notes the scalar side of an elementwise operation between the run so far and
    /// `rhs`, when the other side is not a scalar.
    fn note_elementwise_broadcast(&mut self, run: &[Id], run_shape: Shape, rhs: Id) {
        let lhs_scalar = self.graph.dims.is_scalar(run_shape);
        let rhs_scalar = self.graph.is_scalar(rhs);
        if lhs_scalar && !rhs_scalar && run.len() == 1 {
            let against = self.shape(rhs);
            self.note_broadcast(run[0], against);
        } else if rhs_scalar && !lhs_scalar {
            self.note_broadcast(rhs, run_shape);
        }
    }

    /// Records `id`, a scalar broadcast against a vector or matrix, when it is a symbol
    /// that is a scalar only by default (a Greek name not declared), possibly negated,
    /// transposed or scaled by numbers (`-2*mu`).
    fn note_broadcast(&mut self, mut id: Id, against: Shape) {
        loop {
            match self.graph.node(id) {
                Node::Transpose(a) => id = *a,
                Node::Mul(fs) => {
                    let mut rest = fs.iter().filter(|&&f| self.graph.as_num(f).is_none());
                    match (rest.next(), rest.next()) {
                        (Some(&f), None) => id = f,
                        _ => return,
                    }
                }
                Node::Sym(s) => {
                    let name = &self.graph.symbol(*s).name;
                    let dims = &self.graph.dims;
                    let kind = if dims.is_column(against) || dims.is_row(against) {
                        Kind::Vector
                    } else {
                        Kind::Matrix
                    };
                    if !self.decls.contains_key(name)
                        && default_kind(name) == Kind::Scalar
                        && !self.broadcast_by_default.iter().any(|(n, _)| n == name)
                    {
                        self.broadcast_by_default.push((name.clone(), kind));
                    }
                    return;
                }
                _ => return,
            }
        }
    }

    fn flush(&mut self, kind: RunKind, run: &[Id], shape: Shape) -> Id {
        let node = match kind {
            RunKind::Matrix => Node::Mul(run.into()),
            RunKind::Elementwise => Node::Had(run.into()),
        };
        self.graph.intern(node, shape)
    }

    /// The shape of `a*b`: a scalar multiple when either side is 1×1, else a matrix product.
    fn check_mul(
        &mut self,
        (sa, a_span): (Shape, Span),
        b: Operand,
        op_span: Span,
    ) -> Result<Shape, ExprError> {
        let sb = self.shape(b.id);
        let dims = &mut self.graph.dims;
        if dims.is_scalar(sa) {
            return Ok(sb);
        }
        if dims.is_scalar(sb) {
            return Ok(sa);
        }
        if dims.unify(sa.cols, sb.rows) {
            return Ok(Shape::new(sa.rows, sb.cols));
        }
        for (s, other) in [(sa, sb), (sb, sa)] {
            if dims.could_be_scalar(s) {
                dims.unify(s.rows, Dim::One);
                dims.unify(s.cols, Dim::One);
                return Ok(other);
            }
        }
        let mut names = DimNames::default();
        let (l, r) = (
            self.describe_shape(&mut names, sa, a_span),
            self.describe(&mut names, b),
        );
        let (c, rr) = (
            names.name(&self.graph.dims, sa.cols),
            names.name(&self.graph.dims, sb.rows),
        );
        Err(ExprError::new(
            format!("cannot multiply {l} by {r}: {c} ≠ {rr}"),
            op_span,
        ))
    }

    fn check_divisor(&mut self, b: Operand, op_span: Span, op: &str) -> Result<(), ExprError> {
        let s = self.shape(b.id);
        if self.graph.dims.unify(s.rows, Dim::One) && self.graph.dims.unify(s.cols, Dim::One) {
            return Ok(());
        }
        let mut names = DimNames::default();
        let r = self.describe(&mut names, b);
        Err(ExprError::new(
            format!(
                "cannot divide by {r} with `{op}`: the divisor must be a scalar (use ./ for elementwise division)"
            ),
            op_span,
        ))
    }

    fn check_elementwise(
        &mut self,
        (sa, a_span): (Shape, Span),
        b: Operand,
        op_span: Span,
        op: &str,
    ) -> Result<Shape, ExprError> {
        let sb = self.shape(b.id);
        let dims = &mut self.graph.dims;
        if dims.is_scalar(sa) {
            return Ok(sb);
        }
        if dims.is_scalar(sb) {
            return Ok(sa);
        }
        if dims.unify(sa.rows, sb.rows) && dims.unify(sa.cols, sb.cols) {
            return Ok(sa);
        }
        let mut names = DimNames::default();
        let (l, r) = (
            self.describe_shape(&mut names, sa, a_span),
            self.describe(&mut names, b),
        );
        let verb = if op == ".*" { "multiply" } else { "divide" };
        Err(ExprError::new(
            format!("cannot {verb} {l} and {r} elementwise with `{op}`: the shapes differ"),
            op_span,
        ))
    }

    fn factor(&mut self, pair: Pair<Rule>) -> Result<Operand, ExprError> {
        let span = self.span_of(&pair);
        let mut negs = 0usize;
        let mut power = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::neg => negs += 1,
                _ => power = Some(p),
            }
        }
        let Some(power) = power else {
            return Err(ExprError::new(
                "expected an operand after `-`",
                Span::new(span.end, span.end + 1),
            ));
        };
        let mut op = self.power(power)?;
        if negs % 2 == 1 {
            op.id = self.negate(op.id);
        }
        Ok(Operand { id: op.id, span })
    }

    fn power(&mut self, pair: Pair<Rule>) -> Result<Operand, ExprError> {
        let span = self.span_of(&pair);
        // Collect base, then (operator, minus count, operand) triples; fold from the right.
        let mut bases: Vec<Operand> = Vec::new();
        let mut ops: Vec<(String, Span, usize)> = Vec::new();
        let mut negs = 0usize;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::pow_op => ops.push((p.as_str().to_string(), self.span_of(&p), 0)),
                Rule::neg => negs += 1,
                _ => {
                    if let Some(last) = ops.last_mut() {
                        last.2 = negs;
                    }
                    negs = 0;
                    bases.push(self.postfixed(p)?);
                }
            }
        }
        let Some(mut acc) = bases.pop() else {
            return Err(ExprError::new("expected an operand", span));
        };
        while let (Some(base), Some((op, op_span, negs))) = (bases.pop(), ops.pop()) {
            if negs % 2 == 1 {
                acc.id = self.negate(acc.id);
            }
            let (sb, se) = (self.shape(base.id), self.shape(acc.id));
            let dims = &mut self.graph.dims;
            let exp_scalar = dims.unify(se.rows, Dim::One) && dims.unify(se.cols, Dim::One);
            let mut names = DimNames::default();
            if !exp_scalar {
                // `x^T` is how papers write a transpose.
                if self.text(acc.span) == "T" {
                    let b = self.text(base.span);
                    let b = if Self::is_operand_text(&b) {
                        b
                    } else {
                        format!("({b})")
                    };
                    return Err(ExprError::new(
                        format!("`{op}T` is not a transpose in jacob: write `{b}'`"),
                        Span::new(op_span.start, acc.span.end),
                    ));
                }
                let e = self.describe(&mut names, acc);
                return Err(ExprError::new(
                    format!("the exponent {e} of `{op}` must be a scalar"),
                    op_span,
                ));
            }
            let id = if op == "^" {
                let dims = &mut self.graph.dims;
                if !(dims.unify(sb.rows, Dim::One) && dims.unify(sb.cols, Dim::One)) {
                    let b = self.describe(&mut names, base);
                    let e = ExprError::new(
                        format!(
                            "cannot raise {b} to a power with `^`: use `.^` for elementwise powers"
                        ),
                        op_span,
                    );
                    return Err(self.scalar_hint(e, &[Some(base.id)]));
                }
                self.graph
                    .intern(Node::Pow([base.id, acc.id]), Shape::SCALAR)
            } else {
                self.graph.intern(Node::EPow([base.id, acc.id]), sb)
            };
            acc = Operand {
                id,
                span: Span::new(base.span.start, acc.span.end),
            };
        }
        Ok(Operand { id: acc.id, span })
    }

    /// True for text that stays one operand when something is appended to it: a name,
    /// a number, a call or a parenthesized group.
    fn is_operand_text(text: &str) -> bool {
        let toks = tokens(text);
        !toks.is_empty() && operand_after(text, &toks, 0).is_some_and(|o| o.len() == text.len())
    }

    fn postfixed(&mut self, pair: Pair<Rule>) -> Result<Operand, ExprError> {
        let span = self.span_of(&pair);
        let mut inner = pair.into_inner();
        let Some(primary) = inner.next() else {
            return Err(ExprError::new("expected an operand", span));
        };
        let mut id = self.primary(primary)?;
        for _tick in inner {
            let shape = self.shape(id).t();
            id = self.graph.intern(Node::Transpose(id), shape);
        }
        Ok(Operand { id, span })
    }

    fn primary(&mut self, pair: Pair<Rule>) -> Result<Id, ExprError> {
        let span = self.span_of(&pair);
        match pair.as_rule() {
            Rule::number => {
                let v: f64 = pair
                    .as_str()
                    .parse()
                    .map_err(|_| ExprError::new("this is not a number", span))?;
                if !v.is_finite() {
                    return Err(ExprError::new(
                        "the number is too large: it overflows to infinity",
                        span,
                    ));
                }
                Ok(self.graph.num(v))
            }
            Rule::ident => match self.placeholders.get(&span.start) {
                Some(&id) => Ok(id),
                None => self.name(pair.as_str(), span),
            },
            Rule::paren => {
                let inner = pair
                    .into_inner()
                    .next()
                    .ok_or_else(|| ExprError::new("empty parentheses", span))?;
                self.expr(inner)
            }
            Rule::call => self.call(pair),
            _ => Err(ExprError::new("expected an operand", span)),
        }
    }

    fn name(&mut self, name: &str, span: Span) -> Result<Id, ExprError> {
        if let Some((_, id)) = self.scope.iter().rev().find(|(n, _)| n == name) {
            return Ok(*id);
        }
        if self.pending.iter().any(|n| n == name) {
            return Err(ExprError::new(
                format!(
                    "`{name}` is used in its own where binding or before it is bound: the bindings are circular"
                ),
                span,
            ));
        }
        match name {
            "I" | "eye" => {
                let n = self.graph.dims.fresh();
                Ok(self.graph.intern(Node::Identity(n), Shape::new(n, n)))
            }
            "ones" => {
                let (r, c) = (self.graph.dims.fresh(), self.graph.dims.fresh_flex());
                Ok(self.graph.intern(Node::Ones(r, c), Shape::new(r, c)))
            }
            "zeros" => Err(ExprError::new(
                "`zeros` needs its size: write zeros(n) or zeros(m, n)",
                span,
            )),
            "vector" | "matrix" | "kron" | "rows" | "cols" | "commutation" => Err(ExprError::new(
                format!("`{name}` is a function: call it as {name}(…)"),
                span,
            )),
            _ if FUNCTION_NAMES.iter().any(|(n, _)| *n == name) => Err(ExprError::new(
                format!("`{name}` is a function: call it as {name}(…)"),
                span,
            )),
            _ => {
                let sym = self.graph.declare(name, self.kind_of(name));
                Ok(self.graph.sym(sym))
            }
        }
    }

    fn call(&mut self, pair: Pair<Rule>) -> Result<Id, ExprError> {
        let span = self.span_of(&pair);
        let mut inner = pair.into_inner();
        let Some(name_pair) = inner.next() else {
            return Err(ExprError::new("expected a function name", span));
        };
        let name = name_pair.as_str();
        let name_span = self.span_of(&name_pair);
        let arg_pairs: Vec<Pair<Rule>> = inner.collect();
        let want = match name {
            "kron" => 2..=2,
            "ones" | "zeros" | "commutation" => 1..=2,
            _ => 1..=1,
        };
        let known = is_function(name);
        if !known {
            let args = self.src[name_span.end..span.end].trim();
            return Err(unknown_function(
                name,
                name_span,
                self.graph.lookup(name).is_some() || self.decls.contains_key(name),
                args,
                arg_pairs.len(),
            ));
        }
        if !want.contains(&arg_pairs.len()) {
            let takes = match (*want.start(), *want.end()) {
                (1, 1) => "1 argument".to_string(),
                (a, b) if a == b => format!("{a} arguments"),
                (a, b) => format!("{a} or {b} arguments"),
            };
            let given = match arg_pairs.len() {
                1 => "1 was given".to_string(),
                n => format!("{n} were given"),
            };
            return Err(ExprError::new(
                format!("{name} takes {takes}, but {given}"),
                span,
            ));
        }
        let mut args = Vec::new();
        for a in arg_pairs {
            let s = self.span_of(&a);
            let id = self.expr(a)?;
            args.push(Operand { id, span: s });
        }
        let arg = args[0];
        let shape = self.shape(arg.id);
        let dims = &mut self.graph.dims;
        let mut names = DimNames::default();
        match name {
            // commutation(X): K with K*vec(X) = vec(X'); commutation(m, n) for sizes.
            "commutation" => {
                let (m, n) = if args.len() == 1 {
                    (shape.rows, shape.cols)
                } else {
                    (self.size_dim(args[0], name)?, self.size_dim(args[1], name)?)
                };
                return Ok(self.graph.commutation(m, n));
            }
            "rows" | "cols" => {
                let d = if name == "rows" {
                    shape.rows
                } else {
                    shape.cols
                };
                return Ok(self.graph.size(d));
            }
            "eye" | "ones" | "zeros" => {
                let mut sizes = Vec::with_capacity(args.len());
                for a in &args {
                    sizes.push(self.size_dim(*a, name)?);
                }
                let (r, c) = match sizes.as_slice() {
                    [n] if name == "eye" => (*n, *n),
                    [n] => (*n, Dim::One),
                    [r, c] => (*r, *c),
                    _ => return Err(ExprError::new("expected a size", span)),
                };
                let shape = Shape::new(r, c);
                return Ok(match name {
                    "eye" => self.graph.identity(r),
                    "ones" => self.graph.ones(shape),
                    _ => self.graph.zero(shape),
                });
            }
            "kron" => {
                let (sa, sb) = (shape, self.shape(args[1].id));
                let dims = &mut self.graph.dims;
                let rows = dims.product(sa.rows, sb.rows);
                let cols = dims.product(sa.cols, sb.cols);
                return Ok(self
                    .graph
                    .intern(Node::Kron([arg.id, args[1].id]), Shape::new(rows, cols)));
            }
            "vector" | "matrix" => {
                if !(dims.unify(shape.rows, Dim::One) && dims.unify(shape.cols, Dim::One)) {
                    let a = self.describe(&mut names, arg);
                    return Err(ExprError::new(
                        format!("{name}(c) needs a scalar c, got {a}"),
                        span,
                    ));
                }
                let r = dims.fresh();
                let c = if name == "vector" {
                    Dim::One
                } else {
                    dims.fresh()
                };
                let ones = self.graph.intern(Node::Ones(r, c), Shape::new(r, c));
                return Ok(self
                    .graph
                    .intern(Node::Mul(vec![arg.id, ones].into()), Shape::new(r, c)));
            }
            _ => {}
        }
        let Some(&(_, mut func)) = FUNCTION_NAMES.iter().find(|(n, _)| *n == name) else {
            return Err(unknown_function(name, name_span, false, "", 0));
        };
        let out = if func.is_elementwise() {
            shape
        } else {
            match func {
                Func::Sum | Func::Norm2 | Func::Norm1 | Func::Logsumexp => Shape::SCALAR,
                Func::Softmax => {
                    if !dims.unify(shape.cols, Dim::One) {
                        let a = self.describe(&mut names, arg);
                        return Err(ExprError::new(
                            format!("softmax needs a vector, got {a}"),
                            span,
                        ));
                    }
                    shape
                }
                Func::Tr | Func::Det | Func::Logdet | Func::Inv => {
                    if !dims.unify(shape.rows, shape.cols) {
                        let a = self.describe(&mut names, arg);
                        return Err(ExprError::new(
                            format!("{name} needs a square matrix, got {a}"),
                            span,
                        ));
                    }
                    if func == Func::Inv {
                        shape
                    } else {
                        Shape::SCALAR
                    }
                }
                Func::DiagMat | Func::DiagVec => {
                    // A column count that may still be 1 (`diag(A*ones)`) is 1: `ones` is
                    // a vector unless something makes it a matrix.
                    if dims.is_flex(shape.cols) {
                        dims.unify(shape.cols, Dim::One);
                    }
                    if dims.find(shape.cols) == Dim::One {
                        func = Func::DiagMat;
                        Shape::new(shape.rows, shape.rows)
                    } else if dims.unify(shape.rows, shape.cols) {
                        func = Func::DiagVec;
                        Shape::new(shape.rows, Dim::One)
                    } else {
                        let a = self.describe(&mut names, arg);
                        return Err(ExprError::new(
                            format!("diag needs a vector or a square matrix, got {a}"),
                            span,
                        ));
                    }
                }
                Func::Vec => {
                    let rows = dims.product(shape.rows, shape.cols);
                    Shape::new(rows, Dim::One)
                }
                _ => shape,
            }
        };
        Ok(self.graph.intern(Node::Call(func, arg.id), out))
    }
}

impl Builder<'_> {
    /// The size an argument of `eye(…)`, `ones(…)` or `zeros(…)` stands for: a whole
    /// number, `rows(E)`, `cols(E)`, or a product of them.
    fn size_dim(&mut self, arg: Operand, name: &str) -> Result<Dim, ExprError> {
        let bad = || {
            ExprError::new(
                format!(
                    "the size in {name}(…) must be a whole number, rows(E), cols(E) or a product of them"
                ),
                arg.span,
            )
        };
        let mut dim = Dim::One;
        let mut stack = vec![arg.id];
        while let Some(id) = stack.pop() {
            let d = match self.graph.node(id) {
                Node::Size(d) => *d,
                Node::Num(n) => {
                    let v = n.get();
                    if !(v >= 1.0 && v.fract() == 0.0 && v <= 1e9) {
                        return Err(bad());
                    }
                    self.graph.dims.literal(v as u64)
                }
                Node::Mul(fs) => {
                    stack.extend(fs.iter().rev().copied());
                    continue;
                }
                _ => return Err(bad()),
            };
            dim = self.graph.dims.product(dim, d);
        }
        Ok(dim)
    }
}

/// The kind a name has unless declared: Greek names are scalars, lowercase vectors,
/// uppercase matrices.
pub fn default_kind(name: &str) -> Kind {
    if GREEK.contains(&name) {
        Kind::Scalar
    } else if name.starts_with(|c: char| c.is_ascii_uppercase()) {
        Kind::Matrix
    } else {
        Kind::Vector
    }
}

/// The candidates nearest to `name` by edit distance (Damerau–Levenshtein, ignoring
/// case; ties go to names of the same case, then to fewer edits with case), if near
/// enough to be a likely typo: one edit for names of up to four characters, two for
/// longer ones, and fewer edits than the name has characters unless both are one
/// character long (`z` → `x`). Several when they are equally near (`W3` → `W1`, `W2`).
pub(crate) fn nearest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Vec<&'a str> {
    let lower = name.to_ascii_lowercase();
    let upper = |s: &str| s.starts_with(|c: char| c.is_ascii_uppercase());
    let mut ranked: Vec<((usize, bool, usize), &str)> = candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| {
            let d = strsim::damerau_levenshtein(&lower, &c.to_ascii_lowercase());
            let key = (
                d,
                upper(c) != upper(name),
                strsim::damerau_levenshtein(name, c),
            );
            (key, c)
        })
        .filter(|((d, _, _), c)| {
            let allowed = if name.len() <= 4 { 1 } else { 2 };
            *d <= allowed && (*d < name.len() || (name.len() == 1 && c.len() == 1))
        })
        .collect();
    ranked.sort();
    ranked.dedup_by(|a, b| a.1 == b.1);
    let best = ranked.first().map(|(k, _)| *k);
    ranked
        .into_iter()
        .take_while(|(k, _)| Some(*k) == best)
        .take(3)
        .map(|(_, c)| c)
        .collect()
}

/// `` `a` ``, `` `a` or `b` ``, `` `a`, `b` or `c` ``.
pub(crate) fn either(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// The end of a message about a name that is not a symbol of the expression: the
/// nearest symbol, `; did you mean `x`?`, or else the list of its symbols.
pub(crate) fn symbol_hint(graph: &Graph, name: &str) -> String {
    let names: Vec<&str> = graph
        .symbols()
        .map(|(_, info)| info.name.as_str())
        .collect();
    let near = nearest(name, names.iter().copied());
    match near.as_slice() {
        [_, ..] => format!("; did you mean {}?", either(&near)),
        [] if names.is_empty() => "; the expression has no symbols".to_string(),
        [] => {
            let list: Vec<String> = names.iter().take(12).map(|n| format!("`{n}`")).collect();
            let more = if names.len() > 12 { ", …" } else { "" };
            format!("; its symbols are {}{more}", list.join(", "))
        }
    }
}

/// The error for `name(…)` where `name` is not a function. `args` is the text of the
/// parenthesized arguments, `(x)`, and `count` how many there are.
///
/// In order: a symbol of the expression before parentheses is a product (`A(x)`); a
/// function of another tool gets jacob's spelling ([`other_spelling`]); a near
/// misspelling gets the nearest function; anything else gets the list of functions.
fn unknown_function(
    name: &str,
    span: Span,
    is_symbol: bool,
    args: &str,
    count: usize,
) -> ExprError {
    let known = function_list();
    let close = nearest(name, known.iter().copied());
    let multiply = if count == 1 && args.chars().count() <= HINT_CHARS {
        format!("; to multiply, write `{name}*{args}`")
    } else {
        "; to multiply, write `*` before `(`".to_string()
    };
    // The arguments without their parentheses, when short enough to quote.
    let inner = args
        .strip_prefix('(')
        .and_then(|a| a.strip_suffix(')'))
        .map(str::trim)
        .filter(|a| a.chars().count() <= HINT_CHARS && !a.is_empty());
    let message = if is_symbol {
        format!("`{name}` is not a function{multiply}")
    } else if let Some(hint) = other_spelling(name, inner, count) {
        format!("`{name}` is not a function in jacob: {hint}")
    } else if !close.is_empty() {
        format!(
            "unknown function `{name}`; did you mean {}?",
            either(&close)
        )
    } else {
        // A capital or one-letter name reads as a symbol: a product was meant.
        let symbol_like = name.len() == 1 || name.starts_with(|c: char| c.is_ascii_uppercase());
        let list = format!("; the functions are {}", known.join(" "));
        match (symbol_like, count == 1) {
            (true, true) => format!("`{name}` is not a function{multiply}"),
            (false, true) => format!("`{name}` is not a function{list}{multiply}"),
            _ => format!("unknown function `{name}`{list}"),
        }
    };
    ExprError::new(message, span)
}

/// Every name jacob calls like a function, in the order of the README.
pub(crate) fn function_list() -> Vec<&'static str> {
    FUNCTION_NAMES
        .iter()
        .map(|(n, _)| *n)
        .chain([
            "kron", "rows", "cols", "eye", "ones", "zeros", "vector", "matrix",
        ])
        .collect()
}

/// How jacob writes a function that other tools (NumPy, MATLAB, SymPy, PyTorch) spell
/// `name`, with its argument `arg` (`None` when long or absent) filled in.
fn other_spelling(name: &str, arg: Option<&str>, count: usize) -> Option<String> {
    let a = arg.unwrap_or("u");
    // An argument as an operand of a postfix or a product: `A'`, `(A*B)'`.
    let operand = |a: &str| {
        if a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            a.to_string()
        } else {
            format!("({a})")
        }
    };
    let rename = |to: &str| format!("write `{to}({a})`");
    // Two arguments, split at the top-level comma: `dot(a, b)`.
    let (p, q) = arg
        .and_then(|a| {
            let mut depth = 0i32;
            let comma = a.char_indices().find(|&(_, c)| {
                depth += i32::from(c == '(') - i32::from(c == ')');
                c == ',' && depth == 0
            })?;
            Some((a[..comma.0].trim(), a[comma.0 + 1..].trim()))
        })
        .unwrap_or(("a", "b"));
    // `Trace` as well as `trace`, but a one-letter name is a symbol's.
    let key = if name.len() > 1 {
        name.to_ascii_lowercase()
    } else {
        name.to_string()
    };
    Some(match key.as_str() {
        "trace" => rename("tr"),
        "transpose" => format!("a transpose is a postfix `'`: write `{}'`", operand(a)),
        "mean" | "avg" | "average" => {
            let m = operand(a);
            format!(
                "write `sum({a})/rows({a})` for a vector, `sum({a})/(rows({m})*cols({m}))` for a matrix"
            )
        }
        "max" | "maximum" | "amax" => format!(
            "`relu({a})` is the elementwise max({a}, 0), and `logsumexp({a})` a smooth maximum"
        ),
        "min" | "minimum" | "amin" => format!(
            "`-relu(-{m})` is the elementwise min({a}, 0), and `-logsumexp(-{m})` a smooth minimum",
            m = operand(a)
        ),
        "ln" => rename("log"),
        "norm" | "fro" | "frobenius" => rename("norm2"),
        "determinant" => rename("det"),
        "inverse" | "pinv" => rename("inv"),
        "logistic" | "expit" => rename("sigmoid"),
        "heaviside" => rename("step"),
        "sgn" | "signum" => rename("sign"),
        "asin" => rename("arcsin"),
        "acos" => rename("arccos"),
        "atan" => rename("arctan"),
        "lse" => rename("logsumexp"),
        "kronecker" => "write `kron(A, B)`".to_string(),
        "diagonal" | "diagm" => rename("diag"),
        "square" | "sq" => format!("write `{}.^2`", operand(a)),
        "pow" | "power" => "write `u.^p` (elementwise) or `s^p` (a scalar)".to_string(),
        "dot" | "inner" if count == 2 => format!("write `{}'*{}`", operand(p), operand(q)),
        "outer" if count == 2 => format!("write `{}*{}'`", operand(p), operand(q)),
        "identity" => "write `eye(n)`, or `I` where the size is clear".to_string(),
        "length" | "len" | "numel" | "size" => {
            format!("write `rows({a})` (or `cols({a})`)")
        }
        _ => return None,
    })
}

/// Checks what pest cannot say well: empty input, characters outside the language,
/// and nesting deeper than [`MAX_DEPTH`]. Returns the deepest nesting.
fn pre_scan(src: &str) -> Result<usize, ExprError> {
    if src.trim().is_empty() {
        return Err(ExprError::new("the expression is empty", Span::new(0, 0)));
    }
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut opens: Vec<usize> = Vec::new();
    for (i, c) in src.char_indices() {
        let span = Span::new(i, i + c.len_utf8());
        if !c.is_ascii() {
            let hint = match c {
                '′' | '’' | '‘' | 'ᵀ' | '⊤' => {
                    " (did you mean the transpose `'`?)".to_string()
                }
                '−' | '–' | '—' => " (did you mean `-`?)".to_string(),
                '×' | '·' | '∗' | '⋅' => " (did you mean `*`?)".to_string(),
                '⊙' | '∘' => " (did you mean `.*`?)".to_string(),
                '²' => " (did you mean `^2`?)".to_string(),
                _ => match greek_name(c) {
                    Some(n) => format!(" (write Greek letters by name: `{n}`)"),
                    None => String::new(),
                },
            };
            let shown = crate::error::visible(c).unwrap_or_else(|| c.to_string());
            return Err(ExprError::new(
                format!(
                    "the character `{shown}` (U+{:04X}) is not part of jacob's language{hint}",
                    c as u32
                ),
                span,
            ));
        }
        if c.is_ascii_control() && !matches!(c, ' ' | '\t' | '\n' | '\r') {
            return Err(ExprError::new(
                format!(
                    "the control character U+{:04X} is not allowed in an expression",
                    c as u32
                ),
                span,
            ));
        }
        match c {
            '(' => {
                depth += 1;
                deepest = deepest.max(depth);
                opens.push(i);
                if depth > MAX_DEPTH {
                    return Err(ExprError::new(
                        format!(
                            "the expression nests deeper than {MAX_DEPTH} levels of parentheses"
                        ),
                        span,
                    ));
                }
            }
            ')' => {
                if opens.pop().is_none() {
                    return Err(ExprError::new("this `)` has no matching `(`", span));
                }
                depth -= 1;
            }
            _ => {}
        }
    }
    if let Some(&open) = opens.last() {
        return Err(ExprError::new(
            "this `(` is never closed: a `)` is missing",
            Span::new(open, open + 1),
        ));
    }
    Ok(deepest)
}

fn greek_name(c: char) -> Option<&'static str> {
    const LETTERS: [(char, &str); 16] = [
        ('α', "alpha"),
        ('β', "beta"),
        ('γ', "gamma"),
        ('δ', "delta"),
        ('ε', "epsilon"),
        ('η', "eta"),
        ('θ', "theta"),
        ('κ', "kappa"),
        ('λ', "lambda"),
        ('μ', "mu"),
        ('ν', "nu"),
        ('ρ', "rho"),
        ('σ', "sigma"),
        ('τ', "tau"),
        ('φ', "phi"),
        ('ω', "omega"),
    ];
    LETTERS.iter().find(|(l, _)| *l == c).map(|(_, n)| *n)
}

/// What a piece of text is, for syntax messages.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tok {
    Number,
    Name,
    Punct,
}

/// A token: its kind and byte range.
#[derive(Clone, Copy, Debug)]
struct Token {
    kind: Tok,
    start: usize,
    end: usize,
}

/// Splits text (already checked to be ASCII) into numbers, names and punctuation the
/// way the grammar reads them; `.*`, `./` and `.^` are one token.
fn tokens(src: &str) -> Vec<Token> {
    let b = src.as_bytes();
    let digits = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        let start = i;
        let kind = if c.is_ascii_whitespace() {
            i += 1;
            continue;
        } else if c.is_ascii_digit() || (c == b'.' && next.is_some_and(|n| n.is_ascii_digit())) {
            i = digits(i);
            if i < b.len() && b[i] == b'.' && b.get(i + 1).is_some_and(|n| n.is_ascii_digit()) {
                i = digits(i + 1);
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                let mut j = i + 1;
                if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                    j += 1;
                }
                if j < b.len() && b[j].is_ascii_digit() {
                    i = digits(j);
                }
            }
            Tok::Number
        } else if c.is_ascii_alphabetic() {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            Tok::Name
        } else {
            let two = c == b'.' && matches!(next, Some(b'*' | b'/' | b'^'));
            i += if two { 2 } else { 1 };
            // Non-ASCII text never gets here (the pre-scan refuses it), but stay on a
            // character boundary regardless.
            while i < b.len() && !src.is_char_boundary(i) {
                i += 1;
            }
            Tok::Punct
        };
        out.push(Token {
            kind,
            start,
            end: i,
        });
    }
    out
}

/// The longest operand text a syntax hint quotes; longer operands get a hint without
/// quoting them.
const HINT_CHARS: usize = 30;

/// The index of the token that closes the bracket opened at `open` (`(` at index
/// `open`), if any.
fn closing(src: &str, toks: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (j, t) in toks.iter().enumerate().skip(open) {
        match &src[t.start..t.end] {
            "(" => depth += 1,
            ")" => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

/// The text of the operand that ends with token `last`: a number, a name, a call or a
/// parenthesized group, with any transposes; `None` if there is none or it is long.
fn operand_before(src: &str, toks: &[Token], last: usize) -> Option<String> {
    let end = toks[last].end;
    let mut j = last;
    while &src[toks[j].start..toks[j].end] == "'" {
        j = j.checked_sub(1)?;
    }
    let t = toks[j];
    let text = &src[t.start..t.end];
    let start = match t.kind {
        Tok::Number => t.start,
        Tok::Name if text != "where" => t.start,
        Tok::Punct if text == ")" => {
            let mut depth = 0usize;
            let mut open = None;
            for k in (0..=j).rev() {
                match &src[toks[k].start..toks[k].end] {
                    ")" => depth += 1,
                    "(" => {
                        depth -= 1;
                        if depth == 0 {
                            open = Some(k);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let open = open?;
            match open.checked_sub(1).map(|k| toks[k]) {
                Some(f) if f.kind == Tok::Name && &src[f.start..f.end] != "where" => f.start,
                _ => toks[open].start,
            }
        }
        _ => return None,
    };
    let text = src[start..end].to_string();
    (text.chars().count() <= HINT_CHARS).then_some(text)
}

/// The text of the operand that starts with token `first`, with any transposes;
/// `None` if there is none or it is long.
fn operand_after(src: &str, toks: &[Token], first: usize) -> Option<String> {
    let t = toks[first];
    let text = &src[t.start..t.end];
    let is = |k: usize, s: &str| toks.get(k).is_some_and(|t| &src[t.start..t.end] == s);
    let mut last = match t.kind {
        Tok::Number => first,
        Tok::Name if text == "where" => return None,
        Tok::Name if is(first + 1, "(") => closing(src, toks, first + 1)?,
        Tok::Name => first,
        Tok::Punct if text == "(" => closing(src, toks, first)?,
        Tok::Punct => return None,
    };
    while is(last + 1, "'") {
        last += 1;
    }
    let text = src[t.start..toks[last].end].to_string();
    (text.chars().count() <= HINT_CHARS).then_some(text)
}

/// Turns pest's error into one sentence at the offending place.
///
/// Every piece of jacob text a message suggests is itself valid jacob.
fn syntax_error(src: &str, e: pest::error::Error<Rule>) -> ExprError {
    let pos = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((p, _)) => p,
    }
    .min(src.len());
    let toks = tokens(src);
    let k = toks.iter().position(|t| t.end > pos).unwrap_or(toks.len());
    let text_of = |j: usize| &src[toks[j].start..toks[j].end];
    let found = toks.get(k).map(|_| text_of(k));
    let prev = k.checked_sub(1).map(text_of);
    let span = match toks.get(k) {
        Some(t) => Span::new(t.start, t.end),
        None => Span::new(src.len(), src.len() + 1),
    };
    let in_where = toks[..k].iter().any(|t| &src[t.start..t.end] == "where");
    let is_operand_end = |j: usize| {
        let t = toks[j];
        match t.kind {
            Tok::Number => true,
            Tok::Name => text_of(j) != "where",
            Tok::Punct => matches!(text_of(j), ")" | "'"),
        }
    };
    let is_operand_start = |j: usize| {
        let t = toks[j];
        match t.kind {
            Tok::Number => true,
            Tok::Name => text_of(j) != "where",
            Tok::Punct => text_of(j) == "(",
        }
    };
    let binding_example = "`h = A*x`";

    // The keyword `where` out of place.
    if found == Some("where") && prev.is_none() {
        return ExprError::new(
            "an expression must come before `where`, as in `h'*h where h = A*x`",
            span,
        );
    }
    if found == Some("where") && k > 0 && !is_operand_end(k - 1) {
        return ExprError::new(
            format!(
                "`{}` needs an operand after it, not `where`",
                prev.unwrap_or("")
            ),
            span,
        );
    }
    if let Some(p) = prev
        && (p == "where" || (p == "," && in_where))
        && found.is_none_or(|f| toks[k].kind != Tok::Name || f == "where")
    {
        let early = if found.is_none() {
            "the expression ends too early: "
        } else {
            ""
        };
        return ExprError::new(
            format!("{early}`{p}` must be followed by a binding such as {binding_example}"),
            span,
        );
    }
    // A binding without `=`: `x where h`.
    if in_where
        && let Some(f) = found
        && toks[k].kind == Tok::Name
        && k > 0
        && matches!(text_of(k - 1), "where" | ",")
        && toks.get(k + 1).is_none_or(|_| text_of(k + 1) != "=")
    {
        return ExprError::new(
            format!(
                "the name `{f}` after `{}` needs `=` and a value, as in {binding_example}",
                text_of(k - 1)
            ),
            span,
        );
    }
    if in_where
        && found != Some("=")
        && k >= 2
        && toks[k - 1].kind == Tok::Name
        && matches!(text_of(k - 2), "where" | ",")
    {
        let name = text_of(k - 1);
        return ExprError::new(
            format!("expected `=` after `{name}`: a where binding reads {binding_example}"),
            span,
        );
    }

    let Some(f) = found else {
        return ExprError::new("the expression ends too early: an operand is missing", span);
    };
    let after = &src[toks[k].start..];

    // Two operands side by side.
    if k > 0 && is_operand_end(k - 1) && is_operand_start(k) {
        let p = text_of(k - 1);
        if toks[k - 1].kind == Tok::Number && p.contains('.') && f.starts_with('.') {
            return ExprError::new("a number has at most one decimal point", span);
        }
        if toks[k - 1].kind == Tok::Number
            && !p.contains(['e', 'E'])
            && matches!(f, "e" | "E")
            && toks[k - 1].end == toks[k].start
        {
            return ExprError::new(
                format!("the exponent of `{p}{f}` has no digits, as in `{p}e3`"),
                span,
            );
        }
        if toks[k - 1].kind == Tok::Name
            && (FUNCTION_NAMES.iter().any(|(n, _)| *n == p)
                || matches!(p, "kron" | "vector" | "matrix"))
        {
            return ExprError::new(
                match operand_after(src, &toks, k) {
                    Some(arg) if !arg.starts_with('(') => {
                        format!("`{p}` is a function: call it as `{p}({arg})`")
                    }
                    _ => format!(
                        "`{p}` is a function: put its argument in parentheses right after it"
                    ),
                },
                span,
            );
        }
        return ExprError::new(
            match (operand_before(src, &toks, k - 1), operand_after(src, &toks, k)) {
                (Some(l), Some(r)) => format!(
                    "implicit multiplication is not supported: write `{l}*{r}` (or `{l}.*{r}`)"
                ),
                _ => "implicit multiplication is not supported: write `*` (or `.*`) between the operands"
                    .to_string(),
            },
            span,
        );
    }
    // `x**2`: another language's power.
    if f == "*" && prev == Some("*") && toks[k - 1].end == toks[k].start {
        let span = Span::new(toks[k - 1].start, toks[k].end);
        let base = k.checked_sub(2).and_then(|j| operand_before(src, &toks, j));
        let exp = toks
            .get(k + 1)
            .and_then(|_| operand_after(src, &toks, k + 1));
        return ExprError::new(
            match (base, exp) {
                (Some(b), Some(e)) => format!(
                    "`**` is not jacob's power: write `{b}.^{e}` elementwise, or `{b}^{e}` for a scalar {b}"
                ),
                _ => "`**` is not jacob's power: write `.^` for an elementwise power, or `^` for a power of a scalar".to_string(),
            },
            span,
        );
    }
    match f {
        // NumPy's `x.T`.
        "." if after[1..].starts_with('T')
            && !after[2..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') =>
        {
            let base = k.checked_sub(1).and_then(|j| operand_before(src, &toks, j));
            ExprError::new(
                match base {
                    Some(b) => {
                        format!("`.T` is NumPy's transpose; jacob's is a postfix `'`: write `{b}'`")
                    }
                    None => "`.T` is NumPy's transpose; jacob's is a postfix `'`, as in `x'`"
                        .to_string(),
                },
                Span::new(toks[k].start, toks[k].start + 2),
            )
        }
        "." => {
            let transpose = if after[1..].trim_start().starts_with('\'') {
                "; a transpose is `'` alone"
            } else {
                ""
            };
            ExprError::new(
                format!(
                    "a lone `.` is not an operator: the elementwise operators are `.*`, `./` and `.^`{transpose}"
                ),
                span,
            )
        }
        "," => ExprError::new(
            "unexpected `,`: only kron takes two arguments, and where bindings are separated by commas",
            span,
        ),
        "+" | "*" | "/" | "^" | ".*" | "./" | ".^" => {
            ExprError::new(format!("`{f}` needs an operand on its left"), span)
        }
        ")" => ExprError::new("expected an operand before `)`", span),
        "'" => ExprError::new("a transpose `'` must follow an operand", span),
        "=" => ExprError::new(
            "unexpected `=`: local names are bound with `where`, as in `h'*h where h = A*x`",
            span,
        ),
        _ => ExprError::new(
            format!("unexpected `{f}`: expected an operator or the end of the expression"),
            span,
        ),
    }
}

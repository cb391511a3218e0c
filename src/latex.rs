//! The LaTeX printer: math-mode LaTeX that compiles inside `$…$` with amsmath and
//! renders in KaTeX. A pure function of the graph, shaped like the text printer
//! ([`crate::print`]): the same precedence levels, the same minimal parentheses.

use crate::fixed::Fixed;
use crate::graph::{Func, Graph, Id, Kind, Node, Symbol};
use crate::print::{Fraction, Prec, SizePart, Sized, format_num, names_within, size_parts};
use crate::shape::Dim;
use std::collections::{HashMap, HashSet};

/// Prints an expression as LaTeX math: bold vectors and matrices (`\mathbf{x}`),
/// `^\top` for transpose, `\odot` for `.*`, `\frac{…}{…}` for division by scalars.
pub fn latex(g: &Graph, id: Id) -> String {
    statement(g, id, "", "")
}

/// `lhs = ` the LaTeX of `id` `tail`, with the text printer's `where` bindings as
/// aligned lines under it (`\begin{aligned}…\end{aligned}`, which amsmath and KaTeX
/// accept inside `$…$`). With an empty `lhs`, the expression alone.
pub fn statement(g: &Graph, id: Id, lhs: &str, tail: &str) -> String {
    let names = names_within(g, id, MAX_NESTING);
    let fixed = Fixed::new(g, id);
    let printer = Printer {
        g,
        // A scalar named `sigma` prints as `\sigma`; then sigmoid spells its name out.
        sigmoid: if g.lookup("sigma").is_some() {
            r"\operatorname{sigmoid}"
        } else {
            r"\sigma"
        },
        names: &names,
        plain: crate::print::PlainCache::default(),
        fixed: &fixed,
    };
    let mut out = String::new();
    printer.at(id, Prec::Add, &mut out);
    let eq = if lhs.is_empty() { "" } else { " = " };
    if names.is_empty() {
        return format!("{lhs}{eq}{out}{tail}");
    }
    let mut bound: Vec<(&Id, &String)> = names.iter().collect();
    bound.sort();
    let eq = if lhs.is_empty() { "& " } else { " &= " };
    let mut lines = vec![format!("{lhs}{eq}{out}{tail}")];
    for (i, (&node, _)) in bound.into_iter().enumerate() {
        let lead = if i == 0 { r"\text{where}\quad " } else { "" };
        let mut def = String::new();
        printer.form(node, &mut def);
        let name = printer.name(node).unwrap_or_default();
        lines.push(format!("{lead}{name} &= {def}"));
    }
    format!(r"\begin{{aligned}}{}\end{{aligned}}", lines.join(r" \\ "))
}

/// A numeric value as LaTeX: a number, or a `bmatrix` (amsmath; KaTeX renders it) with
/// a column vector as one column. amsmath's `bmatrix` takes at most 10 columns, so a
/// wider matrix is an `array` in brackets, which has no such limit.
pub fn value(m: &nalgebra::DMatrix<f64>) -> String {
    if m.nrows() == 1 && m.ncols() == 1 {
        return number(m[(0, 0)]);
    }
    let rows: Vec<String> = (0..m.nrows())
        .map(|i| {
            let items: Vec<String> = (0..m.ncols()).map(|j| number(m[(i, j)])).collect();
            items.join(" & ")
        })
        .collect();
    let body = rows.join(r" \\ ");
    if m.ncols() <= 10 {
        format!(r"\begin{{bmatrix}} {body} \end{{bmatrix}}")
    } else {
        let cols = "c".repeat(m.ncols());
        format!(r"\left[\begin{{array}}{{{cols}}} {body} \end{{array}}\right]")
    }
}

/// One displayed statement of a document: `lhs = ` the expression `id`, then `tail`
/// (with an empty `lhs`, the expression alone).
pub struct Item {
    /// The left-hand side, LaTeX, or empty.
    pub lhs: String,
    /// The expression.
    pub id: Id,
    /// LaTeX after the expression (`\quad \text{(mixed layout)}`).
    pub tail: String,
}

/// The widest a row of a document may be, in [`width`] units (about one letter each):
/// narrower than the text width of an `article` page (345pt), with room for the
/// continuation indent.
const ROW_WIDTH: f64 = 46.0;

/// A subexpression wider than this gets a name and a `where` row of its own, so that
/// no row nests more than one row's width inside parentheses.
const NAMED_WIDTH: f64 = 32.0;

/// The rows of an `align*` block for `items`, no row wider than the page: a
/// subexpression that would be wider than [`NAMED_WIDTH`] inside another is named
/// and defined on a `where` row (besides the text printer's shared subexpressions and
/// the bindings that bound nesting), and a row still too wide is broken before a
/// top-level `=`, `+`, `-` or factor ([`break_row`]).
pub fn rows(g: &Graph, items: &[Item]) -> Vec<String> {
    let roots: Vec<Id> = items.iter().map(|i| i.id).collect();
    let names = names_for_width(g, &roots);
    let fixed: Vec<Fixed> = roots.iter().map(|&r| Fixed::new(g, r)).collect();
    let reach: Vec<std::collections::HashSet<Id>> = roots
        .iter()
        .map(|&r| g.reachable(&[r]).into_iter().collect())
        .collect();
    let printer = |k: usize| Printer {
        g,
        sigmoid: if g.lookup("sigma").is_some() {
            r"\operatorname{sigmoid}"
        } else {
            r"\sigma"
        },
        names: &names,
        plain: crate::print::PlainCache::default(),
        fixed: &fixed[k],
    };
    let mut out = Vec::new();
    for (k, item) in items.iter().enumerate() {
        let mut body = String::new();
        printer(k).at(item.id, Prec::Add, &mut body);
        let lead = if item.lhs.is_empty() {
            "& ".to_string()
        } else {
            format!("{} &= ", item.lhs)
        };
        out.push(format!("{lead}{body}{}", item.tail));
    }
    let mut bound: Vec<(&Id, &String)> = names.iter().collect();
    bound.sort();
    for (i, (&node, _)) in bound.into_iter().enumerate() {
        let k = reach.iter().position(|r| r.contains(&node)).unwrap_or(0);
        let p = printer(k);
        let mut def = String::new();
        p.form(node, &mut def);
        let name = p.name(node).unwrap_or_default();
        let lead = if i == 0 { r"\text{where}\quad " } else { "" };
        out.push(format!("{lead}{name} &= {def}"));
    }
    out.into_iter().flat_map(|r| break_row(&r)).collect()
}

/// A whole LaTeX document (article, amsmath) showing `rows` as one `align*` block;
/// `\allowdisplaybreaks` lets a long block run over pages.
pub fn document(rows: &[String]) -> String {
    format!(
        "\\documentclass{{article}}\n\\usepackage{{amsmath}}\n\\allowdisplaybreaks\n\\begin{{document}}\n{}\\end{{document}}\n",
        block(rows)
    )
}

/// One `align*` block of `rows`, one row a line, for pasting into a document.
pub fn block(rows: &[String]) -> String {
    format!(
        "\\begin{{align*}}\n{}\n\\end{{align*}}\n",
        rows.join(" \\\\\n")
    )
}

/// The names of the rows: the text printer's shared subexpressions and nesting
/// bindings for every root, and every subexpression wider than [`NAMED_WIDTH`] once
/// its named parts print as names; a row that is still too wide and cannot be broken
/// at the top level (a fraction, a call) has its widest parts named too.
fn names_for_width(g: &Graph, roots: &[Id]) -> HashMap<Id, String> {
    let mut named: std::collections::HashSet<Id> = std::collections::HashSet::new();
    for &r in roots {
        named.extend(names_within(g, r, MAX_NESTING).into_keys());
    }
    let order = g.reachable(roots);
    let mut size: HashMap<Id, f64> = HashMap::with_capacity(order.len());
    let nameable = |id: Id| {
        !matches!(
            g.node(id),
            Node::Num(_)
                | Node::Sym(_)
                | Node::Size(_)
                | Node::Identity(_)
                | Node::Ones(..)
                | Node::Zero(..)
        )
    };
    let sized = |id: Id, named: &std::collections::HashSet<Id>, size: &HashMap<Id, f64>| {
        if named.contains(&id) {
            3.0
        } else {
            size.get(&id).copied().unwrap_or(3.0)
        }
    };
    for &id in &order {
        let inner: f64 = g
            .children(id)
            .iter()
            .map(|&c| sized(c, &named, &size))
            .sum();
        let s = own_width(g, id) + inner;
        size.insert(id, s);
        if s > NAMED_WIDTH && !roots.contains(&id) && nameable(id) {
            named.insert(id);
        }
    }
    // Rows that cannot be broken at the top level: name their widest parts.
    let mut rows: Vec<Id> = roots.to_vec();
    rows.extend(named.iter().copied());
    for r in rows {
        let breakable = match g.node(r) {
            Node::Add(_) | Node::Had(_) | Node::Kron(_) => true,
            Node::Mul(_) => !Fraction::of(g, r, &HashMap::new()).is_frac(),
            _ => false,
        };
        if breakable {
            continue;
        }
        let mut kids: Vec<Id> = g.children(r).to_vec();
        kids.sort_by(|a, b| sized(*b, &named, &size).total_cmp(&sized(*a, &named, &size)));
        let mut total: f64 =
            own_width(g, r) + kids.iter().map(|&c| sized(c, &named, &size)).sum::<f64>();
        for c in kids {
            if total <= ROW_WIDTH {
                break;
            }
            if nameable(c) && !named.contains(&c) {
                total -= sized(c, &named, &size) - 3.0;
                named.insert(c);
            }
        }
    }
    // Named in the order of the graph (children first), with a prefix no symbol uses.
    let mut ids: Vec<Id> = named.into_iter().collect();
    ids.sort();
    let taken: Vec<&str> = g
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
    ids.into_iter()
        .enumerate()
        .map(|(i, id)| (id, format!("{prefix}{}", i + 1)))
        .collect()
}

/// The width a node adds to its children's as printed, in [`width`] units.
fn own_width(g: &Graph, id: Id) -> f64 {
    let n = |k: usize| k.saturating_sub(1) as f64;
    match g.node(id) {
        Node::Num(v) => number(v.get()).len() as f64,
        Node::Sym(s) => width(&symbol(g, *s)),
        Node::Size(d) => width(&size(g, *d, &HashSet::new())),
        Node::Commutation(..) | Node::Hole(..) => 4.0,
        Node::Identity(_) | Node::Ones(..) | Node::Zero(..) => 6.0,
        Node::Add(ts) => 3.0 * n(ts.len()) + 2.0,
        Node::Mul(fs) => 0.5 * n(fs.len()) + 2.0,
        Node::Had(fs) => 3.0 * n(fs.len()) + 2.0,
        Node::Pow(_) | Node::EPow(_) => 3.0,
        Node::Transpose(_) => 3.0,
        Node::Call(f, _) => f.name().len() as f64 + 2.0,
        Node::Kron(_) => 5.0,
    }
}

/// The width of math LaTeX as typeset, roughly in letters: command names, braces and
/// scripts markers take no room, `\quad` two letters, a binary operator with its
/// spacing two.
pub(crate) fn width(latex: &str) -> f64 {
    let b = latex.as_bytes();
    let mut w = 0.0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && b[j].is_ascii_alphabetic() {
                j += 1;
            }
            let name = &latex[start..j];
            w += match name {
                "" => {
                    j += 1;
                    0.3
                }
                "left" | "right" | "mathbf" | "boldsymbol" | "operatorname" | "mathrm"
                | "mathit" | "text" | "frac" | "sqrt" | "begin" | "end" => 0.0,
                "quad" => 2.0,
                "qquad" => 4.0,
                "cdot" | "odot" | "oslash" | "otimes" | "times" => 2.0,
                _ => 1.0,
            };
            i = j;
            continue;
        }
        w += match c {
            b'{' | b'}' | b'^' | b'_' | b' ' | b'&' => 0.0,
            b'+' | b'-' | b'=' => 2.0,
            _ => 1.0,
        };
        i += 1;
    }
    w
}

/// A row of an `align*` block, broken into rows no wider than [`ROW_WIDTH`] where it
/// can be: before a `=`, `+` or `-` at the top level (outside braces, `\left…\right`
/// and environments), else between top-level factors. Each continuation starts
/// `&\qquad`, under the alignment point.
pub fn break_row(row: &str) -> Vec<String> {
    if width(row) <= ROW_WIDTH {
        return vec![row.to_string()];
    }
    let row = &split_text(row);
    // Top-level places to break, with their strength: 2 for = + -, 1 for a factor.
    let b = row.as_bytes();
    let mut depth = 0i32;
    let mut cuts: Vec<(usize, u8)> = Vec::new();
    let mut i = 0;
    let align = row.find('&').map_or(0, |a| a + 1);
    while i < b.len() {
        let rest = &row[i..];
        if rest.starts_with(r"\left") || rest.starts_with(r"\begin") {
            depth += 1;
        } else if rest.starts_with(r"\right") || rest.starts_with(r"\end") {
            depth -= 1;
        }
        match b[i] {
            b'{' => depth += 1,
            b'}' => depth -= 1,
            b' ' if depth == 0 && i > align => {
                let next = &row[i + 1..];
                let strong = [
                    "= ", "+ ", "- ", r"\quad", r"\cdot", r"\odot", r"\oslash", r"\otimes",
                ]
                .iter()
                .any(|p| next.starts_with(p));
                let prev_op = row[..i].ends_with(['=', '+', '-', '&'])
                    || row[..i].ends_with(r"\cdot")
                    || row[..i].ends_with(r"\odot")
                    || row[..i].ends_with(r"\oslash")
                    || row[..i].ends_with(r"\otimes");
                if strong {
                    cuts.push((i, 2));
                } else if !prev_op {
                    cuts.push((i, 1));
                }
            }
            _ => {}
        }
        i += 1;
    }
    let mut out = Vec::new();
    let mut from = 0;
    let mut lead = String::new();
    loop {
        let piece = &row[from..];
        if width(&lead) + width(piece) <= ROW_WIDTH {
            out.push(format!("{lead}{piece}"));
            break;
        }
        // The last cut that keeps the row within width, strong cuts preferred.
        let fits =
            |&&(c, _): &&(usize, u8)| c > from && width(&lead) + width(&row[from..c]) <= ROW_WIDTH;
        let cut = cuts
            .iter()
            .filter(|c| c.1 == 2)
            .rfind(fits)
            .or_else(|| cuts.iter().rfind(fits))
            .or_else(|| cuts.iter().find(|&&(c, _)| c > from));
        let Some(&(cut, _)) = cut else {
            out.push(format!("{lead}{piece}"));
            break;
        };
        out.push(format!("{lead}{}", &row[from..cut]));
        from = cut + 1;
        lead = r"&\qquad ".to_string();
    }
    // Words of one text on one row are one `\text` again.
    out.into_iter()
        .map(|r| r.replace(r"} \text{ ", " "))
        .collect()
}

/// Text (`\text{…}`) wider than a few words, split into one `\text` per word so
/// that [`break_row`] can break between them: `\text{a} \text{ b}` prints as `a b`.
fn split_text(row: &str) -> String {
    let mut out = String::with_capacity(row.len() + 16);
    let mut rest = row;
    while let Some(at) = rest.find(r"\text{") {
        out.push_str(&rest[..at]);
        let body_from = at + r"\text{".len();
        let body_end = rest[body_from..].find(['{', '}']).map(|e| body_from + e);
        match body_end {
            Some(end) if rest.as_bytes()[end] == b'}' && width(&rest[body_from..end]) > 12.0 => {
                let words: Vec<&str> = rest[body_from..end].split(' ').collect();
                let parts: Vec<String> = words
                    .iter()
                    .enumerate()
                    .map(|(i, w)| {
                        let space = if i == 0 { "" } else { " " };
                        format!(r"\text{{{space}{w}}}")
                    })
                    .collect();
                out.push_str(&parts.join(" "));
                rest = &rest[end + 1..];
            }
            _ => {
                out.push_str(r"\text{");
                rest = &rest[body_from..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A numeric value as rows of a document: blocks of at most 40 rows and as many
/// columns as fit [`ROW_WIDTH`], each labelled with the rows and columns it holds when
/// the value takes more than one block.
pub fn value_rows(m: &nalgebra::DMatrix<f64>) -> Vec<String> {
    let whole = value(m);
    if width(&whole) <= ROW_WIDTH && m.nrows() <= 40 {
        return vec![format!("& {whole}")];
    }
    let widest = m.iter().map(|&v| width(&number(v))).fold(1.0, f64::max);
    let per_row = ((ROW_WIDTH - 16.0) / (widest + 2.0)).floor().max(1.0) as usize;
    let mut out = Vec::new();
    for r0 in (0..m.nrows()).step_by(40) {
        let r1 = (r0 + 40).min(m.nrows());
        for c0 in (0..m.ncols()).step_by(per_row) {
            let c1 = (c0 + per_row).min(m.ncols());
            let block = m.view((r0, c0), (r1 - r0, c1 - c0)).clone_owned();
            let body = if block.nrows() == 1 && block.ncols() == 1 {
                format!(
                    r"\begin{{bmatrix}} {} \end{{bmatrix}}",
                    number(block[(0, 0)])
                )
            } else {
                value(&block)
            };
            out.push(format!(
                r"\text{{rows {}--{}, columns {}--{}:}} &\quad {body}",
                r0 + 1,
                r1,
                c0 + 1,
                c1
            ));
        }
    }
    out
}

/// How deep a printed form may nest before a part of it is named on a `where` line:
/// each level costs LaTeX a few of its 255 levels of grouping.
const MAX_NESTING: u32 = 40;

/// The LaTeX of a symbol. A name `(∂f/∂u1)`, which `--explain` gives a known
/// derivative, prints as `\left(\frac{\partial f}{\partial \mathbf{u}_{1}}\right)`.
pub fn symbol(g: &Graph, s: Symbol) -> String {
    // The differential of X (`--form differential`): d X.
    if let Some(&x) = g.differential_of.get(&s) {
        return format!(r"\mathrm{{d}}{}", symbol(g, x));
    }
    let info = g.symbol(s);
    let (name, top) = match info.name.strip_suffix('\'') {
        Some(n) => (n, r"^\top"),
        None => (info.name.as_str(), ""),
    };
    let parts = name
        .strip_prefix("(∂")
        .and_then(|r| r.strip_suffix(')'))
        .and_then(|r| r.split_once("/∂"))
        .and_then(|(a, b)| Some((g.lookup(a)?, g.lookup(b)?)));
    match parts {
        Some((of, by)) => format!(r"\left({}\right){top}", partial(g, of, by)),
        None => symbol_name(&info.name, info.kind),
    }
}

/// `\frac{\partial f}{\partial \mathbf{x}}`.
pub fn partial(g: &Graph, of: Symbol, by: Symbol) -> String {
    format!(
        r"\frac{{\partial {}}}{{\partial {}}}",
        symbol(g, of),
        symbol(g, by)
    )
}

/// Lowercase Greek letters with a LaTeX command of the same name (omicron has none).
const GREEK: [&str; 23] = [
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi",
    "omega",
];

/// Uppercase Greek letters that LaTeX has commands for (the others look Latin).
const GREEK_UPPER: [&str; 11] = [
    "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Upsilon", "Phi", "Psi", "Omega",
];

fn greek(name: &str) -> Option<String> {
    (GREEK.contains(&name) || GREEK_UPPER.contains(&name)).then(|| format!("\\{name}"))
}

/// The LaTeX of a symbol's name: `W1` and `W_1` → `\mathbf{W}_{1}`, `y_hat` →
/// `\mathbf{y}_{\mathrm{hat}}`, `lambda` → `\lambda`, `theta` as a vector →
/// `\boldsymbol{\theta}`.
fn symbol_name(name: &str, kind: Kind) -> String {
    let mut parts = name.split('_').filter(|p| !p.is_empty());
    let head = parts.next().unwrap_or(name);
    let mut subs: Vec<&str> = Vec::new();
    // Trailing digits of the head are a subscript: `W12` → W_{12}.
    let letters = head.trim_end_matches(|c: char| c.is_ascii_digit());
    let base = if !letters.is_empty() && letters.len() < head.len() {
        subs.push(&head[letters.len()..]);
        letters
    } else {
        head
    };
    subs.extend(parts);
    let bold = kind != Kind::Scalar;
    let mut out = match (greek(base), bold) {
        (Some(cmd), true) => format!("\\boldsymbol{{{cmd}}}"),
        (Some(cmd), false) => cmd,
        (None, true) => format!("\\mathbf{{{base}}}"),
        (None, false) if base.chars().count() == 1 => base.to_string(),
        (None, false) => format!("\\mathit{{{base}}}"),
    };
    if !subs.is_empty() {
        let subs: Vec<String> = subs.iter().map(|s| subscript_part(s)).collect();
        out.push_str("_{");
        out.push_str(&subs.join(","));
        out.push('}');
    }
    out
}

/// One part of a subscript: digits and single letters as they are, Greek names as
/// letters, words upright.
fn subscript_part(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_digit()) || s.chars().count() == 1 {
        s.to_string()
    } else if let Some(cmd) = greek(s) {
        cmd
    } else {
        format!("\\mathrm{{{s}}}")
    }
}

/// A number in LaTeX: `2`, `0.5`, `10^{-7}`, `1.5 \times 10^{20}`.
fn number(v: f64) -> String {
    let s = format_num(v);
    match s.split_once('e') {
        Some((m, e)) => {
            let e = e.trim_start_matches('+');
            match m {
                "1" => format!("10^{{{e}}}"),
                "-1" => format!("-10^{{{e}}}"),
                _ => format!("{m} \\times 10^{{{e}}}"),
            }
        }
        None => s,
    }
}

/// The binding strength of a number as printed.
fn number_prec(v: f64) -> Prec {
    let s = format_num(v);
    if s.contains('e') && !s.starts_with("1e") && !s.starts_with("-1e") {
        Prec::Mul
    } else if v < 0.0 {
        Prec::Neg
    } else if s.contains('e') {
        Prec::Pow
    } else {
        Prec::Atom
    }
}

struct Printer<'a> {
    g: &'a Graph,
    sigmoid: &'static str,
    /// Shared subexpressions printed by name (the text printer's `where` bindings).
    names: &'a HashMap<Id, String>,
    /// Plain texts of short terms, for ordering sums.
    plain: crate::print::PlainCache,
    /// Where a constant needs its size written.
    fixed: &'a Fixed,
}

/// The LaTeX of a size: `\operatorname{rows}(\mathbf{A})`, `3`.
fn size(g: &Graph, d: Dim, prefer: &HashSet<Symbol>) -> String {
    let parts: Vec<String> = size_parts(g, d, prefer)
        .into_iter()
        .map(|p| match p {
            SizePart::Number(n) => n.to_string(),
            SizePart::Of(s, cols) => format!(
                r"\operatorname{{{}}}({})",
                if cols { "cols" } else { "rows" },
                symbol(g, s)
            ),
            SizePart::Unknown => r"n".to_string(),
        })
        .collect();
    parts.join(r" \cdot ")
}

impl Printer<'_> {
    /// The LaTeX of a shared subexpression's name, if it has one.
    fn name(&self, id: Id) -> Option<String> {
        let name = self.names.get(&id)?;
        let kind = match self.g.shape(id) {
            s if self.g.dims.is_scalar(s) => Kind::Scalar,
            s if self.g.dims.is_column(s) || self.g.dims.is_row(s) => Kind::Vector,
            _ => Kind::Matrix,
        };
        Some(symbol_name(name, kind))
    }

    /// Prints `id` as it is, or as its name when it is a shared subexpression.
    fn form_or_name(&self, id: Id, out: &mut String) {
        match self.name(id) {
            Some(n) => out.push_str(&n),
            None => self.form(id, out),
        }
    }

    /// Prints `id` where a form at least as tight as `min` is needed.
    fn at(&self, id: Id, min: Prec, out: &mut String) {
        if let Some(n) = self.name(id) {
            out.push_str(&n);
        } else if self.prec(id) < min {
            out.push_str(r"\left(");
            self.form(id, out);
            out.push_str(r"\right)");
        } else {
            self.form(id, out);
        }
    }

    /// Prints `id` as the base of a superscript `sup`: parenthesized when loose,
    /// braced when it already carries a script or ends in a call's parenthesis.
    fn sup(&self, id: Id, sup: &str, out: &mut String) {
        if let Some(n) = self.name(id) {
            out.push('{');
            out.push_str(&n);
            out.push('}');
        } else if self.prec(id) < Prec::Postfix {
            self.at(id, Prec::Postfix, out);
        } else if self.braced_base(id) {
            out.push('{');
            self.form(id, out);
            out.push('}');
        } else {
            self.form(id, out);
        }
        if sup == r"\top" {
            out.push('^');
            out.push_str(sup);
        } else {
            out.push_str("^{");
            out.push_str(sup);
            out.push('}');
        }
    }

    /// True when a superscript cannot attach to the printed form directly.
    fn braced_base(&self, id: Id) -> bool {
        let g = self.g;
        match g.node(id) {
            Node::Sym(s) => symbol(g, *s).contains('_'),
            Node::Identity(_) | Node::Ones(..) | Node::Zero(..) if !self.fixed.bare(g, id) => true,
            Node::Call(Func::Norm2 | Func::Norm1 | Func::Abs, _) => false,
            Node::Call(..) | Node::Transpose(_) | Node::Pow(_) | Node::EPow(_) => true,
            Node::Num(n) => number(n.get()).contains('^'),
            Node::Ones(..) | Node::Zero(..) => self.is_row(id),
            _ => false,
        }
    }

    fn fraction(&self, id: Id) -> Fraction {
        Fraction::of(self.g, id, self.names)
    }

    fn is_row(&self, id: Id) -> bool {
        self.g.dims.is_row(self.g.shape(id))
    }

    fn prec(&self, id: Id) -> Prec {
        let g = self.g;
        if self.names.contains_key(&id) {
            return Prec::Atom;
        }
        match g.node(id) {
            Node::Ones(..) | Node::Zero(..) if self.is_row(id) => Prec::Postfix,
            Node::Num(n) => number_prec(n.get()),
            Node::Size(d) if size_parts(g, *d, &self.fixed.present).len() > 1 => Prec::Mul,
            Node::Size(_) | Node::Commutation(..) | Node::Hole(..) => Prec::Atom,
            Node::Sym(_) | Node::Identity(_) | Node::Ones(..) | Node::Zero(..) => Prec::Atom,
            Node::Call(Func::Inv, _) => Prec::Postfix,
            Node::Call(..) => Prec::Atom,
            Node::Kron(_) => Prec::Mul,
            Node::Add(_) => Prec::Add,
            Node::Mul(_) => {
                let f = self.fraction(id);
                let plain = f.coef == 1.0 && f.den.is_empty() && f.num.len() == 1;
                match (f.negative, plain, f.is_frac()) {
                    (true, true, _) => Prec::Neg,
                    (false, _, true) => Prec::Pow,
                    _ => Prec::Mul,
                }
            }
            Node::Had(_) => Prec::Mul,
            Node::Pow([_, p]) if g.as_num(*p).is_some_and(|e| e < 0.0) => Prec::Pow,
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
            Node::Num(n) => out.push_str(&number(n.get())),
            Node::Sym(s) => out.push_str(&symbol(g, *s)),
            Node::Size(d) => out.push_str(&size(g, *d, &self.fixed.present)),
            // K with K vec(X) = vec(X'), subscripted by X's shape.
            Node::Commutation(m, n) => {
                let sub = match crate::print::symbol_of_shape(g, *m, *n) {
                    Some(s) => symbol(g, s),
                    None => format!(
                        "{},{}",
                        size(g, *m, &self.fixed.present),
                        size(g, *n, &self.fixed.present)
                    ),
                };
                out.push_str(&format!(r"\mathbf{{K}}_{{{sub}}}"));
            }
            Node::Hole(k, ..) => out.push_str(&format!(r"\mathrm{{d}}_{{{k}}}")),
            Node::Zero(..) if g.is_scalar(id) => out.push('0'),
            Node::Identity(_) | Node::Ones(..) | Node::Zero(..) => {
                let base = match g.node(id) {
                    Node::Identity(_) => r"\mathbf{I}",
                    Node::Ones(..) => r"\mathbf{1}",
                    _ => r"\mathbf{0}",
                };
                out.push_str(base);
                // Where the text around it does not give its size, a subscript does:
                // `\mathbf{I}_{n}`, `\mathbf{1}_{m \times n}`.
                let sized = !self.fixed.bare(g, id) || matches!(g.node(id), Node::Zero(..));
                if sized {
                    let sub = match Sized::of(g, g.node(id), g.shape(id)) {
                        Sized::Eye(n) | Sized::Column(n) | Sized::Row(n) => {
                            size(g, n, &self.fixed.present)
                        }
                        Sized::Matrix(r, c) => format!(
                            r"{} \times {}",
                            size(g, r, &self.fixed.present),
                            size(g, c, &self.fixed.present)
                        ),
                    };
                    out.push_str("_{");
                    out.push_str(&sub);
                    out.push('}');
                }
                // A row is the transpose of a column: `\mathbf{1}^\top`.
                if self.is_row(id) {
                    out.push_str(r"^\top");
                }
            }
            Node::Add(ts) => self.sum(ts, out),
            Node::Mul(_) => self.product(id, out),
            Node::Had(fs) => self.hadamard(fs, out),
            Node::Pow([b, p]) => match g.as_num(*p) {
                Some(e) if e < 0.0 => {
                    out.push_str(r"\frac{1}{");
                    self.power(*b, -e, Prec::Add, out);
                    out.push('}');
                }
                _ => self.power_sym(*b, *p, out),
            },
            Node::EPow([u, p]) => {
                if g.as_num(*p) == Some(-1.0) {
                    out.push_str(r"1 \oslash ");
                    self.at(*u, Prec::Pow, out);
                } else {
                    let mut e = String::from(r"\circ ");
                    match g.as_num(*p) {
                        Some(v) => e.push_str(&number(v)),
                        None => self.at(*p, Prec::Pow, &mut e),
                    }
                    self.sup(*u, &e, out);
                }
            }
            Node::Transpose(a) => match g.node(*a) {
                // inv(A)' → A^{-\top}
                Node::Call(Func::Inv, b) => self.sup(*b, r"-\top", out),
                _ => self.sup(*a, r"\top", out),
            },
            Node::Call(f, u) => self.call(*f, *u, out),
            Node::Kron([a, b]) => {
                self.at(*a, Prec::Pow, out);
                out.push_str(r" \otimes ");
                self.at(*b, Prec::Pow, out);
            }
        }
    }

    fn call(&self, f: Func, u: Id, out: &mut String) {
        let g = self.g;
        let name = match f {
            Func::Exp => r"\exp",
            Func::Log => r"\log",
            Func::Sin => r"\sin",
            Func::Cos => r"\cos",
            Func::Tan => r"\tan",
            Func::Tanh => r"\tanh",
            Func::Arcsin => r"\arcsin",
            Func::Arccos => r"\arccos",
            Func::Arctan => r"\arctan",
            Func::Sigmoid => self.sigmoid,
            Func::Relu => r"\operatorname{relu}",
            Func::Step => r"\operatorname{step}",
            Func::Sign => r"\operatorname{sign}",
            Func::Softplus => r"\operatorname{softplus}",
            Func::Softmax => r"\operatorname{softmax}",
            Func::Logsumexp => r"\operatorname{logsumexp}",
            Func::Sum => r"\operatorname{sum}",
            Func::Tr => r"\operatorname{tr}",
            Func::Det => r"\det",
            Func::Logdet => r"\log\det",
            Func::DiagMat | Func::DiagVec => r"\operatorname{diag}",
            Func::Vec => r"\operatorname{vec}",
            Func::Sqrt => {
                out.push_str(r"\sqrt{");
                self.at(u, Prec::Add, out);
                out.push('}');
                return;
            }
            Func::Abs => {
                out.push_str(r"\left|");
                self.at(u, Prec::Add, out);
                out.push_str(r"\right|");
                return;
            }
            Func::Norm2 | Func::Norm1 => {
                out.push_str(r"\left\lVert ");
                self.at(u, Prec::Add, out);
                out.push_str(r" \right\rVert_");
                out.push(if f == Func::Norm2 { '2' } else { '1' });
                return;
            }
            Func::Inv => {
                match g.node(u) {
                    // inv(A') → A^{-\top}
                    Node::Transpose(a) => self.sup(*a, r"-\top", out),
                    _ => self.sup(u, "-1", out),
                }
                return;
            }
        };
        out.push_str(name);
        out.push_str(r"\left(");
        self.at(u, Prec::Add, out);
        out.push_str(r"\right)");
    }

    /// `b^{p}` for a scalar power; a norm takes the exponent beside its subscript.
    fn power_sym(&self, b: Id, p: Id, out: &mut String) {
        let g = self.g;
        if g.as_num(p) == Some(0.5) {
            out.push_str(r"\sqrt{");
            self.at(b, Prec::Add, out);
            out.push('}');
            return;
        }
        let mut e = String::new();
        match g.as_num(p) {
            Some(v) => e.push_str(&number(v)),
            None => self.at(p, Prec::Add, &mut e),
        }
        if matches!(g.node(b), Node::Call(Func::Norm2 | Func::Norm1, _)) {
            self.form_or_name(b, out);
            out.push_str("^{");
            out.push_str(&e);
            out.push('}');
        } else {
            self.sup(b, &e, out);
        }
    }

    /// `b^{e}`, or `b` at `min` when e is 1.
    fn power(&self, b: Id, e: f64, min: Prec, out: &mut String) {
        if e == 1.0 {
            self.at(b, min, out);
        } else if e == 0.5 {
            out.push_str(r"\sqrt{");
            self.at(b, Prec::Add, out);
            out.push('}');
        } else {
            let p = number(e);
            if matches!(self.g.node(b), Node::Call(Func::Norm2 | Func::Norm1, _)) {
                self.form_or_name(b, out);
                out.push_str("^{");
                out.push_str(&p);
                out.push('}');
            } else {
                self.sup(b, &p, out);
            }
        }
    }

    fn sum(&self, terms: &[Id], out: &mut String) {
        // Positive terms first, so that `-y + A*x` reads `A x - y`.
        let terms = crate::print::term_order(self.g, terms, &self.plain, self.fixed);
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
        crate::print::is_negative(self.g, t, self.names)
    }

    /// A negative term printed without its sign.
    fn magnitude(&self, t: Id, out: &mut String) {
        match self.g.node(t) {
            Node::Num(n) => out.push_str(&number(-n.get())),
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

    /// Coefficient, factors and divisors: `2 \mathbf{A} \mathbf{x}`,
    /// `\frac{\mathbf{x}}{\left\lVert \mathbf{x} \right\rVert_2}`.
    fn fraction_body(&self, f: &Fraction, out: &mut String) {
        if !f.is_frac() {
            let mut items = Vec::new();
            if f.coef != 1.0 || f.num.is_empty() {
                items.push(number(f.coef));
            }
            let lone = f.coef == 1.0 && f.num.len() == 1;
            for &x in &f.num {
                // `-\mathbf{u} \odot \mathbf{v}` is -(u ⊙ v) either way; a lone factor is never
                // a product (products are flat), so only `-u` itself can need parentheses.
                let min = if lone { Prec::Mul } else { Prec::Pow };
                let mut s = String::new();
                self.at(x, min, &mut s);
                items.push(s);
            }
            juxtapose(&items, out);
            return;
        }
        let divisor = f.divisor();
        // Numerator.
        let mut num = Vec::new();
        if divisor.is_none() && f.coef != 1.0 || f.num.is_empty() {
            num.push(number(if divisor.is_some() { 1.0 } else { f.coef }));
        }
        let lone = num.is_empty() && f.num.len() == 1;
        for &x in &f.num {
            let mut s = String::new();
            self.at(x, if lone { Prec::Add } else { Prec::Pow }, &mut s);
            num.push(s);
        }
        // Denominator.
        let mut den = Vec::new();
        if let Some(k) = divisor {
            den.push(number(k));
        }
        let lone = den.is_empty() && f.den.len() == 1;
        for &(b, e) in &f.den {
            let mut s = String::new();
            self.power(b, e, if lone { Prec::Add } else { Prec::Pow }, &mut s);
            den.push(s);
        }
        out.push_str(r"\frac{");
        juxtapose(&num, out);
        out.push_str("}{");
        juxtapose(&den, out);
        out.push('}');
    }

    fn hadamard(&self, factors: &[Id], out: &mut String) {
        let g = self.g;
        let factors = g.had_factors(factors, |_| true);
        let (den, num): (Vec<Id>, Vec<Id>) = factors.iter().partition(
            |&&x| matches!(g.node(x), Node::EPow([_, p]) if g.as_num(*p).is_some_and(|e| e < 0.0)),
        );
        if num.is_empty() {
            out.push('1');
        }
        for (i, &x) in num.iter().enumerate() {
            if i > 0 {
                out.push_str(r" \odot ");
            }
            self.at(x, Prec::Pow, out);
        }
        for &x in &den {
            if let Node::EPow([u, p]) = g.node(x) {
                out.push_str(r" \oslash ");
                let e = -g.as_num(*p).unwrap_or(-1.0);
                if e == 1.0 {
                    self.at(*u, Prec::Pow, out);
                } else {
                    self.sup(*u, &format!(r"\circ {}", number(e)), out);
                }
            }
        }
    }
}

/// Factors side by side, with `\cdot` before one that starts with a digit.
fn juxtapose(items: &[String], out: &mut String) {
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(if s.starts_with(|c: char| c.is_ascii_digit()) {
                r" \cdot "
            } else {
                " "
            });
        }
        out.push_str(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::{Dim, Shape};
    use std::collections::HashMap;

    /// Parses, simplifies and prints; `decls` declares kinds.
    fn tex_with(text: &str, decls: &[(&str, Kind)]) -> String {
        let mut g = Graph::new();
        let decls: HashMap<String, Kind> = decls.iter().map(|(n, k)| (n.to_string(), *k)).collect();
        let parsed = crate::parse::parse(text, &mut g, &decls).unwrap();
        let s = g.simplify(parsed.root, false);
        latex(&g, s)
    }

    fn tex(text: &str) -> String {
        tex_with(text, &[])
    }

    #[test]
    fn symbols() {
        assert_eq!(tex("x"), r"\mathbf{x}");
        assert_eq!(tex("W1"), r"\mathbf{W}_{1}");
        assert_eq!(tex("W_1"), r"\mathbf{W}_{1}");
        assert_eq!(tex("y_hat"), r"\mathbf{y}_{\mathrm{hat}}");
        assert_eq!(tex("xy"), r"\mathbf{xy}");
        assert_eq!(tex("lambda"), r"\lambda");
        assert_eq!(
            tex_with("theta", &[("theta", Kind::Vector)]),
            r"\boldsymbol{\theta}"
        );
        assert_eq!(
            tex_with("Sigma", &[("Sigma", Kind::Symmetric)]),
            r"\boldsymbol{\Sigma}"
        );
        assert_eq!(tex_with("t", &[("t", Kind::Scalar)]), "t");
        assert_eq!(tex_with("lr", &[("lr", Kind::Scalar)]), r"\mathit{lr}");
    }

    #[test]
    fn constants() {
        // Alone, a constant carries its size; where the text around it fixes the
        // size, it is bare.
        let mut g = Graph::new();
        let x = g.declare("x", Kind::Vector);
        let n = g.symbol(x).shape.rows;
        let ones = g.ones(Shape::new(n, Dim::One));
        let zero_vec = g.zero(Shape::new(n, Dim::One));
        let eye = g.identity(n);
        let rows = r"\operatorname{rows}(\mathbf{x})";
        assert_eq!(latex(&g, ones), format!(r"\mathbf{{1}}_{{{rows}}}"));
        assert_eq!(latex(&g, zero_vec), format!(r"\mathbf{{0}}_{{{rows}}}"));
        assert_eq!(latex(&g, eye), format!(r"\mathbf{{I}}_{{{rows}}}"));
        let row = g.ones(Shape::new(Dim::One, n));
        assert_eq!(latex(&g, row), format!(r"\mathbf{{1}}_{{{rows}}}^\top"));
        let size = g.size(n);
        assert_eq!(latex(&g, size), rows);
        assert_eq!(tex("x + ones"), r"\mathbf{1} + \mathbf{x}");
        assert_eq!(tex("I + A"), r"\mathbf{A} + \mathbf{I}");
        let zero = g.num(0.0);
        assert_eq!(latex(&g, zero), "0");
        let zero_scalar = g.intern(Node::Zero(Dim::One, Dim::One), Shape::SCALAR);
        assert_eq!(latex(&g, zero_scalar), "0");
        assert_eq!(number(1e-7), "10^{-7}");
        assert_eq!(number(2.5e20), r"2.5 \times 10^{20}");
    }

    #[test]
    fn products_and_transposes() {
        assert_eq!(tex("A*x"), r"\mathbf{A} \mathbf{x}");
        assert_eq!(tex("2*A*x"), r"2 \mathbf{A} \mathbf{x}");
        assert_eq!(tex("W1'*x"), r"{\mathbf{W}_{1}}^\top \mathbf{x}");
        assert_eq!(
            tex("(A + B)*x"),
            r"\left(\mathbf{A} + \mathbf{B}\right) \mathbf{x}"
        );
        assert_eq!(tex("(A + B)'"), r"\mathbf{A}^\top + \mathbf{B}^\top");
    }

    #[test]
    fn sums_put_positive_terms_first() {
        assert_eq!(tex("-y + A*x"), r"\mathbf{A} \mathbf{x} - \mathbf{y}");
        assert_eq!(tex("-x"), r"-\mathbf{x}");
    }

    #[test]
    fn divisions() {
        assert_eq!(tex("x/2"), r"\frac{\mathbf{x}}{2}");
        assert_eq!(tex("(A + A')/2"), r"\frac{\mathbf{A} + \mathbf{A}^\top}{2}");
        assert_eq!(
            tex("x/norm2(x)"),
            r"\frac{\mathbf{x}}{\left\lVert \mathbf{x} \right\rVert_2}"
        );
        assert_eq!(
            tex("-x/(lambda*norm2(x)^2)"),
            r"-\frac{\mathbf{x}}{\lambda \left\lVert \mathbf{x} \right\rVert_2^{2}}"
        );
    }

    #[test]
    fn elementwise() {
        assert_eq!(tex("x.*y"), r"\mathbf{x} \odot \mathbf{y}");
        assert_eq!(tex("x./y"), r"\mathbf{x} \oslash \mathbf{y}");
        assert_eq!(tex("x.^3"), r"\mathbf{x}^{\circ 3}");
        assert_eq!(
            tex("(A*x).^2"),
            r"\left(\mathbf{A} \mathbf{x}\right)^{\circ 2}"
        );
        assert_eq!(
            tex("norm2(x)^2"),
            r"\left\lVert \mathbf{x} \right\rVert_2^{2}"
        );
        assert_eq!(tex("abs(x)"), r"\left|\mathbf{x}\right|");
    }

    #[test]
    fn functions() {
        assert_eq!(
            tex("sigmoid(W1*x)"),
            r"\sigma\left(\mathbf{W}_{1} \mathbf{x}\right)"
        );
        assert_eq!(
            tex("relu(x)"),
            r"\operatorname{relu}\left(\mathbf{x}\right)"
        );
        assert_eq!(tex("sqrt(x)"), r"\sqrt{\mathbf{x}}");
        assert_eq!(
            tex("tr(X*A)"),
            r"\operatorname{tr}\left(\mathbf{X} \mathbf{A}\right)"
        );
        assert_eq!(
            tex("log(tr(X))"),
            r"\log\left(\operatorname{tr}\left(\mathbf{X}\right)\right)"
        );
        assert_eq!(tex("det(X)"), r"\det\left(\mathbf{X}\right)");
        assert_eq!(tex("logdet(X)"), r"\log\det\left(\mathbf{X}\right)");
        assert_eq!(tex("norm1(x)"), r"\left\lVert \mathbf{x} \right\rVert_1");
        assert_eq!(
            tex("diag(x)"),
            r"\operatorname{diag}\left(\mathbf{x}\right)"
        );
    }

    #[test]
    fn inverses_and_kron() {
        assert_eq!(tex("inv(A)"), r"\mathbf{A}^{-1}");
        assert_eq!(tex("inv(A)'"), r"\mathbf{A}^{-\top}");
        assert_eq!(
            tex("inv(A + B)"),
            r"\left(\mathbf{A} + \mathbf{B}\right)^{-1}"
        );
        assert_eq!(tex("inv(W1)"), r"{\mathbf{W}_{1}}^{-1}");
        assert_eq!(tex("kron(A, B)"), r"\mathbf{A} \otimes \mathbf{B}");
        assert_eq!(
            tex("kron(A, B)*x"),
            r"\left(\mathbf{A} \otimes \mathbf{B}\right) \mathbf{x}"
        );
    }

    #[test]
    fn sigma_scalar_keeps_sigmoid_apart() {
        assert_eq!(
            tex("sigma*sigmoid(x)"),
            r"\sigma \operatorname{sigmoid}\left(\mathbf{x}\right)"
        );
    }

    #[test]
    fn transpose_of_a_product() {
        let mut g = Graph::new();
        let (a, x) = (g.declare("A", Kind::Matrix), g.declare("x", Kind::Vector));
        let (an, xn) = (g.sym(a), g.sym(x));
        let (sa, sx) = (g.shape(an), g.shape(xn));
        assert!(g.dims.unify(sa.cols, sx.rows));
        let ax = g.intern(Node::Mul(vec![an, xn].into()), Shape::new(sa.rows, sx.cols));
        let t = g.intern(Node::Transpose(ax), Shape::new(sx.cols, sa.rows));
        assert_eq!(latex(&g, t), r"\left(\mathbf{A} \mathbf{x}\right)^\top");
    }

    #[test]
    fn built_with_the_graph_api() {
        let mut g = Graph::new();
        let x = g.declare("x", Kind::Vector);
        let xn = g.sym(x);
        let r = g.func(Func::Relu, xn);
        let t = g.t(r);
        assert_eq!(
            latex(&g, t),
            r"{\operatorname{relu}\left(\mathbf{x}\right)}^\top"
        );
    }
}

//! Python code from expressions and their derivatives (`--format numpy|jax`): a module
//! whose `value_and_grad` computes the value and every derivative, each shared
//! subexpression once, and whose `value` is the expression as typed.
//!
//! Conventions of the generated code: a scalar is a Python float (a 0-d array), a
//! vector a column of shape (n, 1) (a 1-D argument is taken as one), a matrix a 2-D
//! array; a matrix-valued derivative is the numerator-layout Jacobian of vec(F) by
//! vec(X), vec stacking columns, as jacob prints it.

use crate::graph::{Func, Graph, Id, Kind, Node, Symbol};
use crate::shape::{Dim, DimNames};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;

/// The library the module is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// NumPy (`import numpy as np`).
    Numpy,
    /// JAX (`import jax.numpy as jnp`), the function compiled with `jax.jit`.
    Jax,
}

impl Target {
    /// The module alias the code calls: `np` or `jnp`.
    fn np(self) -> &'static str {
        match self {
            Target::Numpy => "np",
            Target::Jax => "jnp",
        }
    }
}

/// What the module computes besides the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Derivatives {
    /// Nothing (`simplify`): only `value`.
    None,
    /// Gradients or Jacobians (`diff`).
    First,
    /// Hessians (`hess`).
    Second,
}

/// A module to write: the expression as typed and as simplified, and its derivatives by
/// each variable, all in one graph so that they share their subexpressions.
pub struct Module<'a> {
    /// The library.
    pub target: Target,
    /// The expression as the user typed it, for the docstring.
    pub text: &'a str,
    /// The expression as parsed, before any rewrite: the body of `value`.
    pub typed: Id,
    /// The expression as simplified: the value `value_and_grad` returns.
    pub value: Id,
    /// What the derivatives are.
    pub kind: Derivatives,
    /// The variables and their derivatives, in the order asked for.
    pub derivatives: Vec<(Symbol, Id)>,
}

/// Names that a parameter may not take: Python's keywords and soft keywords, the
/// builtins the code could shadow, and the module's own names.
const TAKEN: [&str; 50] = [
    "False",
    "None",
    "True",
    "and",
    "as",
    "assert",
    "async",
    "await",
    "break",
    "class",
    "continue",
    "def",
    "del",
    "elif",
    "else",
    "except",
    "finally",
    "for",
    "from",
    "global",
    "if",
    "import",
    "in",
    "is",
    "lambda",
    "nonlocal",
    "not",
    "or",
    "pass",
    "raise",
    "return",
    "try",
    "while",
    "with",
    "yield",
    "match",
    "case",
    "type",
    "np",
    "jnp",
    "jax",
    "value",
    "value_and_grad",
    "range",
    "float",
    "abs",
    "sum",
    "len",
    "min",
    "max",
];

/// Helpers a module may need, written once at its top: (name, NumPy body, JAX body).
const HELPERS: [(&str, &str, &str); 5] = [
    (
        "_softmax",
        "def _softmax(u):\n    \"\"\"softmax over all entries of u.\"\"\"\n    e = np.exp(u - np.max(u))\n    return e / np.sum(e)\n",
        "def _softmax(u):\n    \"\"\"softmax over all entries of u.\"\"\"\n    e = jnp.exp(u - jnp.max(u))\n    return e / jnp.sum(e)\n",
    ),
    (
        "_logsumexp",
        "def _logsumexp(u):\n    \"\"\"log(sum(exp(u))) over all entries of u, without overflow.\"\"\"\n    m = np.max(u)\n    return m + np.log(np.sum(np.exp(u - m)))\n",
        "def _logsumexp(u):\n    \"\"\"log(sum(exp(u))) over all entries of u, without overflow.\"\"\"\n    return jax.scipy.special.logsumexp(u)\n",
    ),
    (
        "_sigmoid",
        "def _sigmoid(u):\n    \"\"\"1/(1 + exp(-u)), entry by entry, without overflow.\"\"\"\n    return np.exp(-np.logaddexp(0.0, -u))\n",
        "def _sigmoid(u):\n    \"\"\"1/(1 + exp(-u)), entry by entry.\"\"\"\n    return jax.nn.sigmoid(u)\n",
    ),
    (
        "_logdet",
        "def _logdet(a):\n    \"\"\"log(det(a)) for a matrix of positive determinant, without overflow.\"\"\"\n    sign, logabs = np.linalg.slogdet(a)\n    return np.where(sign > 0, logabs, np.nan)\n",
        "def _logdet(a):\n    \"\"\"log(det(a)) for a matrix of positive determinant, without overflow.\"\"\"\n    sign, logabs = jnp.linalg.slogdet(a)\n    return jnp.where(sign > 0, logabs, jnp.nan)\n",
    ),
    (
        "_commutation",
        "def _commutation(m, n):\n    \"\"\"The mn×mn K with K @ vec(X) = vec(X.T) for an m×n X (vec stacks columns).\"\"\"\n    return np.eye(m * n)[[i + j * m for i in range(m) for j in range(n)]]\n",
        "def _commutation(m, n):\n    \"\"\"The mn×mn K with K @ vec(X) = vec(X.T) for an m×n X (vec stacks columns).\"\"\"\n    return jnp.eye(m * n)[jnp.array([i + j * m for i in range(m) for j in range(n)])]\n",
    ),
];

/// Why no module could be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodegenError {
    /// A size that no argument has (it came from a bare `I` or `ones` of the input).
    #[error(
        "a size in the expression is not the size of any argument, so the code cannot compute it: declare it with --dim, or write the size with rows(·)/cols(·)"
    )]
    UnknownSize,
    /// A placeholder of the differentiator reached the code (a bug).
    #[error("internal error: a placeholder of the differentiator reached the generated code")]
    Placeholder,
}

/// The terms of a sum, each with its code without its minus sign if it has one.
type Terms = Vec<(Id, Option<Code>)>;

/// How tightly a piece of Python binds, loosest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Prec {
    Add,
    Mul,
    Neg,
    Pow,
    Atom,
}

/// A piece of Python with its precedence.
#[derive(Clone, Debug)]
struct Code {
    text: String,
    prec: Prec,
}

impl Code {
    fn new(text: impl Into<String>, prec: Prec) -> Code {
        Code {
            text: text.into(),
            prec,
        }
    }

    fn atom(text: impl Into<String>) -> Code {
        Code::new(text, Prec::Atom)
    }

    /// The text, in parentheses unless it binds at least as tightly as `p`.
    fn at(&self, p: Prec) -> String {
        if self.prec >= p {
            self.text.clone()
        } else {
            format!("({})", self.text)
        }
    }
}

/// The longest matrix product put in the cheapest order (the search is cubic in its
/// length); a longer one is multiplied from the left.
const MAX_ORDERED_CHAIN: usize = 40;

/// The deepest a subexpression is written inline before it gets a line of its own.
const MAX_INLINE_DEPTH: u32 = 10;

/// Writes the Python module.
pub fn module(g: &Graph, m: &Module) -> Result<String, CodegenError> {
    let params = parameters(g, m);
    let names: HashMap<Symbol, String> =
        params.iter().map(|p| (p.symbol, p.name.clone())).collect();
    let mut helpers: BTreeSet<&'static str> = BTreeSet::new();
    let np = m.target.np();

    // `value`: the expression as typed.
    let mut typed = Writer::new(g, m.target, &names, &[m.typed]);
    let typed_body = typed.body(&[("result", m.typed)])?;
    helpers.extend(typed.helpers.iter().copied());

    // `value_and_grad`: the value and the derivatives in one pass, sharing work.
    let outputs: Vec<(String, Id)> = std::iter::once(("value".to_string(), m.value))
        .chain(
            m.derivatives
                .iter()
                .map(|&(s, d)| (output_name(m.kind, g.is_scalar(m.value), &names[&s]), d)),
        )
        .collect();
    let roots: Vec<Id> = outputs.iter().map(|(_, id)| *id).collect();
    let mut shared = Writer::new(g, m.target, &names, &roots);
    let out_refs: Vec<(&str, Id)> = outputs.iter().map(|(n, id)| (n.as_str(), *id)).collect();
    let shared_body = match m.kind {
        Derivatives::None => Vec::new(),
        _ => shared.body(&out_refs)?,
    };
    helpers.extend(shared.helpers.iter().copied());

    let mut s = String::new();
    s.push_str(&docstring(g, m, &params));
    match m.target {
        Target::Numpy => s.push_str("import numpy as np\n"),
        Target::Jax => s.push_str("import jax\nimport jax.numpy as jnp\n"),
    }
    for (name, numpy, jax) in HELPERS {
        if helpers.contains(name) {
            s.push_str("\n\n");
            s.push_str(match m.target {
                Target::Numpy => numpy,
                Target::Jax => jax,
            });
        }
    }
    let signature = wrapped(params.iter().map(|p| p.name.as_str()));
    let prologue: Vec<String> = params
        .iter()
        .filter_map(|p| match p.kind {
            Kind::Scalar => None,
            Kind::Vector => Some(format!("{0} = {np}.reshape({0}, (-1, 1))", p.name)),
            Kind::Matrix | Kind::Symmetric => Some(format!("{0} = {np}.asarray({0})", p.name)),
        })
        .collect();
    let jit = if m.target == Target::Jax {
        "@jax.jit\n"
    } else {
        ""
    };
    let what = match m.kind {
        Derivatives::None => "The expression, simplified",
        _ => "The expression as typed",
    };
    let _ = write!(
        s,
        "\n\n{jit}def value({signature}):\n    \"\"\"{what}: {}.\"\"\"\n",
        m.text.trim()
    );
    for line in prologue.iter().chain(&typed_body) {
        let _ = writeln!(s, "    {line}");
    }
    let _ = writeln!(s, "    return result");
    if m.kind != Derivatives::None {
        let what = match m.kind {
            Derivatives::Second => "Hessians",
            _ => "derivatives",
        };
        let _ = write!(
            s,
            "\n\n{jit}def value_and_grad({signature}):\n    \"\"\"The value and the {what} by {}, sharing the forward pass.\"\"\"\n",
            m.derivatives
                .iter()
                .map(|(v, _)| names[v].as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        // A gradient by a vector comes back in the shape its argument came in: 1-D for
        // a 1-D array, so that `w - lr * grad_w` does not broadcast to a matrix.
        let gradient = m.kind == Derivatives::First && g.is_scalar(m.value);
        let column = |d: Id| g.dims.find(g.shape(d).cols) == Dim::One;
        let given: Vec<&str> = params
            .iter()
            .filter(|p| {
                gradient
                    && p.kind == Kind::Vector
                    && m.derivatives
                        .iter()
                        .any(|&(v, d)| v == p.symbol && column(d))
            })
            .map(|p| p.name.as_str())
            .collect();
        for name in &given {
            let _ = writeln!(s, "    _{name}_shape = {np}.shape({name})");
        }
        for line in prologue.iter().chain(&shared_body) {
            let _ = writeln!(s, "    {line}");
        }
        let ds: Vec<String> = outputs[1..]
            .iter()
            .zip(&m.derivatives)
            .map(
                |((n, _), (v, _))| match given.iter().find(|g| **g == names[v]) {
                    Some(name) => format!("{np}.reshape({n}, _{name}_shape)"),
                    None => n.clone(),
                },
            )
            .collect();
        let tuple = if ds.len() == 1 {
            format!("({},)", ds[0])
        } else {
            format!("({})", ds.join(", "))
        };
        let _ = writeln!(s, "    return value, {tuple}");
    }
    Ok(s)
}

/// Argument names joined by commas, broken into lines of about 80 characters after the
/// first (Python continues a line inside parentheses).
fn wrapped<'n>(names: impl Iterator<Item = &'n str>) -> String {
    let mut out = String::new();
    let mut line = 0;
    for (i, n) in names.enumerate() {
        if i > 0 {
            if line + n.len() > 72 {
                out.push_str(",\n        ");
                line = 0;
            } else {
                out.push_str(", ");
            }
        }
        out.push_str(n);
        line += n.len() + 2;
    }
    out
}

/// An argument of the generated functions.
struct Param {
    symbol: Symbol,
    name: String,
    kind: Kind,
}

/// The arguments: the variables in the order asked for, then every other symbol of the
/// expression in order of appearance; a name Python or the module already uses gets a
/// trailing underscore.
fn parameters(g: &Graph, m: &Module) -> Vec<Param> {
    let mut order: Vec<Symbol> = m.derivatives.iter().map(|(s, _)| *s).collect();
    for (s, _) in g.symbols() {
        if !order.contains(&s) && !g.differential_of.contains_key(&s) {
            order.push(s);
        }
    }
    let mut used: HashSet<String> = HashSet::new();
    let originals: HashSet<&str> = order.iter().map(|&s| g.symbol(s).name.as_str()).collect();
    order
        .into_iter()
        .map(|s| {
            let info = g.symbol(s);
            let mut name = info.name.clone();
            while TAKEN.contains(&name.as_str())
                || is_local_name(&name)
                || used.contains(&name)
                || (name != info.name && originals.contains(name.as_str()))
            {
                name.push('_');
            }
            used.insert(name.clone());
            Param {
                symbol: s,
                name,
                kind: info.kind,
            }
        })
        .collect()
}

/// True for the names the generated code gives its own locals: `t1`, `grad_x`, ….
fn is_local_name(name: &str) -> bool {
    let numbered = name
        .strip_prefix('t')
        .is_some_and(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_digit()));
    numbered
        || name == "result"
        || name.starts_with('_')
        || ["grad_", "jac_", "hess_"]
            .iter()
            .any(|p| name.starts_with(p))
}

/// The local that holds a derivative: `grad_W1` (of a scalar), `jac_x`, `hess_x`.
fn output_name(kind: Derivatives, scalar: bool, var: &str) -> String {
    match kind {
        Derivatives::Second => format!("hess_{var}"),
        _ if scalar => format!("grad_{var}"),
        _ => format!("jac_{var}"),
    }
}

/// The module's docstring: where it came from, the arguments and what comes back.
fn docstring(g: &Graph, m: &Module, params: &[Param]) -> String {
    let mut namer = DimNames::default();
    // Name sizes in the order of the arguments.
    for p in params {
        let s = g.symbol(p.symbol).shape;
        namer.name(&g.dims, s.rows);
        namer.name(&g.dims, s.cols);
    }
    let mut shape_of = |id_shape: crate::shape::Shape| {
        if g.dims.is_scalar(id_shape) {
            "a float".to_string()
        } else if g.dims.find(id_shape.cols) == Dim::One {
            format!("shape ({}, 1)", namer.name(&g.dims, id_shape.rows))
        } else {
            format!(
                "shape ({}, {})",
                namer.name(&g.dims, id_shape.rows),
                namer.name(&g.dims, id_shape.cols)
            )
        }
    };
    let library = match m.target {
        Target::Numpy => "NumPy",
        Target::Jax => "JAX",
    };
    let mut s = format!(
        "\"\"\"{library} code generated by jacob {} for\n\n    f = {}\n\n",
        env!("CARGO_PKG_VERSION"),
        m.text.trim()
    );
    s.push_str("Arguments (a vector is a column of shape (n, 1); a 1-D array is taken as one,\nand a gradient by it comes back 1-D):\n");
    for p in params {
        let info = g.symbol(p.symbol);
        let renamed = if p.name != info.name {
            format!(" (the symbol {} of f)", info.name)
        } else {
            String::new()
        };
        let kind = match info.kind {
            Kind::Symmetric => "symmetric matrix, ",
            _ => "",
        };
        let _ = writeln!(s, "    {}: {kind}{}{renamed}", p.name, shape_of(info.shape));
    }
    // JAX returns a scalar as a 0-d array (float(...) makes it a Python float).
    let returned = |shape: String| match m.target {
        Target::Jax if shape == "a float" => "a 0-d array".to_string(),
        _ => shape,
    };
    let _ = writeln!(
        s,
        "\nvalue(...) returns f, {}.",
        returned(shape_of(g.shape(m.typed)))
    );
    if m.kind != Derivatives::None {
        let _ = writeln!(
            s,
            "value_and_grad(...) returns f and a tuple with, for each variable in order:"
        );
        for &(v, d) in &m.derivatives {
            let name = &params
                .iter()
                .find(|p| p.symbol == v)
                .map(|p| p.name.as_str())
                .unwrap_or("?");
            let what = match (m.kind, g.is_scalar(m.value)) {
                (Derivatives::Second, _) => format!("the Hessian of f by {name}"),
                (_, true) => format!("the derivative of f by {name}"),
                (_, false) => format!("the Jacobian of f by {name} (numerator layout)"),
            };
            let _ = writeln!(
                s,
                "    {}: {what}, {}",
                output_name(m.kind, g.is_scalar(m.value), name),
                returned(shape_of(g.shape(d)))
            );
        }
        let _ = writeln!(
            s,
            "A derivative by a matrix, or of a matrix, is d vec(F)/d vec(X)' with vec stacking\ncolumns; a scalar's gradient by a matrix has that matrix's shape."
        );
    }
    if m.target == Target::Jax {
        s.push_str(
            "Enable float64 with jax.config.update(\"jax_enable_x64\", True) for full precision.\n",
        );
    }
    s.push_str("\"\"\"\n");
    s
}

/// Writes the lines of one function body: the shared subexpressions as locals, then
/// each output.
struct Writer<'a> {
    g: &'a Graph,
    target: Target,
    names: &'a HashMap<Symbol, String>,
    /// The nodes the outputs reach, in increasing id order.
    order: Vec<Id>,
    /// How many times each is used by the others (an output counts as a use).
    uses: HashMap<Id, u32>,
    /// The code of each node written so far: a local's name, or the inline text.
    code: HashMap<Id, Code>,
    /// How deep each node's inline text is.
    depth: HashMap<Id, u32>,
    helpers: BTreeSet<&'static str>,
    locals: u32,
}

impl<'a> Writer<'a> {
    fn new(
        g: &'a Graph,
        target: Target,
        names: &'a HashMap<Symbol, String>,
        roots: &[Id],
    ) -> Writer<'a> {
        let order = g.reachable(roots);
        let mut uses: HashMap<Id, u32> = HashMap::with_capacity(order.len());
        for &id in &order {
            for &c in g.children(id) {
                *uses.entry(c).or_insert(0) += 1;
            }
        }
        for r in roots {
            *uses.entry(*r).or_insert(0) += 1;
        }
        Writer {
            g,
            target,
            names,
            order,
            uses,
            code: HashMap::new(),
            depth: HashMap::new(),
            helpers: BTreeSet::new(),
            locals: 0,
        }
    }

    /// The lines: `t1 = …` for each shared or deep subexpression, in dependency order,
    /// then `name = …` for each output.
    fn body(&mut self, outputs: &[(&str, Id)]) -> Result<Vec<String>, CodegenError> {
        let mut lines = Vec::new();
        let outs: HashMap<Id, &str> = outputs.iter().rev().map(|(n, id)| (*id, *n)).collect();
        let order = std::mem::take(&mut self.order);
        for &id in &order {
            let code = self.node(id)?;
            let depth = 1 + self
                .g
                .children(id)
                .iter()
                .map(|c| self.depth[c])
                .max()
                .unwrap_or(0);
            let shared = self.uses.get(&id).copied().unwrap_or(0) > 1 && !self.trivial(id);
            if let Some(name) = outs.get(&id) {
                lines.push(format!("{name} = {}", code.text));
                self.code.insert(id, Code::atom(*name));
                self.depth.insert(id, 0);
            } else if shared || depth > MAX_INLINE_DEPTH {
                self.locals += 1;
                let name = format!("t{}", self.locals);
                lines.push(format!("{name} = {}", code.text));
                self.code.insert(id, Code::atom(name));
                self.depth.insert(id, 0);
            } else {
                self.code.insert(id, code);
                self.depth.insert(id, depth);
            }
        }
        // An output that is another's node (two equal derivatives) is assigned from it.
        for (name, id) in outputs {
            if outs[id] != *name {
                lines.push(format!("{name} = {}", outs[id]));
            }
        }
        Ok(lines)
    }

    /// Nodes as cheap to write again as to name: symbols, numbers, sizes, `A.T`.
    fn trivial(&self, id: Id) -> bool {
        match self.g.node(id) {
            Node::Sym(_) | Node::Num(_) | Node::Size(_) => true,
            Node::Transpose(a) => matches!(self.g.node(*a), Node::Sym(_)),
            _ => false,
        }
    }

    fn scalar(&self, id: Id) -> bool {
        self.g.is_scalar(id)
    }

    fn np(&self) -> &'static str {
        self.target.np()
    }

    /// A library call: `np.exp(u)`.
    fn call(&self, f: &str, args: &[&Code]) -> Code {
        let args: Vec<String> = args.iter().map(|a| a.at(Prec::Add)).collect();
        Code::atom(format!("{}.{f}({})", self.np(), args.join(", ")))
    }

    /// A helper of the module: `_softmax(u)`.
    fn helper(&mut self, name: &'static str, args: &[String]) -> Code {
        self.helpers.insert(name);
        Code::atom(format!("{name}({})", args.join(", ")))
    }

    /// A size as Python: `x.shape[0]`, `A.shape[0] * A.shape[1]`, `3`.
    fn size(&self, d: Dim) -> Result<Code, CodegenError> {
        let g = self.g;
        let d = g.dims.find(d);
        if d == Dim::One {
            return Ok(Code::atom("1"));
        }
        if let Some(n) = g.dims.value(d) {
            return Ok(Code::atom(n.to_string()));
        }
        let mut params: Vec<(&Symbol, &String)> = self.names.iter().collect();
        params.sort();
        for (s, name) in params {
            let shape = g.symbol(*s).shape;
            if g.dims.find(shape.rows) == d {
                return Ok(Code::atom(format!("{name}.shape[0]")));
            }
            if g.dims.find(shape.cols) == d {
                return Ok(Code::atom(format!("{name}.shape[1]")));
            }
        }
        match g.dims.factors(d) {
            Some((a, b)) => {
                let (a, b) = (self.size(a)?, self.size(b)?);
                Ok(Code::new(
                    format!("{} * {}", a.at(Prec::Mul), b.at(Prec::Pow)),
                    Prec::Mul,
                ))
            }
            None => Err(CodegenError::UnknownSize),
        }
    }

    /// The code of a child already written.
    fn of(&self, id: Id) -> &Code {
        &self.code[&id]
    }

    /// The code of one node, from its children's.
    fn node(&mut self, id: Id) -> Result<Code, CodegenError> {
        let g = self.g;
        let np = self.np();
        let scalar = self.scalar(id);
        Ok(match g.node(id) {
            Node::Num(n) => {
                let v = n.get();
                let text = number(v);
                if v < 0.0 {
                    Code::new(text, Prec::Neg)
                } else {
                    Code::atom(text)
                }
            }
            Node::Sym(s) => Code::atom(self.names[s].clone()),
            Node::Identity(_) if scalar => Code::atom("1"),
            Node::Identity(n) => {
                let n = self.size(*n)?;
                self.call("eye", &[&n])
            }
            Node::Ones(..) if scalar => Code::atom("1"),
            Node::Zero(..) if scalar => Code::atom("0"),
            Node::Ones(r, c) | Node::Zero(r, c) => {
                let f = if matches!(g.node(id), Node::Ones(..)) {
                    "ones"
                } else {
                    "zeros"
                };
                let (r, c) = (self.size(*r)?, self.size(*c)?);
                Code::atom(format!("{np}.{f}(({}, {}))", r.text, c.text))
            }
            Node::Size(d) => self.size(*d)?,
            Node::Commutation(m, n) => {
                let (m, n) = (self.size(*m)?, self.size(*n)?);
                self.helper("_commutation", &[m.text, n.text])
            }
            Node::Hole(..) => return Err(CodegenError::Placeholder),
            Node::Add(ts) => {
                // Terms with a minus sign last: `1 - t1 ** 2`, `W2 @ t1 - y`.
                let (neg, pos): (Terms, Terms) = ts
                    .iter()
                    .map(|&t| (t, self.negated(t)))
                    .partition(|(_, n)| n.is_some());
                let mut text = String::new();
                for (i, (t, n)) in pos.iter().chain(&neg).enumerate() {
                    match n {
                        Some(p) if i == 0 => {
                            let _ = write!(text, "-{}", p.at(Prec::Neg));
                        }
                        Some(p) => {
                            let _ = write!(text, " - {}", p.at(Prec::Mul));
                        }
                        None if i == 0 => text.push_str(&self.of(*t).at(Prec::Add)),
                        None => {
                            let _ = write!(text, " + {}", self.of(*t).at(Prec::Mul));
                        }
                    }
                }
                Code::new(text, Prec::Add)
            }
            Node::Mul(fs) => self.product(id, fs)?,
            Node::Had(fs) => {
                let mut text = String::new();
                for (i, &f) in fs.iter().enumerate() {
                    match self.reciprocal(f) {
                        Some(den) if i > 0 => {
                            let _ = write!(text, " / {}", den.at(Prec::Pow));
                        }
                        Some(den) => {
                            let _ = write!(text, "1 / {}", den.at(Prec::Pow));
                        }
                        None if i > 0 => {
                            let _ = write!(text, " * {}", self.of(f).at(Prec::Neg));
                        }
                        None => text.push_str(&self.of(f).at(Prec::Mul)),
                    }
                }
                Code::new(text, Prec::Mul)
            }
            Node::Pow([b, p]) | Node::EPow([b, p]) => {
                let (b, p) = (self.of(*b).clone(), self.of(*p).clone());
                if g.as_num(p_id(g, id)) == Some(0.5) {
                    self.call("sqrt", &[&b])
                } else if g.as_num(p_id(g, id)) == Some(-1.0) {
                    Code::new(format!("1 / {}", b.at(Prec::Pow)), Prec::Mul)
                } else {
                    // `**` binds tighter than a unary minus on its left, and takes one on
                    // its right.
                    Code::new(
                        format!("{} ** {}", b.at(Prec::Atom), p.at(Prec::Neg)),
                        Prec::Pow,
                    )
                }
            }
            Node::Transpose(a) if self.scalar(*a) => self.of(*a).clone(),
            Node::Transpose(a) => Code::atom(format!("{}.T", self.of(*a).at(Prec::Atom))),
            Node::Kron([a, b]) if self.scalar(*a) || self.scalar(*b) => Code::new(
                format!(
                    "{} * {}",
                    self.of(*a).at(Prec::Mul),
                    self.of(*b).at(Prec::Neg)
                ),
                Prec::Mul,
            ),
            Node::Kron([a, b]) => {
                let (a, b) = (self.of(*a).clone(), self.of(*b).clone());
                self.call("kron", &[&a, &b])
            }
            Node::Call(f, u) => self.function(*f, *u)?,
        })
    }

    /// `a * b @ C @ inv(D) @ e`: the 1×1 factors scale, the others multiply as matrices;
    /// `inv(D) @ e` is solved (`np.linalg.solve(D, e)`), and a 1×1 matrix product is
    /// taken as the float it is.
    fn product(&mut self, id: Id, fs: &[Id]) -> Result<Code, CodegenError> {
        let g = self.g;
        let (scalars, chain): (Vec<Id>, Vec<Id>) = fs.iter().partition(|f| self.scalar(**f));
        let mut num: Vec<Code> = Vec::new();
        let mut den: Vec<String> = Vec::new();
        let mut negative = false;
        for &f in &scalars {
            if let Some(d) = self.reciprocal(f) {
                den.push(d.at(Prec::Pow));
            } else if g.as_num(f) == Some(-1.0) {
                negative = !negative;
            } else if let Some(v) = g.as_num(f).filter(|v| *v < 0.0) {
                negative = !negative;
                num.push(Code::atom(number(-v)));
            } else {
                num.push(self.of(f).clone());
            }
        }
        if !chain.is_empty() {
            let m = self.chain(&chain);
            num.push(if chain.len() > 1 && self.scalar(id) {
                Code::atom(format!("{}[0, 0]", m.at(Prec::Atom)))
            } else {
                m
            });
        }
        let body = match num.len() {
            0 => Code::atom("1"),
            1 if den.is_empty() => num.pop().unwrap_or_else(|| Code::atom("1")),
            _ => Code::new(
                num.iter()
                    .map(|c| c.at(Prec::Neg))
                    .collect::<Vec<_>>()
                    .join(" * "),
                Prec::Mul,
            ),
        };
        let mut body = body;
        for d in &den {
            body = Code::new(format!("{} / {d}", body.at(Prec::Mul)), Prec::Mul);
        }
        Ok(if negative {
            Code::new(format!("-{}", body.at(Prec::Neg)), Prec::Neg)
        } else {
            body
        })
    }

    /// A matrix product `A @ B @ C`, in the order that multiplies the fewest numbers
    /// (sizes unknown here count as 64, a size 1 as 1): `W2 @ (W1 @ x)`, matrix times
    /// vector each time, and `x @ (v.T @ A2)` rather than an outer product first. An
    /// `inv(D)` that multiplies what follows it is `np.linalg.solve(D, …)`.
    fn chain(&self, chain: &[Id]) -> Code {
        let g = self.g;
        let k = chain.len();
        let size = |d: Dim| -> f64 {
            let d = g.dims.find(d);
            match g.dims.value(d) {
                _ if d == Dim::One => 1.0,
                Some(n) => n as f64,
                None => 64.0,
            }
        };
        // p[i] is the rows of factor i, p[k] the columns of the last.
        let mut p: Vec<f64> = chain.iter().map(|&f| size(g.shape(f).rows)).collect();
        p.push(chain.last().map_or(1.0, |&f| size(g.shape(f).cols)));
        if k > MAX_ORDERED_CHAIN {
            // Too long to order (and too deep for Python's parser from the right).
            return self.ordered(chain, &p, &|_, j| j - 1);
        }
        // cost[i][j], best[i][j]: the cheapest way to multiply factors i..=j.
        let mut cost = vec![vec![0.0f64; k]; k];
        let mut best = vec![vec![0usize; k]; k];
        for len in 2..=k {
            for i in 0..=k - len {
                let j = i + len - 1;
                cost[i][j] = f64::INFINITY;
                // From the right end down, so that ties multiply from the left.
                for s in (i..j).rev() {
                    let mut c = cost[i][s] + cost[s + 1][j] + p[i] * p[s + 1] * p[j + 1];
                    if s == i && self.inverse(chain[i]).is_some() {
                        c -= 0.5;
                    }
                    if c < cost[i][j] {
                        cost[i][j] = c;
                        best[i][j] = s;
                    }
                }
            }
        }
        self.ordered(chain, &p, &|i, j| best[i][j])
    }

    /// The product of `chain`, split where `split(i, j)` says for factors i..=j.
    fn ordered(&self, chain: &[Id], p: &[f64], split: &dyn Fn(usize, usize) -> usize) -> Code {
        // Built bottom-up over the ranges the splits make, with a stack instead of
        // recursion: (i, j, whether its parts are done).
        let np = self.np();
        let mut done: HashMap<(usize, usize), Code> = HashMap::new();
        let mut stack = vec![(0, chain.len() - 1, false)];
        while let Some((i, j, ready)) = stack.pop() {
            if i == j {
                done.insert((i, j), self.of(chain[i]).clone());
                continue;
            }
            let s = split(i, j);
            if !ready {
                stack.push((i, j, true));
                stack.push((i, s, false));
                stack.push((s + 1, j, false));
                continue;
            }
            let (left, right) = (&done[&(i, s)], &done[&(s + 1, j)]);
            let code = match (s == i).then(|| self.inverse(chain[i])).flatten() {
                Some(d) => Code::atom(format!(
                    "{np}.linalg.solve({}, {})",
                    self.of(d).at(Prec::Add),
                    right.at(Prec::Add)
                )),
                None => match (s == i && p[j + 1] == 1.0 && self.target == Target::Jax)
                    .then(|| self.times_column(chain[i], right))
                    .flatten()
                {
                    Some(code) => code,
                    None => Code::new(
                        format!("{} @ {}", left.at(Prec::Mul), right.at(Prec::Neg)),
                        Prec::Mul,
                    ),
                },
            };
            done.insert((i, j), code);
        }
        done.remove(&(0, chain.len() - 1))
            .unwrap_or_else(|| Code::atom("1"))
    }

    /// For JAX, `f @ v` with a column `v` written so that XLA multiplies without copying
    /// a transposed matrix: `A.T @ v` as `(v.T @ A).T`, and a sum of matrices with
    /// transposes among them, `(A.T + B) @ v` for a named `v`, term by term, as
    /// `(v.T @ A).T + B @ v` (XLA on CPU copies each transpose before it adds or
    /// multiplies; the transpose of a row is free). None where `f @ v` is best.
    fn times_column(&self, f: Id, v: &Code) -> Option<Code> {
        let g = self.g;
        let one = |m: Id| -> Code {
            match self.transposed(m) {
                Some(a) => Code::atom(format!(
                    "({}.T @ {}).T",
                    v.at(Prec::Atom),
                    self.of(a).at(Prec::Neg)
                )),
                None => Code::new(
                    format!("{} @ {}", self.of(m).at(Prec::Mul), v.at(Prec::Neg)),
                    Prec::Mul,
                ),
            }
        };
        if self.transposed(f).is_some() {
            return Some(one(f));
        }
        let Node::Add(ts) = g.node(f) else {
            return None;
        };
        let shape = g.shape(f);
        let same = |t: &Id| {
            let s = g.shape(*t);
            g.dims.find(s.rows) == g.dims.find(shape.rows)
                && g.dims.find(s.cols) == g.dims.find(shape.cols)
        };
        let simple = v
            .text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if self.named(f)
            || !simple
            || !ts.iter().all(same)
            || !ts.iter().any(|&t| self.transposed(t).is_some())
        {
            return None;
        }
        let mut text = String::new();
        for (k, &t) in ts.iter().enumerate() {
            let term = match self.negated(t) {
                Some(n) => format!(" - {} @ {}", n.at(Prec::Mul), v.at(Prec::Neg)),
                None => {
                    let c = one(t);
                    if k == 0 {
                        c.text
                    } else {
                        format!(" + {}", c.at(Prec::Mul))
                    }
                }
            };
            text.push_str(&term);
        }
        let text = text
            .strip_prefix(' ')
            .map(|t| t.replacen("- ", "-", 1))
            .unwrap_or(text);
        Some(Code::new(text, Prec::Add))
    }

    /// For `inv(D)` written inline, `D`.
    fn inverse(&self, f: Id) -> Option<Id> {
        match self.g.node(f) {
            Node::Call(Func::Inv, d) if !self.named(f) => Some(*d),
            _ => None,
        }
    }

    /// For `M.T` written inline, of a matrix M (not a vector), `M`.
    fn transposed(&self, f: Id) -> Option<Id> {
        match self.g.node(f) {
            Node::Transpose(m) if !self.named(f) => {
                let s = self.g.shape(*m);
                let one = |d: Dim| self.g.dims.find(d) == Dim::One;
                (!one(s.rows) && !one(s.cols)).then_some(*m)
            }
            _ => None,
        }
    }

    /// True when the node has a local of its own (it is not written inline).
    fn named(&self, id: Id) -> bool {
        self.depth.get(&id) == Some(&0) && !self.trivial(id)
    }

    /// For `-2*a` (a product with a negative coefficient), the code of `2*a`.
    fn negated(&self, t: Id) -> Option<Code> {
        let code = self.of(t);
        if self.named(t) {
            return None;
        }
        code.text
            .strip_prefix('-')
            .filter(|_| code.prec == Prec::Neg)
            .map(|rest| Code::new(rest, Prec::Mul))
    }

    /// For `u.^-1` (or `s^-1`), the code of `u`.
    fn reciprocal(&self, f: Id) -> Option<Code> {
        match self.g.node(f) {
            Node::Pow([b, p]) | Node::EPow([b, p]) if self.g.as_num(*p) == Some(-1.0) => {
                Some(self.of(*b).clone())
            }
            _ => None,
        }
    }

    /// A function of jacob's language.
    fn function(&mut self, f: Func, u: Id) -> Result<Code, CodegenError> {
        let np = self.np();
        let a = self.of(u).clone();
        let scalar = self.scalar(u);
        let jax = self.target == Target::Jax;
        Ok(match f {
            Func::Exp
            | Func::Log
            | Func::Sin
            | Func::Cos
            | Func::Tan
            | Func::Tanh
            | Func::Sqrt
            | Func::Abs
            | Func::Arcsin
            | Func::Arccos
            | Func::Arctan
            | Func::Sign => self.call(f.name(), &[&a]),
            Func::Relu => Code::atom(format!("{np}.maximum({}, 0.0)", a.at(Prec::Add))),
            Func::Step => Code::atom(format!("{np}.heaviside({}, 0.0)", a.at(Prec::Add))),
            Func::Sigmoid => self.helper("_sigmoid", &[a.at(Prec::Add)]),
            Func::Softplus if jax => Code::atom(format!("jax.nn.softplus({})", a.at(Prec::Add))),
            Func::Softplus => Code::atom(format!("{np}.logaddexp(0.0, {})", a.at(Prec::Add))),
            Func::Sum | Func::Tr | Func::Det | Func::DiagMat | Func::DiagVec | Func::Vec
                if scalar =>
            {
                a
            }
            Func::Sum => self.call("sum", &[&a]),
            Func::Tr => self.call("trace", &[&a]),
            Func::Det => Code::atom(format!("{np}.linalg.det({})", a.at(Prec::Add))),
            Func::Logdet if scalar => self.call("log", &[&a]),
            Func::Logdet => self.helper("_logdet", &[a.at(Prec::Add)]),
            Func::Inv if scalar => Code::new(format!("1 / {}", a.at(Prec::Pow)), Prec::Mul),
            Func::Inv => Code::atom(format!("{np}.linalg.inv({})", a.at(Prec::Add))),
            Func::Norm2 if scalar => self.call("abs", &[&a]),
            Func::Norm2 => Code::atom(format!("{np}.linalg.norm({})", a.at(Prec::Add))),
            Func::Norm1 => {
                let abs = self.call("abs", &[&a]);
                self.call("sum", &[&abs])
            }
            Func::Softmax if scalar => Code::atom("1"),
            Func::Softmax => self.helper("_softmax", &[a.at(Prec::Add)]),
            Func::Logsumexp if scalar => a,
            Func::Logsumexp => self.helper("_logsumexp", &[a.at(Prec::Add)]),
            Func::DiagMat => self.call("diagflat", &[&a]),
            Func::DiagVec => Code::atom(format!("{np}.diag({})[:, None]", a.at(Prec::Add))),
            Func::Vec => Code::atom(format!("{}.T.reshape(-1, 1)", a.at(Prec::Atom))),
        })
    }
}

/// A number as Python: `2`, `0.5`, `1e-10`.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:?}")
    }
}

/// The exponent of a power node.
fn p_id(g: &Graph, id: Id) -> Id {
    match g.node(id) {
        Node::Pow([_, p]) | Node::EPow([_, p]) => *p,
        _ => id,
    }
}

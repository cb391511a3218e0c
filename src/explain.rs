//! `diff --explain`: the derivative as numbered chain-rule steps, each local Jacobian
//! named by its rule and shown with its shape, each chain-rule product with its shapes.
//!
//! The expression is cut into named steps (`u1 = W1*x`, `u2 = relu(u1)`, …). Each
//! local Jacobian is the differentiator's own answer for one step, by one named input
//! (so the rules are those of [`crate::diff`], not a second copy). A scalar is
//! differentiated from the output back (backpropagation), a vector from the variable
//! up (forward); then the layout conversion to what is printed.

use crate::diff::{self, DiffError, Layout, Rank};
use crate::graph::{Func, Graph, Id, Kind, Node, Symbol};
use crate::latex;
use crate::print;
use crate::shape::{DimNames, Shape};
use std::collections::{HashMap, HashSet};

/// A derivative longer than this many characters is used in later steps by its name,
/// `(∂f/∂u2)`, so that the explanation of a deep network grows linearly.
const LONG: usize = 72;

/// A named quantity: the output `f`, a step `u3`, or the variable.
type Name = Symbol;

/// One line of an explanation.
enum Line {
    /// `f = …, by x [n×1]`.
    Intro { f: Id, name: Name, var: Name },
    /// A heading in words; each `{}` in the text is the next name of `names`, and
    /// LaTeX shows the words before `;` only (its text mode has no ∂).
    Say(String, Vec<Name>),
    /// `u1 = W1*x  [m×1]`.
    Def { name: Name, value: Id },
    /// `∂u2/∂u1 = diag(step(u1))  [m×m]  (rule)`.
    Local {
        of: Name,
        by: Name,
        value: Id,
        rule: String,
        /// The partial through `by` directly, when `of` also depends on `by` through
        /// other steps (a [`Line::Total`] adds them up): `∂f/∂x|direct`.
        direct: bool,
    },
    /// `∂f/∂u1 = ∂f/∂u2 · ∂u2/∂u1 = …  [1×m]·[m×m] = [1×m]`.
    Chain {
        of: Name,
        via: Name,
        by: Name,
        shapes: [Shape; 2],
        value: Id,
        /// One term of a sum over several paths (a [`Line::Total`] follows).
        term: bool,
    },
    /// `∂f/∂W1 = (∂f/∂u1)'*x' = …  [m×n]  (rule)`: a step through a matrix, in
    /// gradient form.
    Through {
        of: Name,
        by: Name,
        formula: Id,
        value: Id,
        rule: String,
        /// As for [`Line::Local`].
        direct: bool,
    },
    /// `∂f/∂X = (G + G')/2` for a variable declared symmetric.
    Symmetric { by: Name, value: Id },
    /// `∂f/∂u = ∂f/∂p·∂p/∂u + ∂f/∂q·∂q/∂u = …`: a name used in more than one place.
    Total {
        of: Name,
        by: Name,
        parts: Vec<Name>,
        value: Id,
    },
    /// The last step: the layout of the printed answer, and its shape.
    Layout(String, Shape),
}

/// The steps of a derivative, ready to print in text or LaTeX.
pub struct Explanation {
    lines: Vec<Line>,
    /// The steps' names and definitions, in order, and the derivative the steps reach
    /// (over those names): for checking that the steps are right.
    defs: Vec<(Symbol, Id)>,
    /// Long derivatives used by name in later steps, and what they stand for.
    known: Vec<(Symbol, Id)>,
    result: Option<Id>,
}

/// Builds the explanation of `diff f --wrt var` in `layout`. `f` is the simplified
/// expression the derivative is taken of.
pub fn explain(
    g: &mut Graph,
    f: Id,
    var: Symbol,
    layout: Layout,
) -> Result<Explanation, DiffError> {
    let v = g.sym(var);
    let steps = Steps::new(g, f, v);
    let mut lines = vec![Line::Intro {
        f,
        name: steps.f_name,
        var,
    }];
    let mut defs = Vec::new();
    let mut known = Vec::new();
    let mut result = None;
    if f == v {
        lines.push(Line::Say(
            "the expression is the variable itself: its derivative is the identity".into(),
            vec![],
        ));
    } else if steps.order.is_empty() {
        lines.push(Line::Say(
            "the expression does not depend on the variable: the derivative is 0".into(),
            vec![],
        ));
    } else {
        lines.push(Line::Say("the steps of the computation:".into(), vec![]));
        for &id in &steps.order {
            let name = steps.names[&id];
            let value = steps.defs[&id];
            lines.push(Line::Def { name, value });
            defs.push((name, value));
        }
        if g.is_scalar(f) {
            let fname = g.symbol(steps.f_name).name.clone();
            lines.push(Line::Say(
                format!("the chain rule from {{}} back to {{}} (backpropagation); ∂{fname}/∂u is a row with one entry per entry of a vector u (numerator layout), and has the shape of U for a matrix U:"),
                vec![steps.f_name, var],
            ));
            let grad = steps.backward(g, &mut lines, &mut known)?;
            result = Some(symmetric(g, grad, var, &mut lines));
        } else if g.rank(v) == Rank::Matrix {
            return Err(DiffError::Unsupported(
                "--explain for a non-scalar expression by a matrix (plain `diff` gives the answer)"
                    .into(),
            ));
        } else {
            let vname = &g.symbol(var).name;
            let layout = if g.rank(v) == Rank::Scalar {
                format!("∂u/∂{vname} has the shape of u")
            } else {
                format!(
                    "∂u/∂{vname} has a row for each entry of u and a column for each entry of {vname} (numerator layout)"
                )
            };
            lines.push(Line::Say(
                format!("the chain rule from {{}} up; {layout}:"),
                vec![var],
            ));
            result = Some(steps.forward(g, &mut lines, &mut known)?);
        }
    }
    let (mut text, shape) = layout_note(g, f, v, layout);
    if result.is_none() {
        // No step above to refer to.
        text = format!("{} layout: the derivative has this shape", layout.name());
    }
    lines.push(Line::Layout(text, shape));
    Ok(Explanation {
        lines,
        defs,
        known,
        result,
    })
}

/// The expression cut into named steps.
struct Steps {
    /// The variable's node.
    v: Id,
    /// The name of the expression, `f` unless the user has an `f`.
    f_name: Name,
    /// The nodes that get names, children first; the last is `f`.
    order: Vec<Id>,
    /// Each step's name (and the variable's own).
    names: HashMap<Id, Name>,
    /// Each named node's dependent inputs (named nodes or the variable).
    inputs: HashMap<Id, Vec<Id>>,
    /// Each step written over the names of its inputs, once [`Steps::definition`]
    /// has formed it.
    defs: HashMap<Id, Id>,
}

impl Steps {
    fn new(g: &mut Graph, f: Id, v: Id) -> Steps {
        let Node::Sym(var) = *g.node(v) else {
            unreachable!("the variable is a symbol")
        };
        let dep = g.depends_on(f, var);
        // A transpose is not a step of its own: `x'` reads as it is.
        let order: Vec<Id> = g
            .reachable(&[f])
            .into_iter()
            .filter(|&id| dep[id.idx()] && id != v)
            .filter(|&id| id == f || !matches!(g.node(id), Node::Transpose(_)))
            .collect();
        let taken: HashSet<String> = g
            .symbols()
            .map(|(_, i)| i.name.clone())
            .chain(g.reserved.iter().cloned())
            .collect();
        let clashes = |p: &str| {
            taken
                .iter()
                .any(|n| n.starts_with(p) && n[p.len()..].chars().all(|c| c.is_ascii_digit()))
        };
        let prefix = ["u", "v", "z", "t", "step_u"]
            .into_iter()
            .find(|p| !clashes(p))
            .unwrap_or("step_u");
        let f_name = ["f", "F", "y_out", "f_out"]
            .into_iter()
            .find(|n| !taken.contains(*n))
            .unwrap_or("f_out");
        let f_shape = g.shape(f);
        let f_name_sym = g.declare_shaped(f_name, kind_of(g, f), f_shape);
        let mut names = HashMap::new();
        names.insert(v, var);
        let mut k = 0;
        for &id in &order {
            if id == f {
                names.insert(id, f_name_sym);
                continue;
            }
            let name = {
                k += 1;
                format!("{prefix}{k}")
            };
            let shape = g.shape(id);
            let kind = match kind_of(g, id) {
                Kind::Matrix if g.is_symmetric(id) => Kind::Symmetric,
                kind => kind,
            };
            names.insert(id, g.declare_shaped(&name, kind, shape));
        }
        let mut steps = Steps {
            v,
            f_name: f_name_sym,
            order,
            names,
            inputs: HashMap::new(),
            defs: HashMap::new(),
        };
        // Steps that are products, by their first factor: a run of another product's
        // factors that equals a step is written as that step's name.
        let mut products: HashMap<Id, Vec<Id>> = HashMap::new();
        for &m in &steps.order {
            if let Node::Mul(fs) = g.node(m)
                && fs.len() >= 2
            {
                products.entry(fs[0]).or_default().push(m);
            }
        }
        let by_symbol: HashMap<Symbol, Id> = steps.names.iter().map(|(&id, &s)| (s, id)).collect();
        for i in 0..steps.order.len() {
            let id = steps.order[i];
            let def = steps.definition(g, id, &products);
            steps.defs.insert(id, def);
            let mut ins: Vec<Id> = Vec::new();
            for k in g.reachable(&[def]) {
                if let Node::Sym(s) = g.node(k)
                    && let Some(&c) = by_symbol.get(s)
                    && !ins.contains(&c)
                {
                    ins.push(c);
                }
            }
            steps.inputs.insert(id, ins);
        }
        steps
    }

    /// `a` for `a'` when `a'` is not a step of its own.
    fn through_transpose(&self, g: &Graph, c: Id) -> Id {
        match *g.node(c) {
            Node::Transpose(a) if !self.names.contains_key(&c) => a,
            _ => c,
        }
    }

    /// The node of a step's name (the variable is its own name).
    fn name_node(&self, g: &mut Graph, id: Id) -> Id {
        let s = self.names[&id];
        g.sym(s)
    }

    /// A step written over the names of its inputs: `u2 = relu(u1)`.
    /// `products` indexes the steps that are products by their first factor, so that
    /// `x'*A'*A*x` with a step `u1 = A*x` reads `u1'*u1`, not `u1'*A*x`.
    fn definition(&self, g: &mut Graph, id: Id, products: &HashMap<Id, Vec<Id>>) -> Id {
        let node = g.node(id).clone();
        let original = node.children().to_vec();
        let kids: Vec<Id> = original
            .iter()
            .map(|&c| {
                let inner = self.through_transpose(g, c);
                if !self.names.contains_key(&inner) {
                    c
                } else if inner == c {
                    self.name_node(g, c)
                } else {
                    let n = self.name_node(g, inner);
                    g.t(n)
                }
            })
            .collect();
        if !matches!(node, Node::Mul(_)) {
            return g.rebuild(&node, &kids, id);
        }
        let mut factors = Vec::with_capacity(kids.len());
        let mut i = 0;
        while i < original.len() {
            let run = products.get(&original[i]).and_then(|cands| {
                cands.iter().find_map(|&m| match g.node(m) {
                    Node::Mul(fs)
                        if m != id
                            && fs.len() < original.len()
                            && original[i..].starts_with(fs) =>
                    {
                        Some((m, fs.len()))
                    }
                    _ => None,
                })
            });
            match run {
                Some((m, len)) => {
                    factors.push(self.name_node(g, m));
                    i += len;
                }
                None => {
                    factors.push(kids[i]);
                    i += 1;
                }
            }
        }
        g.mul(&factors)
    }

    /// Reverse mode: ∂f/∂u for every step u, from f down to the variable.
    fn backward(
        &self,
        g: &mut Graph,
        lines: &mut Vec<Line>,
        known: &mut Vec<(Symbol, Id)>,
    ) -> Result<Id, DiffError> {
        let f = *self.order.last().expect("a step");
        let mut users: HashMap<Id, Vec<Id>> = HashMap::new();
        for &p in &self.order {
            for &c in &self.inputs[&p] {
                users.entry(c).or_default().push(p);
            }
        }
        let mut adjoint: HashMap<Id, Id> = HashMap::new();
        adjoint.insert(f, g.num(1.0));
        let mut todo: Vec<Id> = self.order.clone();
        todo.pop();
        todo.insert(0, self.v);
        for &c in todo.iter().rev() {
            let mut parts: Vec<Id> = Vec::new();
            let mut via: Vec<Name> = Vec::new();
            let ps = users.get(&c).map(Vec::as_slice).unwrap_or(&[]);
            for &p in ps {
                let part = self.backward_edge(g, p, c, adjoint[&p], ps.len() > 1, lines)?;
                parts.push(part);
                via.push(self.names[&p]);
            }
            let total = total(g, lines, self.names[&f], self.names[&c], &parts, via);
            let total = self.name_if_long(g, total, self.names[&f], self.names[&c], false, known);
            adjoint.insert(c, total);
        }
        Ok(adjoint[&self.v])
    }

    /// ∂f/∂c through one use of `c` in step `p`, given ∂f/∂p; adds its lines.
    fn backward_edge(
        &self,
        g: &mut Graph,
        p: Id,
        c: Id,
        dp: Id,
        term: bool,
        lines: &mut Vec<Line>,
    ) -> Result<Id, DiffError> {
        let f = *self.order.last().expect("a step");
        let (pn, cn, fname) = (self.names[&p], self.names[&c], self.names[&f]);
        let def = self.defs[&p];
        let uses = self.through_count(g, p, c);
        if g.rank(p) != Rank::Matrix && g.rank(c) != Rank::Matrix {
            let rule = rule(g, p, uses, false);
            let pnode = g.sym(pn);
            let local = local_jacobian(g, def, pnode, cn)?;
            lines.push(Line::Local {
                of: pn,
                by: cn,
                value: local,
                rule,
                direct: p == f && term,
            });
            if p == f {
                return Ok(local);
            }
            return Ok(chain(g, lines, [dp, local], [fname, pn, cn], term));
        }
        // Through a matrix: the gradient of ⟨G, p⟩ by c, with G the gradient of f by p
        // (shaped like p; for a vector p, the transpose of the row ∂f/∂p).
        let upstream = if p == f {
            g.num(1.0)
        } else {
            let (fs, ps) = (&g.symbol(fname).name, &g.symbol(pn).name);
            let (name, kind) = match g.rank(p) {
                Rank::Matrix => (format!("(∂{fs}/∂{ps})"), Kind::Matrix),
                Rank::Scalar => (format!("(∂{fs}/∂{ps})"), Kind::Scalar),
                Rank::Vector => (format!("(∂{fs}/∂{ps})'"), Kind::Vector),
            };
            let col = diff::entries(g, def);
            let shape = g.shape(col);
            let sym = g.declare_shaped(&name, kind, shape);
            g.sym(sym)
        };
        let pairing = match g.rank(p) {
            Rank::Matrix => {
                let ut = g.t(upstream);
                let m = g.mul(&[ut, def]);
                g.func(Func::Tr, m)
            }
            Rank::Scalar => g.mul(&[upstream, def]),
            Rank::Vector => {
                let col = diff::entries(g, def);
                let ut = g.t(upstream);
                g.mul(&[ut, col])
            }
        };
        let grad = diff::gradient(g, pairing, cn)?;
        let grad = if g.rank(c) == Rank::Vector {
            let col = diff::entries(g, grad);
            g.t(col)
        } else {
            grad
        };
        let pnode = g.sym(pn);
        let formula = as_named(g, grad, def, pnode);
        let value = if p == f {
            formula
        } else {
            // The row ∂f/∂p of a vector p stands in as the gradient, its transpose.
            let known = if g.rank(p) == Rank::Vector {
                g.t(dp)
            } else {
                dp
            };
            let mut map = HashMap::new();
            map.insert(upstream, known);
            let value = substitute(g, formula, &map);
            g.simplify(value, true)
        };
        lines.push(Line::Through {
            of: fname,
            by: cn,
            formula,
            value,
            rule: rule(g, p, uses, true),
            direct: p == f && term,
        });
        Ok(value)
    }

    /// Forward mode: ∂u/∂x for every step u, from the variable up to f.
    fn forward(
        &self,
        g: &mut Graph,
        lines: &mut Vec<Line>,
        known: &mut Vec<(Symbol, Id)>,
    ) -> Result<Id, DiffError> {
        let mut tangent: HashMap<Id, Id> = HashMap::new();
        let var = self.names[&self.v];
        for &p in &self.order {
            if g.rank(p) == Rank::Matrix {
                return Err(DiffError::Unsupported(
                    "--explain through a matrix-valued step of a non-scalar expression (plain `diff` gives the answer)".into(),
                ));
            }
            let pn = self.names[&p];
            let def = self.defs[&p];
            let mut parts = Vec::new();
            let mut via = Vec::new();
            for &c in &self.inputs[&p] {
                let cn = self.names[&c];
                let pnode = g.sym(pn);
                let local = local_jacobian(g, def, pnode, cn)?;
                lines.push(Line::Local {
                    of: pn,
                    by: cn,
                    value: local,
                    rule: rule(g, p, self.through_count(g, p, c), false),
                    direct: c == self.v && self.inputs[&p].len() > 1,
                });
                via.push(cn);
                if c == self.v {
                    parts.push(local);
                    continue;
                }
                let dc = tangent[&c];
                let term = self.inputs[&p].len() > 1;
                parts.push(chain(g, lines, [local, dc], [pn, cn, var], term));
            }
            let total = total(g, lines, pn, var, &parts, via);
            let total = self.name_if_long(g, total, pn, var, true, known);
            tangent.insert(p, total);
        }
        let f = *self.order.last().expect("a step");
        Ok(tangent[&f])
    }

    /// A long derivative ∂of/∂by as a name, `(∂f/∂u2)`, for the steps that use it
    /// (recorded in `known`); a short one as it is.
    fn name_if_long(
        &self,
        g: &mut Graph,
        value: Id,
        of: Name,
        by: Name,
        forward: bool,
        known: &mut Vec<(Symbol, Id)>,
    ) -> Id {
        let last = if forward {
            self.order.last().map(|l| self.names[l]) == Some(of)
        } else {
            by == self.names[&self.v]
        };
        if last || g.cost(value) < 12 || print::text(g, value).chars().count() <= LONG {
            return value;
        }
        let name = format!("(∂{}/∂{})", g.symbol(of).name, g.symbol(by).name);
        let shape = g.shape(value);
        let sym = g.declare_shaped(&name, kind_of(g, value), shape);
        known.push((sym, value));
        g.sym(sym)
    }

    /// How many of step `p`'s dependent operands are `c` (or `c'`).
    fn through_count(&self, g: &Graph, p: Id, c: Id) -> usize {
        let name = Node::Sym(self.names[&c]);
        g.children(self.defs[&p])
            .iter()
            .filter(|&&k| match g.node(k) {
                Node::Transpose(a) => *g.node(*a) == name,
                other => *other == name,
            })
            .count()
    }
}

/// One chain-rule product `∂of/∂via · ∂via/∂by`, simplified, with its line.
fn chain(
    g: &mut Graph,
    lines: &mut Vec<Line>,
    [a, b]: [Id; 2],
    [of, via, by]: [Name; 3],
    term: bool,
) -> Id {
    let product = g.mul(&[a, b]);
    let value = g.simplify(product, true);
    lines.push(Line::Chain {
        of,
        via,
        by,
        shapes: [g.shape(a), g.shape(b)],
        value,
        term,
    });
    value
}

/// `∂of/∂by` as the sum of its paths (`parts`, through `via`), simplified, with a line
/// when there is more than one path.
fn total(
    g: &mut Graph,
    lines: &mut Vec<Line>,
    of: Name,
    by: Name,
    parts: &[Id],
    via: Vec<Name>,
) -> Id {
    let sum = g.add(parts);
    let value = g.simplify(sum, true);
    if parts.len() > 1 {
        lines.push(Line::Total {
            of,
            by,
            parts: via,
            value,
        });
    }
    value
}

/// The numerator-layout Jacobian of one step by one of its inputs (not a matrix):
/// the differentiator's gradient, as a row, for a 1×1 step; its Jacobian otherwise.
fn local_jacobian(g: &mut Graph, def: Id, name: Id, by: Symbol) -> Result<Id, DiffError> {
    let local = if g.is_scalar(def) {
        let grad = diff::gradient(g, def, by)?;
        let grad = g.simplify(grad, true);
        let col = diff::entries(g, grad);
        g.t(col)
    } else {
        diff::jacobian(g, def, by)?
    };
    Ok(as_named(g, local, def, name))
}

/// `value` with the step `def` written as its name, simplified: `u4'/norm2(u4)` is
/// `u4'/u5` for `u5 = norm2(u4)`.
fn as_named(g: &mut Graph, value: Id, def: Id, name: Id) -> Id {
    let mut map = HashMap::new();
    map.insert(def, name);
    let value = substitute(g, value, &map);
    g.simplify(value, true)
}

/// For a variable declared symmetric, the symmetric gradient `(G + G')/2` that
/// `diff::derivative` gives, with its line; otherwise `grad` as it is.
fn symmetric(g: &mut Graph, grad: Id, var: Symbol, lines: &mut Vec<Line>) -> Id {
    let sym = diff::symmetrize(g, grad, var);
    if sym == grad {
        return grad;
    }
    let value = g.simplify(sym, true);
    lines.push(Line::Symmetric { by: var, value });
    value
}

/// The kind a name for `id` gets: scalar, vector or matrix by its rank.
fn kind_of(g: &Graph, id: Id) -> Kind {
    match g.rank(id) {
        Rank::Scalar => Kind::Scalar,
        Rank::Vector => Kind::Vector,
        Rank::Matrix => Kind::Matrix,
    }
}

/// The words with their first letter in upper case.
fn capitalized(words: &str) -> String {
    let mut chars = words.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
        .unwrap_or_default()
}

/// `id` with the nodes of `map` replaced, rebuilt through the smart constructors.
fn substitute(g: &mut Graph, id: Id, map: &HashMap<Id, Id>) -> Id {
    let mut new: HashMap<Id, Id> = map.clone();
    for old in g.reachable(&[id]) {
        if new.contains_key(&old) {
            continue;
        }
        let node = g.node(old).clone();
        let kids: Vec<Id> = node.children().iter().map(|c| new[c]).collect();
        let rebuilt = if kids.as_slice() == node.children() {
            old
        } else {
            g.rebuild(&node, &kids, old)
        };
        new.insert(old, rebuilt);
    }
    new[&id]
}

/// The name of the rule a step's derivative uses, then its differential after `:`, from
/// the differentiator's table ([`diff::RULES`]); `uses` counts the operands that are the
/// input being differentiated by. With `gradient`, a step through a matrix also says how
/// the gradient goes back through it.
fn rule(g: &Graph, p: Id, uses: usize, gradient: bool) -> String {
    if gradient
        && matches!(g.node(p), Node::Mul(_))
        && uses == 1
        && g.children(p)
            .iter()
            .any(|&c| g.is_scalar(c) && !g.is_scalar(p))
    {
        return "a scalar factor: ∂f/∂s = ⟨G, ∂V/∂s⟩ with G the gradient of f by V".into();
    }
    let r = diff::rule(g, p);
    let back = match g.node(p) {
        Node::Mul(_) if gradient && uses == 1 => {
            "; back through V = A*U*B: ∂f/∂U = A'*G*B' with G the gradient of f by V"
        }
        Node::Call(Func::Inv, _) if gradient => {
            "; back through V = inv(U): ∂f/∂U = -V'*G*V' with G the gradient of f by V"
        }
        _ => "",
    };
    format!("{}: {}{back}", r.name, r.formula)
}

/// The last step: how the numerator-layout result becomes what is printed, and the
/// printed shape.
fn layout_note(g: &Graph, f: Id, v: Id, layout: Layout) -> (String, Shape) {
    let (fs, vs) = (g.shape(f), g.shape(v));
    let flip = |s: Shape| Shape::new(s.cols, s.rows);
    let lay = layout.name();
    let (words, shape) = match (g.rank(f), g.rank(v)) {
        (Rank::Vector, Rank::Scalar) if layout == Layout::Denominator => (
            "printed transposed, as denominator layout lays out a derivative by a scalar",
            flip(fs),
        ),
        (_, Rank::Scalar) => (
            "a derivative by a scalar has the shape of the expression",
            fs,
        ),
        (Rank::Scalar, Rank::Vector) if layout == Layout::Numerator => (
            "printed as the row above",
            Shape::new(crate::shape::Dim::One, vs.rows),
        ),
        (Rank::Scalar, Rank::Vector) => (
            "printed as the gradient, the transpose of the row above, shaped like the variable",
            vs,
        ),
        (Rank::Scalar, _) if layout == Layout::Numerator => {
            ("printed as the transpose of the gradient above", flip(vs))
        }
        (Rank::Scalar, _) => (
            "printed as the gradient above, shaped like the variable",
            vs,
        ),
        _ => {
            let rows = if g.dims.is_row(fs) { fs.cols } else { fs.rows };
            let n = if g.dims.is_row(vs) { vs.cols } else { vs.rows };
            let jac = Shape::new(rows, n);
            if layout == Layout::Denominator {
                ("printed as the transpose of the Jacobian above", flip(jac))
            } else {
                ("printed as the Jacobian above", jac)
            }
        }
    };
    (format!("{lay} layout: {words}"), shape)
}

impl Explanation {
    /// The derivative the steps reach, with every step's name replaced by what it
    /// stands for: numerator layout, or the gradient for a matrix variable. `None` when
    /// there are no steps.
    pub fn result(&self, g: &mut Graph) -> Option<Id> {
        let mut map: HashMap<Id, Id> = HashMap::new();
        for &(name, def) in self.defs.iter().chain(&self.known) {
            let expanded = substitute(g, def, &map);
            let n = g.sym(name);
            map.insert(n, expanded);
        }
        let r = self.result?;
        Some(substitute(g, r, &map))
    }

    /// The lines as text (`latex` false) or as LaTeX math, one step per line, numbered.
    pub fn render(&self, g: &Graph, latex: bool) -> Vec<String> {
        let mut r = Render {
            g,
            latex,
            dims: DimNames::default(),
        };
        // Sizes are named as `jacob shape` names them: the user's symbols first.
        for (_, info) in g.symbols() {
            r.dims.shape(&g.dims, info.shape);
        }
        let mut number = 0;
        let mut out = Vec::new();
        for line in &self.lines {
            let numbered = matches!(
                line,
                Line::Local { .. }
                    | Line::Through { .. }
                    | Line::Total { .. }
                    | Line::Symmetric { .. }
                    | Line::Layout(..)
            );
            let body = r.line(line);
            out.push(if numbered {
                number += 1;
                if latex {
                    format!(r"\text{{{number}.}}\quad {body}")
                } else {
                    format!("{number}. {body}")
                }
            } else {
                body
            });
        }
        out
    }
}

/// Prints the lines of an explanation in one format, naming sizes consistently.
struct Render<'a> {
    g: &'a Graph,
    latex: bool,
    dims: DimNames,
}

impl Render<'_> {
    fn expr(&self, id: Id) -> String {
        if self.latex {
            latex::latex(self.g, id)
        } else {
            print::text(self.g, id)
        }
    }

    fn name(&self, s: Name) -> String {
        if self.latex {
            latex::symbol(self.g, s)
        } else {
            self.g.symbol(s).name.clone()
        }
    }

    /// Words: as they are, or in LaTeX `\text{…}` with its special characters escaped.
    fn words(&self, w: &str) -> String {
        if !self.latex {
            return w.to_string();
        }
        let mut out = String::from(r"\text{");
        for c in w.chars() {
            match c {
                '_' | '&' | '%' | '#' | '$' | '{' | '}' => {
                    out.push('\\');
                    out.push(c);
                }
                '^' => out.push_str(r"\^{}"),
                '~' => out.push_str(r"\~{}"),
                '\\' => out.push_str(r"\textbackslash{}"),
                _ => out.push(c),
            }
        }
        out.push('}');
        out
    }

    /// `∂f/∂x`.
    fn partial(&self, of: Name, by: Name) -> String {
        if self.latex {
            latex::partial(self.g, of, by)
        } else {
            format!("∂{}/∂{}", self.name(of), self.name(by))
        }
    }

    /// `[m×n]`.
    fn shape(&mut self, s: Shape) -> String {
        let text = self.dims.shape(&self.g.dims, s);
        if self.latex {
            format!(
                r"\quad [{}]",
                text.replace('×', r" \times ").replace('·', r" \cdot ")
            )
        } else {
            format!("  [{text}]")
        }
    }

    /// The name of a rule: in LaTeX the words only, without the formula after `:`.
    fn rule(&self, rule: &str) -> String {
        if self.latex {
            let words = rule.split(':').next().unwrap_or(rule);
            format!(r"\qquad {}", self.words(&format!("({words})")))
        } else {
            format!("  ({rule})")
        }
    }

    fn dot(&self) -> &'static str {
        if self.latex { r" \cdot " } else { " · " }
    }

    /// `∂f/∂x|direct`: the partial through `x` itself, other steps held fixed.
    fn direct(&self, of: Name, by: Name) -> String {
        if self.latex {
            format!(r"\left.{}\right|_{{\text{{direct}}}}", self.partial(of, by))
        } else {
            format!("{}|direct", self.partial(of, by))
        }
    }

    /// `∂of/∂via · ∂via/∂by`, or the direct partial `∂of/∂by|direct` where `via` is
    /// one of the ends.
    fn term(&self, of: Name, via: Name, by: Name) -> String {
        if via == of || via == by {
            self.direct(of, by)
        } else {
            format!(
                "{}{}{}",
                self.partial(of, via),
                self.dot(),
                self.partial(via, by)
            )
        }
    }

    /// ` = value` unless the value is too long to help.
    fn value(&self, id: Id) -> String {
        if print::text(self.g, id).chars().count() > 4 * LONG {
            String::new()
        } else {
            format!(" = {}", self.expr(id))
        }
    }

    fn line(&mut self, line: &Line) -> String {
        let g = self.g;
        match line {
            Line::Intro { f, name, var } => {
                let v = g.symbol(*var);
                let vs = self.shape(v.shape);
                let fs = self.shape(g.shape(*f));
                let body = self.expr(*f);
                // An expression too wide for a line of a page is given by the steps
                // alone, which name every part of it.
                let wide = latex::width(&body) > 40.0 || body.contains(r"\begin");
                if self.latex && wide {
                    format!(
                        r"\text{{Differentiate }} {}{fs} \text{{ by }} {}{vs}\text{{, with }} {} \text{{ as the steps below compute it}}",
                        self.name(*name),
                        self.name(*var),
                        self.name(*name)
                    )
                } else if self.latex {
                    format!(
                        r"\text{{Differentiate }} {} = {body}{fs} \text{{ by }} {}{vs}",
                        self.name(*name),
                        self.name(*var)
                    )
                } else {
                    format!(
                        "Differentiate {} = {body}{fs} by {}{vs}.",
                        self.name(*name),
                        v.name
                    )
                }
            }
            Line::Say(s, names) => {
                let text = if self.latex {
                    s.split(';').next().unwrap_or(s)
                } else {
                    s
                };
                let mut out = String::new();
                for (i, words) in text.split("{}").enumerate() {
                    let words = if i == 0 {
                        capitalized(words)
                    } else {
                        words.to_string()
                    };
                    if !words.is_empty() {
                        out.push_str(&self.words(&words));
                    }
                    if let Some(&n) = names.get(i) {
                        out.push_str(&self.name(n));
                    }
                }
                out
            }
            Line::Def { name, value } => {
                let shape = self.shape(g.shape(*value));
                let indent = if self.latex { r"\quad " } else { "  " };
                format!(
                    "{indent}{} = {}{shape}",
                    self.name(*name),
                    self.expr(*value)
                )
            }
            Line::Local {
                of,
                by,
                value,
                rule,
                direct,
            } => {
                let shape = self.shape(g.shape(*value));
                let lhs = if *direct {
                    self.direct(*of, *by)
                } else {
                    self.partial(*of, *by)
                };
                format!("{lhs}{}{shape}{}", self.value(*value), self.rule(rule))
            }
            Line::Chain {
                of,
                via,
                by,
                shapes,
                value,
                term,
            } => {
                let [a, b] = shapes;
                let (a, b) = (self.shape(*a), self.shape(*b));
                let r = self.shape(g.shape(*value));
                let strip = |s: &str| s.trim().trim_start_matches(r"\quad ").to_string();
                let shapes = if self.latex {
                    format!(r"\quad {} \cdot {} = {}", strip(&a), strip(&b), strip(&r))
                } else {
                    format!("  {}·{} = {}", strip(&a), strip(&b), strip(&r))
                };
                let shown = self.value(*value);
                let indent = if self.latex { r"\quad " } else { "   " };
                let lhs = if *term {
                    // One path of several: no `∂f/∂x =`, which the total line says.
                    format!(
                        "{}{}{}",
                        self.words("through "),
                        self.name(*via),
                        self.words(": ")
                    )
                } else {
                    format!("{} = ", self.partial(*of, *by))
                };
                format!("{indent}{lhs}{}{shown}{shapes}", self.term(*of, *via, *by))
            }
            Line::Through {
                of,
                by,
                formula,
                value,
                rule,
                direct,
            } => {
                let shape = self.shape(g.shape(*value));
                let same = formula == value;
                let formula = format!(" = {}", self.expr(*formula));
                let value = if same {
                    String::new()
                } else {
                    self.value(*value)
                };
                let lhs = if *direct {
                    self.direct(*of, *by)
                } else {
                    self.partial(*of, *by)
                };
                format!("{lhs}{formula}{value}{shape}{}", self.rule(rule))
            }
            Line::Symmetric { by, value } => {
                let shape = self.shape(g.shape(*value));
                let x = self.name(*by);
                let lead = if self.latex {
                    format!(
                        r"{x} \text{{ is symmetric: the symmetric part }} \tfrac{{1}}{{2}}\left(\mathbf{{G}} + \mathbf{{G}}^\top\right)"
                    )
                } else {
                    format!(
                        "{x} is symmetric: the symmetric part (G + G')/2 of the gradient G above"
                    )
                };
                format!("{lead} = {}{shape}", self.expr(*value))
            }
            Line::Total {
                of,
                by,
                parts,
                value,
            } => {
                let shape = self.shape(g.shape(*value));
                let terms: Vec<String> = parts.iter().map(|&p| self.term(*of, p, *by)).collect();
                format!(
                    "{} = {}{}{shape}",
                    self.partial(*of, *by),
                    terms.join(" + "),
                    self.value(*value)
                )
            }
            Line::Layout(text, shape) => {
                let shape = self.shape(*shape);
                format!("{}{shape}", self.words(text))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{Env, eval};
    use crate::numeric::{Draw, choose_sizes, random_value};

    /// The derivative the steps reach is the differentiator's, at random points of
    /// distinct sizes, and the answer is printed as the last step says.
    fn steps_reach_the_derivative(text: &str, wrt: &str, kinds: &[(&str, Kind)]) {
        let kinds: HashMap<String, Kind> = kinds.iter().map(|(n, k)| (n.to_string(), *k)).collect();
        let mut g = Graph::new();
        let parsed = crate::parse::parse(text, &mut g, &kinds).expect("parses");
        let f = g.simplify(parsed.root, false);
        let var = g.lookup(wrt).expect("the variable");
        let v = g.sym(var);
        let layout = if g.rank(v) == Rank::Matrix {
            Layout::Mixed
        } else {
            Layout::Numerator
        };
        let expected = diff::derivative(&mut g, f, var, layout).expect("differentiates");
        let explained = explain(&mut g, f, var, layout).expect("explains");
        let got = explained.result(&mut g).expect("has steps");
        let lines = explained.render(&g, false);
        assert!(
            lines.last().is_some_and(|l| l.contains(" layout: ")),
            "{lines:?}"
        );
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..3 {
            let mut env = Env::default();
            choose_sizes(&g, &mut env, &mut rng);
            let user: Vec<Symbol> = g
                .symbols()
                .filter(|(_, i)| parsed_symbol(&i.name, text))
                .map(|(s, _)| s)
                .collect();
            for s in user {
                let value = random_value(&g, &env, s, &mut rng, Draw::Positive).unwrap();
                env.values.insert(s, value);
            }
            let values = eval(&g, &[expected, got], &env).expect("evaluates");
            let scale = values[0].norm().max(1.0);
            let err = (&values[0] - &values[1]).norm() / scale;
            assert!(
                err < 1e-9,
                "{text} by {wrt}: the steps reach {} but the derivative is {} (error {err})\n{}",
                print::text(&g, got),
                print::text(&g, expected),
                lines.join("\n")
            );
        }
    }

    /// Whether a symbol's name is one the user wrote (not a step's name).
    fn parsed_symbol(name: &str, text: &str) -> bool {
        !name.starts_with(['u', 'f', '(']) || text.contains(name)
    }

    #[test]
    fn steps_of_backpropagation_reach_the_gradient() {
        let m = Kind::Matrix;
        for (text, wrt) in [
            ("x'*A*x", "x"),
            ("a'*x", "x"),
            ("norm2(W2*relu(W1*x) - y)^2", "W1"),
            ("norm2(W2*relu(W1*x) - y)^2", "x"),
            ("norm2(W2*tanh(W1*x + b1) + b2 - y)^2", "b1"),
            ("x'*A*x + sin(x)'*x", "x"),
            ("tr(inv(A + inv(B + X)))", "X"),
            ("logsumexp(W*x) - y'*W*x", "W"),
            ("log(det(X)) + tr(A*X)", "X"),
            ("sum(exp(x).*x)/norm2(x)", "x"),
            ("s*x'*x + s^2", "s"),
        ] {
            steps_reach_the_derivative(text, wrt, &[("W", m), ("s", Kind::Scalar)]);
        }
    }

    #[test]
    fn a_symmetric_variable_gets_the_symmetric_gradient() {
        for (text, wrt) in [
            ("tr(A*X)", "X"),
            ("a'*X*b", "X"),
            ("a'*inv(X)*b", "X"),
            ("logdet(X) + x'*X*x", "X"),
        ] {
            steps_reach_the_derivative(text, wrt, &[("X", Kind::Symmetric)]);
        }
    }

    #[test]
    fn a_variable_used_directly_and_through_steps_is_added_up() {
        for (text, wrt) in [
            ("tanh(A*x).*x", "x"),
            ("x/norm2(x)", "x"),
            ("x'*diag(x)*x", "x"),
            ("g'*g where g = A*x", "x"),
        ] {
            steps_reach_the_derivative(text, wrt, &[]);
        }
        let mut g = Graph::new();
        let parsed = crate::parse::parse("tanh(A*x).*x", &mut g, &HashMap::new()).unwrap();
        let var = g.lookup("x").unwrap();
        let lines = explain(&mut g, parsed.root, var, Layout::Mixed)
            .unwrap()
            .render(&g, false);
        assert!(
            lines.iter().any(|l| l.contains("∂f/∂x|direct = diag(u2)")),
            "{lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l.contains("∂f/∂x = ")
                && l.contains("∂f/∂x|direct")
                && l.contains("∂f/∂u2 · ∂u2/∂x")),
            "{lines:#?}"
        );
    }

    #[test]
    fn forward_steps_reach_the_jacobian() {
        for (text, wrt) in [
            ("A*x", "x"),
            ("sin(A*x)", "x"),
            ("softmax(W*x + b)", "x"),
            ("exp(x)/sum(exp(x))", "x"),
            ("tanh(W2*tanh(W1*x))", "x"),
            ("x*norm2(x) + x.*x", "x"),
            ("sigmoid(s*x)", "s"),
        ] {
            steps_reach_the_derivative(text, wrt, &[("s", Kind::Scalar)]);
        }
    }
}

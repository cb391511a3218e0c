//! Which sizes printed text fixes: where `I` and `ones` may print bare because the
//! text around them gives them their size when it is read back, and where they must
//! carry it (`eye(rows(A))`, `ones(cols(X))`).
//!
//! The reader (`parse.rs`) gives a bare `I` a fresh square size and a bare `ones` a
//! fresh length, and unifies them with what surrounds them: `I + A` makes I the size
//! of A, `ones'*x` makes ones as long as x. This module mirrors that unification over
//! the graph about to be printed, conservatively: a constant prints bare only where
//! the reading is sure to give it the size it has in the graph.

use crate::graph::{Func, Graph, Id, Node, Symbol};
use crate::shape::Dim;
use std::collections::{HashMap, HashSet};

/// Whether the reading fixes a node's number of rows and of columns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Fix {
    rows: bool,
    cols: bool,
}

impl Fix {
    const ALL: Fix = Fix {
        rows: true,
        cols: true,
    };
    const NONE: Fix = Fix {
        rows: false,
        cols: false,
    };

    fn and(self, o: Fix) -> Fix {
        Fix {
            rows: self.rows && o.rows,
            cols: self.cols && o.cols,
        }
    }

    fn or(self, o: Fix) -> Fix {
        Fix {
            rows: self.rows || o.rows,
            cols: self.cols || o.cols,
        }
    }

    fn t(self) -> Fix {
        Fix {
            rows: self.cols,
            cols: self.rows,
        }
    }

    fn square(self) -> Fix {
        let both = self.rows || self.cols;
        Fix {
            rows: both,
            cols: both,
        }
    }
}

/// What a node's own text fixes, whatever surrounds it, and whether the reading makes
/// its rows and columns one size (`I`, `inv(…)`, `diag(u)`).
#[derive(Clone, Copy, Debug)]
struct Own {
    fix: Fix,
    square: bool,
}

/// The sizes that the text of one printed expression fixes, node by node.
pub(crate) struct Fixed {
    /// For each node reachable from the root: what its text and the text around it fix.
    total: HashMap<Id, Fix>,
    /// The symbols the text shows: sizes are written with them first (`rows(z)`).
    pub(crate) present: HashSet<Symbol>,
}

impl Fixed {
    /// Works out what the text of `root` fixes, `where` bindings or not (a binding must
    /// be fixed by each of its uses, as a subexpression printed in each place is).
    pub(crate) fn new(g: &Graph, root: Id) -> Fixed {
        let order = g.reachable(&[root]);
        let mut own: HashMap<Id, Own> = HashMap::with_capacity(order.len());
        for &id in &order {
            let o = own_fix(g, id, &own);
            own.insert(id, o);
        }
        // Parents before children: a node's context is what its parents' texts give it,
        // and it must be fixed in each place it is printed (and). A named node is one
        // binding whose sizes its uses unify in the order they are read; one use can
        // guess (a product size met by another), so it too must be fixed by every use.
        let mut context: HashMap<Id, Fix> = HashMap::with_capacity(order.len());
        context.insert(root, ones(g, root));
        let mut total: HashMap<Id, Fix> = HashMap::with_capacity(order.len());
        for &id in order.iter().rev() {
            let o = own[&id];
            let ctx = context.get(&id).copied().unwrap_or(Fix::NONE);
            let mut tot = ctx.or(o.fix);
            if o.square {
                tot = tot.square();
            }
            total.insert(id, tot);
            for (child, given) in child_fixes(g, id, tot, &own) {
                let entry = context.entry(child).or_insert(Fix::ALL);
                *entry = entry.and(given);
            }
        }
        let present = order
            .iter()
            .filter_map(|&id| match g.node(id) {
                Node::Sym(s) => Some(*s),
                _ => None,
            })
            .collect();
        Fixed { total, present }
    }

    /// True when the constant `id` (`I`, `ones`) reads back with its size if printed bare.
    pub(crate) fn bare(&self, g: &Graph, id: Id) -> bool {
        let fix = self.total.get(&id).copied().unwrap_or(Fix::NONE);
        let s = g.shape(id);
        // A size that nothing could write (no symbol has it: it came from a bare `I` or
        // `ones` in the input, as unknown there as here) needs no text. A size 1 does,
        // where the text around could read a bare `ones` as a matrix.
        let free = |d: Dim| {
            let d = g.dims.find(d);
            d != Dim::One && g.dims.value(d).is_none() && !has_witness(g, d)
        };
        match g.node(id) {
            Node::Identity(n) => fix.rows || fix.cols || free(*n),
            Node::Ones(..) => (free(s.rows) || fix.rows) && (free(s.cols) || fix.cols),
            _ => true,
        }
    }
}

/// The sizes of `id` that are 1: where nothing around a text widens them, a bare
/// `ones` there reads as it should.
fn ones(g: &Graph, id: Id) -> Fix {
    let s = g.shape(id);
    Fix {
        rows: g.dims.find(s.rows) == Dim::One,
        cols: g.dims.find(s.cols) == Dim::One,
    }
}

/// True when the size `d` can be written, as `rows(A)`, `cols(A)` or a product of them.
fn has_witness(g: &Graph, d: Dim) -> bool {
    let mut stack = vec![d];
    while let Some(d) = stack.pop() {
        let d = g.dims.find(d);
        if d == Dim::One || g.dims.value(d).is_some() || g.size_witness(d).is_some() {
            continue;
        }
        match g.dims.factors(d) {
            Some((a, b)) => stack.extend([a, b]),
            None => return false,
        }
    }
    true
}

/// What a node's own text fixes, from its children's.
fn own_fix(g: &Graph, id: Id, own: &HashMap<Id, Own>) -> Own {
    let all = Own {
        fix: Fix::ALL,
        square: true,
    };
    let of = |c: &Id| own[c];
    // A 1×1 part whose own text reads as 1×1 (a name, a number, `x'*A*x`): it fixes its
    // sizes, and is broadcast where it meets larger ones.
    let definite = |c: &Id| g.is_scalar(*c) && own[c].fix == Fix::ALL;
    match g.node(id) {
        Node::Num(_) | Node::Size(_) => all,
        // Printed with its size, or a symbol's.
        Node::Commutation(m, n) => Own {
            fix: Fix::ALL,
            square: g.dims.find(*m) == g.dims.find(*n),
        },
        Node::Hole(..) => Own {
            fix: Fix::ALL,
            square: false,
        },
        Node::Sym(_) => Own {
            fix: Fix::ALL,
            square: g.is_symmetric(id),
        },
        // Always printed with its size.
        Node::Zero(..) => Own {
            fix: Fix::ALL,
            square: false,
        },
        Node::Identity(_) => Own {
            fix: Fix::NONE,
            square: true,
        },
        // A bare `ones` is n×(1 unless something makes it wider), `ones'` the
        // transpose: its text fixes neither size.
        Node::Ones(..) => Own {
            fix: Fix::NONE,
            square: false,
        },
        Node::Add(ts) | Node::Had(ts) if ts.iter().all(definite) => all,
        Node::Add(ts) | Node::Had(ts) => {
            let mut fix = Fix::NONE;
            let mut square = false;
            for t in ts.iter().filter(|t| !definite(t)) {
                fix = fix.or(of(t).fix);
                square |= of(t).square;
            }
            if square {
                fix = fix.square();
            }
            Own { fix, square }
        }
        Node::Mul(fs) if fs.iter().all(|f| g.is_scalar(*f)) => {
            if fs.iter().all(definite) {
                all
            } else {
                Own {
                    fix: Fix::NONE,
                    square: false,
                }
            }
        }
        Node::Mul(fs) => {
            let chain: Vec<Id> = fs.iter().copied().filter(|f| !g.is_scalar(*f)).collect();
            let mut b = Boundaries::new(g, &chain, own);
            let k = chain.len();
            Own {
                fix: Fix {
                    rows: b.fixed(0),
                    cols: b.fixed(k),
                },
                square: b.same(0, k),
            }
        }
        Node::Transpose(a) => Own {
            fix: of(a).fix.t(),
            square: of(a).square,
        },
        Node::EPow([u, _]) => of(u),
        Node::Call(f, u) => {
            let o = of(u);
            match f {
                _ if f.is_elementwise() => o,
                Func::Softmax => o,
                Func::Inv => Own {
                    fix: o.fix.square(),
                    square: true,
                },
                Func::DiagMat => Own {
                    fix: Fix {
                        rows: o.fix.rows,
                        cols: o.fix.rows,
                    },
                    square: true,
                },
                Func::DiagVec => Own {
                    fix: Fix {
                        rows: o.fix.rows || o.fix.cols,
                        cols: true,
                    },
                    square: false,
                },
                Func::Vec => Own {
                    fix: Fix {
                        rows: o.fix.rows && o.fix.cols,
                        cols: true,
                    },
                    square: false,
                },
                _ => all,
            }
        }
        Node::Kron([a, b]) => Own {
            fix: of(a).fix.and(of(b).fix),
            square: false,
        },
        Node::Pow(_) => all,
    }
}

/// What the text of `id`, fixed as `tot`, gives each of its children.
fn child_fixes(g: &Graph, id: Id, tot: Fix, own: &HashMap<Id, Own>) -> Vec<(Id, Fix)> {
    // A 1×1 term or factor among larger ones must read as 1×1 by its own text (the
    // reader would otherwise widen a `ones` in it to meet its neighbours).
    let scalar_or = |c: Id, f: Fix| if g.is_scalar(c) { Fix::NONE } else { f };
    match g.node(id) {
        Node::Add(ts) | Node::Had(ts) => ts.iter().map(|&t| (t, scalar_or(t, tot))).collect(),
        Node::Mul(fs) => {
            let chain: Vec<Id> = fs.iter().copied().filter(|f| !g.is_scalar(*f)).collect();
            let mut b = Boundaries::new(g, &chain, own);
            let k = chain.len();
            if tot.rows {
                b.fix(0);
            }
            if tot.cols {
                b.fix(k);
            }
            // A 1×1 factor of a 1×1 product only scales it; of a larger one, it must
            // read as 1×1 by itself.
            let alone = if chain.is_empty() { tot } else { Fix::NONE };
            let mut out: Vec<(Id, Fix)> = fs
                .iter()
                .filter(|f| g.is_scalar(**f))
                .map(|&f| (f, alone))
                .collect();
            for (i, &c) in chain.iter().enumerate() {
                out.push((
                    c,
                    Fix {
                        rows: b.fixed(i),
                        cols: b.fixed(i + 1),
                    },
                ));
            }
            out
        }
        Node::Transpose(a) => vec![(*a, tot.t())],
        Node::EPow([u, p]) => vec![(*u, tot), (*p, Fix::ALL)],
        Node::Pow([b, p]) => vec![(*b, Fix::ALL), (*p, Fix::ALL)],
        Node::Call(f, u) => {
            // A call whose value has its argument's size (`log(1 + ones)*z`) lets the
            // text around widen a size 1 inside it; inside any other call nothing does.
            let given = match f {
                _ if f.is_elementwise() => tot,
                Func::Softmax => tot,
                Func::Inv => tot.square(),
                Func::DiagMat => Fix {
                    rows: tot.rows || tot.cols,
                    cols: true,
                },
                Func::DiagVec => Fix {
                    rows: tot.rows,
                    cols: tot.rows,
                },
                _ => ones(g, *u),
            };
            vec![(*u, given)]
        }
        Node::Kron([a, b]) => vec![(*a, ones(g, *a)), (*b, ones(g, *b))],
        Node::Num(_)
        | Node::Sym(_)
        | Node::Identity(_)
        | Node::Ones(..)
        | Node::Zero(..)
        | Node::Size(_)
        | Node::Commutation(..)
        | Node::Hole(..) => Vec::new(),
    }
}

/// The sizes between the factors of a matrix chain c1*c2*…*ck, as the reading unifies
/// them: boundary 0 is the rows of c1, boundary i the columns of ci (the rows of
/// c(i+1)). A square factor makes its two boundaries one; a size 1 is always fixed.
struct Boundaries {
    parent: Vec<usize>,
    fixed: Vec<bool>,
}

impl Boundaries {
    fn new(g: &Graph, chain: &[Id], own: &HashMap<Id, Own>) -> Boundaries {
        let k = chain.len();
        let mut b = Boundaries {
            parent: (0..=k).collect(),
            fixed: vec![false; k + 1],
        };
        for (i, c) in chain.iter().enumerate() {
            let s = g.shape(*c);
            let o = own[c];
            // A size 1 between two factors is read as 1 (`u*v'`); at the ends of the
            // chain it is what the text around makes it.
            if o.fix.rows || (i > 0 && g.dims.find(s.rows) == Dim::One) {
                b.fix(i);
            }
            if o.fix.cols || (i + 1 < k && g.dims.find(s.cols) == Dim::One) {
                b.fix(i + 1);
            }
            if o.square {
                b.join(i, i + 1);
            }
        }
        b
    }

    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn join(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[rb] = ra;
            self.fixed[ra] |= self.fixed[rb];
        }
    }

    fn fix(&mut self, i: usize) {
        let r = self.find(i);
        self.fixed[r] = true;
    }

    fn fixed(&mut self, i: usize) -> bool {
        let r = self.find(i);
        self.fixed[r]
    }

    fn same(&mut self, a: usize, b: usize) -> bool {
        self.find(a) == self.find(b)
    }
}

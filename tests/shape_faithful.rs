//! Shape-faithfulness properties: over random well-typed matrix expressions, `simplify`
//! keeps the shape and the value of its input in text that reads back alone, and the
//! derivatives and Hessians jacob prints agree with finite differences.
//!
//! The generator is typed (scalar, n-vector, m-vector, n×m, m×n, n×n, with n ≠ m) and
//! leans on the constants whose shape comes from the context: `0`, `1`, `I`, `ones`,
//! differences that vanish (`x - x`), scalar broadcasts (`alpha + x`) and cancellations
//! (`C*inv(C)`). Every failure found is kept, shrunk, as a line of
//! `tests/data/shape_cases.tsv`, which `replay_shape_cases` runs through the same checks.
//!
//! jacob runs in-process, except `check`, which runs as a child process of the jacob
//! binary (SHAPE_IN_PROCESS=1 runs it in-process too, SHAPE_ISOLATE=1 runs everything as
//! a child process); SHAPE_TRACE=1 prints every command. PROPTEST_CASES sets the number
//! of cases of every property.
//!
//! `cargo test --test shape_faithful -- --ignored hunt --nocapture` runs the properties
//! on many more cases (SHAPE_HUNT_CASES, default 2000; SHAPE_HUNT_SEED; SHAPE_HUNT_ONLY,
//! some of `simplify,twice,diff,hess`), shrinks every failure and prints the distinct
//! minimal ones as case-file lines. To look past failures already known:
//! SHAPE_HUNT_SKIP (`|`-separated substrings of their messages; `claim:TEXT` skips
//! checking claims that contain TEXT) and SHAPE_HUNT_WITHOUT (some of
//! `vanish,cancel,ones`: leaves out expressions with these features). The hunt of `diff`
//! and `hess` leaves out expressions that `simplify` already gets wrong.

use std::collections::BTreeSet;
use std::fmt;

use proptest::prelude::*;
use proptest::strategy::{Union, ValueTree};
use proptest::test_runner::{
    Config as ProptestConfig, FileFailurePersistence, TestCaseError, TestRng, TestRunner,
};
use serde_json::Value;

mod common;
use common::jacob;

// ---------------------------------------------------------------------------------------
// Expressions

/// The types the generator knows; n and m are distinct sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    /// 1×1
    S,
    /// n×1
    N,
    /// m×1
    M,
    /// n×m
    Nm,
    /// m×n
    Mn,
    /// n×n
    Nn,
}

const TYPES: [Ty; 6] = [Ty::S, Ty::N, Ty::M, Ty::Nm, Ty::Mn, Ty::Nn];

impl Ty {
    fn index(self) -> usize {
        TYPES.iter().position(|&t| t == self).unwrap_or(0)
    }

    /// (rows, cols) at sizes n and m.
    fn shape(self, n: usize, m: usize) -> (usize, usize) {
        match self {
            Ty::S => (1, 1),
            Ty::N => (n, 1),
            Ty::M => (m, 1),
            Ty::Nm => (n, m),
            Ty::Mn => (m, n),
            Ty::Nn => (n, n),
        }
    }
}

/// The symbols, their types, and what kind of variable each is for `hess`.
const SYMBOLS: [(&str, Ty); 9] = [
    ("alpha", Ty::S),
    ("beta", Ty::S),
    ("x", Ty::N),
    ("y", Ty::N),
    ("z", Ty::M),
    ("A", Ty::Nm),
    ("B", Ty::Mn),
    ("C", Ty::Nn),
    ("S", Ty::Nn),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Had,
    HDiv,
}

/// A small expression tree that prints as jacob text, with every composite operand in
/// parentheses.
#[derive(Clone, PartialEq)]
enum E {
    Sym(&'static str),
    Num(&'static str),
    Eye,
    Ones,
    Neg(Box<E>),
    Bin(Op, Box<E>, Box<E>),
    /// `.^2`
    Sq(Box<E>),
    /// `^2` of a scalar
    Pow2(Box<E>),
    /// postfix `'`
    T(Box<E>),
    Call(&'static str, Box<E>),
}

fn bin(op: Op, a: E, b: E) -> E {
    E::Bin(op, Box::new(a), Box::new(b))
}
fn add(a: E, b: E) -> E {
    bin(Op::Add, a, b)
}
fn sub(a: E, b: E) -> E {
    bin(Op::Sub, a, b)
}
fn mul(a: E, b: E) -> E {
    bin(Op::Mul, a, b)
}
fn tr(a: E) -> E {
    E::T(Box::new(a))
}
fn call(f: &'static str, a: E) -> E {
    E::Call(f, Box::new(a))
}

impl E {
    /// Printed bare as an operand of a binary operator or of unary minus.
    fn atomic(&self) -> bool {
        matches!(self, E::Sym(_) | E::Num(_) | E::Eye | E::Ones | E::Call(..))
    }

    /// Printed bare before a postfix `'`, `^` or `.^`.
    fn postfix_atomic(&self) -> bool {
        matches!(self, E::Sym(_) | E::Eye | E::Ones | E::Call(..))
    }

    fn symbols(&self, out: &mut BTreeSet<&'static str>) {
        match self {
            E::Sym(s) => {
                out.insert(s);
            }
            E::Num(_) | E::Eye | E::Ones => {}
            E::Neg(a) | E::Sq(a) | E::Pow2(a) | E::T(a) | E::Call(_, a) => a.symbols(out),
            E::Bin(_, a, b) => {
                a.symbols(out);
                b.symbols(out);
            }
        }
    }
}

impl E {
    fn children(&self) -> Vec<&E> {
        match self {
            E::Sym(_) | E::Num(_) | E::Eye | E::Ones => Vec::new(),
            E::Neg(a) | E::Sq(a) | E::Pow2(a) | E::T(a) | E::Call(_, a) => vec![a],
            E::Bin(_, a, b) => vec![a, b],
        }
    }

    fn any(&self, p: &dyn Fn(&E) -> bool) -> bool {
        p(self) || self.children().iter().any(|c| c.any(p))
    }

    /// The features `hunt` can leave out (SHAPE_HUNT_WITHOUT): `vanish` (e - e,
    /// (a + e) - e), `cancel` (K*inv(K)), `ones`.
    fn has(&self, feature: &str) -> bool {
        match feature {
            "vanish" => self.any(&|e| match e {
                E::Bin(Op::Sub, a, b) => a == b || matches!(&**a, E::Bin(Op::Add, _, e) if e == b),
                _ => false,
            }),
            "cancel" => self.any(&|e| match e {
                E::Bin(Op::Mul, a, b) => {
                    let inverse = |i: &E, k: &E| matches!(i, E::Call("inv", x) if **x == *k);
                    let last = |e: &E| match e {
                        E::Bin(Op::Mul, _, r) => (**r).clone(),
                        other => other.clone(),
                    };
                    inverse(a, b) || inverse(b, a) || inverse(&last(a), b) || inverse(b, &last(a))
                }
                _ => false,
            }),
            "ones" => self.any(&|e| matches!(e, E::Ones)),
            _ => false,
        }
    }
}

struct Operand<'a>(&'a E, bool);

impl fmt::Display for Operand<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bare = if self.1 {
            self.0.postfix_atomic()
        } else {
            self.0.atomic()
        };
        if bare {
            write!(f, "{}", self.0)
        } else {
            write!(f, "({})", self.0)
        }
    }
}

impl fmt::Display for E {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            E::Sym(s) | E::Num(s) => write!(f, "{s}"),
            E::Eye => write!(f, "I"),
            E::Ones => write!(f, "ones"),
            E::Neg(a) => write!(f, "-{}", Operand(a, false)),
            E::Bin(op, a, b) => {
                let op = match op {
                    Op::Add => " + ",
                    Op::Sub => " - ",
                    Op::Mul => "*",
                    Op::Div => "/",
                    Op::Had => ".*",
                    Op::HDiv => "./",
                };
                write!(f, "{}{op}{}", Operand(a, false), Operand(b, false))
            }
            E::Sq(a) => write!(f, "{}.^2", Operand(a, true)),
            E::Pow2(a) => write!(f, "{}^2", Operand(a, true)),
            E::T(a) => write!(f, "{}'", Operand(a, true)),
            E::Call(name, a) => write!(f, "{name}({a})"),
        }
    }
}

impl fmt::Debug for E {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

// ---------------------------------------------------------------------------------------
// The typed generator

type Strat = BoxedStrategy<E>;

/// The strategies of one depth: expressions of each type, elementwise positive ones of
/// each type, and symmetric positive definite n×n ones.
#[derive(Clone)]
struct Level {
    e: Vec<Strat>,
    pos: Vec<Strat>,
    pd: Strat,
}

impl Level {
    fn e(&self, t: Ty) -> Strat {
        self.e[t.index()].clone()
    }
    fn pos(&self, t: Ty) -> Strat {
        self.pos[t.index()].clone()
    }
}

/// Elementwise functions defined everywhere.
const SMOOTH: [&str; 6] = ["exp", "sin", "cos", "tanh", "sigmoid", "softplus"];
/// Elementwise functions with a kink at 0 (check re-draws points near it).
const KINKED: [&str; 2] = ["relu", "abs"];

fn leaf(t: Ty) -> Strat {
    let symbols: &[&'static str] = match t {
        Ty::S => &["alpha", "beta"],
        Ty::N => &["x", "y"],
        Ty::M => &["z"],
        Ty::Nm => &["A"],
        Ty::Mn => &["B"],
        Ty::Nn => &["C", "S"],
    };
    let constants: Vec<E> = match t {
        Ty::S => vec![E::Num("0"), E::Num("1"), E::Num("2"), E::Num("0.5")],
        Ty::Nn => vec![E::Eye, E::Ones],
        _ => vec![E::Ones],
    };
    let mut arms: Vec<(u32, Strat)> = symbols
        .iter()
        .map(|&s| (8 / symbols.len() as u32, Just(E::Sym(s)).boxed()))
        .collect();
    arms.push((2, proptest::sample::select(constants).boxed()));
    Union::new_weighted(arms).boxed()
}

/// Positive expressions of type `t` built over `e` (expressions of type `t`).
fn positive(t: Ty, e: Strat) -> Strat {
    let mut arms: Vec<(u32, Strat)> = Vec::new();
    match t {
        Ty::S => arms.push((
            2,
            proptest::sample::select(vec![E::Num("2"), E::Num("0.5")]).boxed(),
        )),
        _ => arms.push((1, Just(E::Ones).boxed())),
    }
    arms.push((1, e.clone().prop_map(|a| call("exp", a)).boxed()));
    arms.push((
        2,
        e.clone()
            .prop_map(|a| add(E::Num("1"), E::Sq(Box::new(a))))
            .boxed(),
    ));
    arms.push((1, e.clone().prop_map(|a| call("sigmoid", a)).boxed()));
    arms.push((1, e.clone().prop_map(|a| call("softplus", a)).boxed()));
    if matches!(t, Ty::N | Ty::M) {
        arms.push((1, e.prop_map(|a| call("softmax", a)).boxed()));
    }
    Union::new_weighted(arms).boxed()
}

/// Symmetric positive definite n×n matrices (eigenvalues ≥ 1) built over `p`.
fn spd(p: &Level) -> Strat {
    let plus_i = |a: E| add(a, E::Eye);
    prop_oneof![
        Just(E::Sym("C")).prop_map(move |c| plus_i(mul(c.clone(), tr(c)))),
        p.e(Ty::Nn).prop_map(move |c| plus_i(mul(c.clone(), tr(c)))),
        p.e(Ty::Mn).prop_map(|b| add(E::Eye, mul(tr(b.clone()), b))),
        p.e(Ty::Nm)
            .prop_map(|a| add(mul(a.clone(), tr(a)), mul(E::Num("2"), E::Eye))),
    ]
    .boxed()
}

/// `C*inv(C)`, `inv(C)*C`, `K*inv(K)`, `inv(K)*K` for an SPD K: the identity.
fn cancel(p: &Level) -> Strat {
    let c = E::Sym("C");
    let inv_c = call("inv", c.clone());
    prop_oneof![
        Just(mul(c.clone(), inv_c.clone())),
        Just(mul(inv_c, c)),
        p.pd.clone().prop_map(|k| mul(k.clone(), call("inv", k))),
        p.pd.clone().prop_map(|k| mul(call("inv", k.clone()), k)),
    ]
    .boxed()
}

fn level0() -> Level {
    let e: Vec<Strat> = TYPES.iter().map(|&t| leaf(t)).collect();
    let pos = TYPES.iter().map(|&t| positive(t, leaf(t))).collect();
    let pd = spd(&Level {
        e: e.clone(),
        pos: Vec::new(),
        pd: Just(E::Eye).boxed(),
    });
    Level { e, pos, pd }
}

/// The next depth over `p`; at the top, leaves are rare.
fn level(p: &Level, top: bool) -> Level {
    let leaf_weight = if top { 2 } else { 14 };
    let e: Vec<Strat> = TYPES
        .iter()
        .map(|&t| composite(t, p, leaf_weight))
        .collect();
    let pos = TYPES
        .iter()
        .map(|&t| positive(t, e[t.index()].clone()))
        .collect();
    Level { pd: spd(p), e, pos }
}

/// Expressions of type `t` one level above `p`: leaves first, then the composites, so
/// that a failure shrinks towards short expressions.
fn composite(t: Ty, p: &Level, leaf_weight: u32) -> Strat {
    use Ty::*;
    let g = || p.e(t);
    let s = || p.e(S);
    let mut arms: Vec<(u32, Strat)> = vec![(leaf_weight, leaf(t))];
    let mut arm = |w: u32, st: Strat| arms.push((w, st));

    // Generic arms, for every type.
    arm(2, (g(), g()).prop_map(|(a, b)| add(a, b)).boxed());
    arm(2, (g(), g()).prop_map(|(a, b)| sub(a, b)).boxed());
    arm(2, g().prop_map(|a| sub(a.clone(), a)).boxed());
    arm(1, g().prop_map(|a| E::Neg(Box::new(a))).boxed());
    arm(
        2,
        (proptest::sample::select(SMOOTH.to_vec()), g())
            .prop_map(|(f, a)| call(f, a))
            .boxed(),
    );
    arm(
        1,
        (proptest::sample::select(KINKED.to_vec()), g())
            .prop_map(|(f, a)| call(f, a))
            .boxed(),
    );
    arm(1, p.pos(t).prop_map(|a| call("log", a)).boxed());
    arm(1, p.pos(t).prop_map(|a| call("sqrt", a)).boxed());
    arm(1, (g(), g()).prop_map(|(a, b)| bin(Op::Had, a, b)).boxed());
    arm(
        1,
        (g(), p.pos(t))
            .prop_map(|(a, b)| bin(Op::HDiv, a, b))
            .boxed(),
    );
    arm(1, g().prop_map(|a| E::Sq(Box::new(a))).boxed());
    arm(
        1,
        (g(), p.pos(S))
            .prop_map(|(a, b)| bin(Op::Div, a, b))
            .boxed(),
    );
    arm(1, (s(), g()).prop_map(|(a, b)| mul(a, b)).boxed());
    // (a + e) - e: the sum keeps a's shape (and value) once e cancels.
    arm(
        1,
        (g(), g())
            .prop_map(|(a, e)| sub(add(a, e.clone()), e))
            .boxed(),
    );

    if t != S {
        // Scalar broadcasts.
        arm(2, (s(), g()).prop_map(|(a, b)| add(a, b)).boxed());
        arm(1, (g(), s()).prop_map(|(a, b)| add(a, b)).boxed());
        arm(1, (g(), s()).prop_map(|(a, b)| sub(a, b)).boxed());
        arm(1, (g(), s()).prop_map(|(a, b)| mul(a, b)).boxed());
        arm(1, (g(), s()).prop_map(|(a, b)| bin(Op::Had, a, b)).boxed());
        arm(1, (s(), g()).prop_map(|(a, b)| bin(Op::Had, a, b)).boxed());
        arm(
            1,
            (g(), p.pos(S))
                .prop_map(|(a, b)| bin(Op::HDiv, a, b))
                .boxed(),
        );
        // s + e - e and s + (e - e): a scalar broadcast to e's shape.
        arm(
            2,
            (s(), g())
                .prop_map(|(a, e)| sub(add(a, e.clone()), e))
                .boxed(),
        );
        arm(
            2,
            (s(), g())
                .prop_map(|(a, e)| add(a, sub(e.clone(), e)))
                .boxed(),
        );
        arm(1, s().prop_map(|a| mul(a, E::Ones)).boxed());
        arm(1, g().prop_map(|a| add(a, E::Ones)).boxed());
    }

    match t {
        S => {
            arm(1, (p.e(N), p.e(N)).prop_map(|(a, b)| mul(tr(a), b)).boxed());
            arm(1, (p.e(M), p.e(M)).prop_map(|(a, b)| mul(tr(a), b)).boxed());
            arm(
                1,
                (p.e(N), p.e(Nm), p.e(M))
                    .prop_map(|(a, b, c)| mul(mul(tr(a), b), c))
                    .boxed(),
            );
            arm(
                1,
                (p.e(N), p.e(Nn), p.e(N))
                    .prop_map(|(a, b, c)| mul(mul(tr(a), b), c))
                    .boxed(),
            );
            arm(1, p.e(N).prop_map(|a| mul(tr(E::Ones), a)).boxed());
            arm(1, s().prop_map(|a| E::Pow2(Box::new(a))).boxed());
            let any = prop_oneof![p.e(N), p.e(M), p.e(Nm), p.e(Mn), p.e(Nn)];
            arm(2, any.clone().prop_map(|a| call("sum", a)).boxed());
            arm(1, any.prop_map(|a| call("norm1", a)).boxed());
            // norm2 of something that is never the zero vector: its derivative divides
            // by it.
            let nonzero = prop_oneof![
                p.pos(N),
                p.pos(M),
                p.pos(Nm),
                p.pos(Nn),
                proptest::sample::select(vec![E::Sym("x"), E::Sym("z"), E::Sym("A")]),
            ];
            arm(1, nonzero.clone().prop_map(|a| call("norm2", a)).boxed());
            arm(
                1,
                nonzero
                    .prop_map(|a| E::Pow2(Box::new(call("norm2", a))))
                    .boxed(),
            );
            arm(
                1,
                prop_oneof![p.e(N), p.e(M)]
                    .prop_map(|a| call("logsumexp", a))
                    .boxed(),
            );
            arm(2, p.e(Nn).prop_map(|a| call("tr", a)).boxed());
            arm(1, p.e(Nn).prop_map(|a| call("det", a)).boxed());
            arm(1, p.pd.clone().prop_map(|a| call("logdet", a)).boxed());
        }
        N | M => {
            let other = if t == N { M } else { N };
            let (sq, wide, tall) = if t == N { (Nn, Nm, Mn) } else { (Nn, Mn, Nm) };
            if t == N {
                arm(2, (p.e(sq), g()).prop_map(|(a, b)| mul(a, b)).boxed());
                arm(1, g().prop_map(|a| mul(E::Eye, a)).boxed());
                arm(1, p.e(sq).prop_map(|a| call("diag", a)).boxed());
                arm(
                    1,
                    (p.pd.clone(), g())
                        .prop_map(|(k, a)| mul(call("inv", k), a))
                        .boxed(),
                );
                arm(1, (cancel(p), g()).prop_map(|(c, a)| mul(c, a)).boxed());
            }
            arm(
                2,
                (p.e(wide), p.e(other)).prop_map(|(a, b)| mul(a, b)).boxed(),
            );
            arm(
                1,
                (p.e(tall), p.e(other))
                    .prop_map(|(a, b)| mul(tr(a), b))
                    .boxed(),
            );
            arm(1, g().prop_map(|a| call("softmax", a)).boxed());
            arm(1, g().prop_map(|a| tr(tr(a))).boxed());
            arm(1, (g(), s()).prop_map(|(a, b)| mul(a, b)).boxed());
            // A*(ones'*x*z): a scalar product in the middle of a matrix product.
            arm(
                1,
                (p.e(wide), p.e(N), p.e(other))
                    .prop_map(|(a, u, v)| mul(a, mul(mul(tr(E::Ones), u), v)))
                    .boxed(),
            );
        }
        Nm | Mn => {
            let (row, col, tall) = if t == Nm { (N, M, Mn) } else { (M, N, Nm) };
            arm(
                2,
                (p.e(row), p.e(col))
                    .prop_map(|(a, b)| mul(a, tr(b)))
                    .boxed(),
            );
            arm(2, p.e(tall).prop_map(tr).boxed());
            if t == Nm {
                arm(2, (p.e(Nn), g()).prop_map(|(a, b)| mul(a, b)).boxed());
                arm(1, (cancel(p), g()).prop_map(|(c, a)| mul(c, a)).boxed());
                arm(1, g().prop_map(|a| mul(E::Eye, a)).boxed());
            } else {
                arm(2, (g(), p.e(Nn)).prop_map(|(a, b)| mul(a, b)).boxed());
                // A'*inv(K)*K, written left to right.
                arm(
                    1,
                    (g(), p.pd.clone())
                        .prop_map(|(a, k)| mul(mul(a, call("inv", k.clone())), k))
                        .boxed(),
                );
                arm(1, g().prop_map(|a| mul(a, E::Eye)).boxed());
            }
        }
        Nn => {
            arm(2, (p.e(Nm), p.e(Mn)).prop_map(|(a, b)| mul(a, b)).boxed());
            arm(1, (p.e(N), p.e(N)).prop_map(|(a, b)| mul(a, tr(b))).boxed());
            arm(1, (g(), g()).prop_map(|(a, b)| mul(a, b)).boxed());
            arm(1, g().prop_map(tr).boxed());
            arm(2, g().prop_map(|a| add(a, E::Eye)).boxed());
            arm(
                1,
                (p.e(Nm), p.e(Mn))
                    .prop_map(|(a, b)| sub(mul(a, b), E::Eye))
                    .boxed(),
            );
            arm(1, p.e(N).prop_map(|a| call("diag", a)).boxed());
            arm(1, p.pd.clone().prop_map(|k| call("inv", k)).boxed());
            arm(1, p.pd.clone());
            arm(2, cancel(p));
            arm(1, (cancel(p), g()).prop_map(|(c, a)| add(c, a)).boxed());
        }
    }
    Union::new_weighted(arms).boxed()
}

/// The strategies for expressions of each type at `depth`.
fn levels(depth: usize) -> Level {
    let mut l = level0();
    for d in 0..depth {
        l = level(&l, d + 1 == depth);
    }
    l
}

// ---------------------------------------------------------------------------------------
// Cases

/// An expression with the sizes and the seed of its values.
#[derive(Clone)]
struct Case {
    ty: Option<Ty>,
    /// The tree, for generated cases.
    tree: Option<E>,
    expr: String,
    /// The symbols that occur, in order.
    vars: Vec<&'static str>,
    n: usize,
    m: usize,
    seed: u64,
    layout: &'static str,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} ({:?}; n={}, m={}, seed={}, layout {} {})",
            self.expr,
            self.ty,
            self.n,
            self.m,
            self.seed,
            self.layout,
            self.decls().join(" "),
        )
    }
}

impl Case {
    fn new(ty: Option<Ty>, e: &E, n: usize, m: usize, seed: u64, layout: &'static str) -> Case {
        let mut vars = BTreeSet::new();
        e.symbols(&mut vars);
        Case {
            ty,
            tree: Some(e.clone()),
            expr: e.to_string(),
            vars: vars.into_iter().collect(),
            n,
            m,
            seed,
            layout,
        }
    }

    /// The declarations every command of this case gets.
    fn decls(&self) -> Vec<String> {
        if self.vars.contains(&"S") {
            vec!["--symmetric".into(), "S".into()]
        } else {
            Vec::new()
        }
    }

    /// `--set` flags for every symbol, seeded by the case.
    fn sets(&self) -> Vec<String> {
        let mut rng = fastrand::Rng::with_seed(self.seed);
        let mut entry = || ((rng.f64() * 2.0 - 1.0) * 1000.0).round() / 1000.0;
        let mut out = Vec::new();
        for (name, ty) in SYMBOLS {
            let (r, c) = ty.shape(self.n, self.m);
            let mut v: Vec<Vec<f64>> = (0..r).map(|_| (0..c).map(|_| entry()).collect()).collect();
            if name == "S" {
                let upper = v.clone();
                for (i, row) in v.iter_mut().enumerate() {
                    for (j, entry) in row.iter_mut().enumerate().take(i) {
                        *entry = upper[j][i];
                    }
                }
            }
            if name == "C" {
                // Well away from singular, for inv(C)*C.
                for (i, row) in v.iter_mut().enumerate() {
                    row[i] += 2.0;
                }
            }
            let json = match ty {
                Ty::S => format!("{}", v[0][0]),
                Ty::N | Ty::M => serde_json::to_string(&v.iter().map(|r| r[0]).collect::<Vec<_>>())
                    .unwrap_or_default(),
                _ => serde_json::to_string(&v).unwrap_or_default(),
            };
            out.push(format!("--set={name}={json}"));
        }
        out
    }
}

/// Every call runs as a child process (set by `hunt`, which must survive a crash).
static ISOLATE_ALL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Runs jacob in-process with `args` followed by `more`.
fn run(args: &[&str], more: &[String]) -> (i32, String, String) {
    run_as(false, args, more)
}

/// Runs jacob with `args` followed by `more`, as a child process if `isolate` (or
/// SHAPE_ISOLATE is set), else in-process.
fn run_as(isolate: bool, args: &[&str], more: &[String]) -> (i32, String, String) {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(more.iter().map(String::as_str));
    if std::env::var_os("SHAPE_TRACE").is_some() {
        eprintln!("jacob {all:?}");
    }
    let all_isolated = ISOLATE_ALL.load(std::sync::atomic::Ordering::Relaxed)
        || std::env::var_os("SHAPE_ISOLATE").is_some();
    if isolate || all_isolated {
        isolated(&all)
    } else {
        jacob(&all)
    }
}

/// Runs the jacob binary as a child process, so that a crash (a stack overflow aborts
/// the whole process) or a hang is one failing case instead of the end of the test
/// binary. A signal or the time limit gives exit code -1.
fn isolated(args: &[&str]) -> (i32, String, String) {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let child = Command::new(env!("CARGO_BIN_EXE_jacob"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return (-1, String::new(), format!("cannot run jacob: {e}")),
    };
    // Read both pipes on their own threads so that a large output cannot block the child.
    let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut text);
            }
            text
        })
    };
    let out = read(child.stdout.take().map(|p| Box::new(p) as _));
    let err = read(child.stderr.take().map(|p| Box::new(p) as _));
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() < Duration::from_secs(60) => {
                std::thread::sleep(Duration::from_millis(1));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let out = out.join().unwrap_or_default();
    let mut err = err.join().unwrap_or_default();
    let code = match status.and_then(|s| s.code()) {
        Some(code) => code,
        None => {
            let why = status.map_or("ran for over 60 s".to_string(), |s| s.to_string());
            err.push_str(&format!("\n[jacob crashed or hung: {why}]"));
            -1
        }
    };
    (code, out, err)
}

/// A numeric value: its shape and its entries, row by row.
#[derive(Debug)]
struct Num {
    shape: (usize, usize),
    entries: Vec<f64>,
}

/// `eval` with the case's values; Err(message) when jacob refuses.
fn eval(c: &Case, expr: &str) -> Result<Num, String> {
    let mut more = c.sets();
    more.extend(c.decls());
    more.extend(["--format".into(), "json".into()]);
    let (code, out, err) = run(&["eval", expr], &more);
    if code != 0 {
        return Err(format!("exit {code}: {}", err.trim()));
    }
    let v: Value = serde_json::from_str(out.trim()).map_err(|e| format!("{out}: {e}"))?;
    let dim = |i: usize| v["shape"][i].as_u64().map(|d| d as usize);
    let shape = (dim(0).ok_or("no shape")?, dim(1).ok_or("no shape")?);
    let entries: Vec<f64> = v["value"]
        .as_array()
        .ok_or("no value")?
        .iter()
        .flat_map(|row| match row.as_array() {
            Some(r) => r.iter().filter_map(Value::as_f64).collect::<Vec<_>>(),
            None => row.as_f64().into_iter().collect::<Vec<_>>(),
        })
        .collect();
    Ok(Num { shape, entries })
}

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self
            .entries
            .iter()
            .take(6)
            .map(|v| format!("{v:.6}"))
            .collect();
        let more = if self.entries.len() > 6 { ", …" } else { "" };
        write!(
            f,
            "{}×{} [{}{more}]",
            self.shape.0,
            self.shape.1,
            shown.join(", ")
        )
    }
}

/// How `after` differs from `before`: its shape, or its entries relative to the larger
/// of the two values; None if they agree.
fn differs(before: &Num, after: &Num) -> Option<String> {
    if before.shape != after.shape || before.entries.len() != after.entries.len() {
        return Some(format!(
            "the shape changed from {}×{} to {}×{} ({before} → {after})",
            before.shape.0, before.shape.1, after.shape.0, after.shape.1
        ));
    }
    let scale = before
        .entries
        .iter()
        .chain(&after.entries)
        .fold(1.0f64, |s, v| s.max(v.abs()));
    let close = before
        .entries
        .iter()
        .zip(&after.entries)
        .all(|(x, y)| (x - y).abs() <= 1e-8 * scale);
    (!close).then(|| format!("the value changed ({before} → {after})"))
}

/// The value of the case's expression as written; a case jacob cannot evaluate (a
/// domain error, a size no symbol fixes) is not a test of shapes and is discarded.
fn value_of_input(c: &Case) -> Result<Num, TestCaseError> {
    let v = eval(c, &c.expr)
        .map_err(|e| TestCaseError::reject(format!("{} does not evaluate: {e}", c.expr)))?;
    if let Some(ty) = c.ty
        && v.shape != ty.shape(c.n, c.m)
    {
        // A `ones` whose size nothing fixes is a vector (`C*ones` is n×1): not the
        // generator's n×n, but not wrong.
        let why = format!(
            "{} is {ty:?} (n={}, m={}), and jacob evaluates it as {:?}",
            c.expr, c.n, c.m, v.shape
        );
        return Err(if c.expr.contains("ones") {
            TestCaseError::reject(why)
        } else {
            TestCaseError::fail(why)
        });
    }
    Ok(v)
}

/// `simplify` with the case's declarations: its one line of output.
fn simplify(c: &Case, expr: &str) -> Result<String, TestCaseError> {
    let (code, out, err) = run(&["simplify", expr], &c.decls());
    if code != 0 {
        return Err(TestCaseError::fail(format!(
            "simplify {expr} exits {code}: {}",
            err.trim_end()
        )));
    }
    let t = out.trim().to_string();
    prop_assert_eq!(t.lines().count(), 1, "simplify {} printed {:?}", expr, out);
    Ok(t)
}

// ---------------------------------------------------------------------------------------
// The properties

/// 1. `simplify E` prints T that, read back alone, has E's shape and value.
fn simplify_keeps_shape_and_value(c: &Case) -> Result<(), TestCaseError> {
    let v = value_of_input(c)?;
    let t = simplify(c, &c.expr)?;
    let w = eval(c, &t).map_err(|e| {
        TestCaseError::fail(format!(
            "simplify {} printed {t}, which does not evaluate alone: {e}",
            c.expr
        ))
    })?;
    match differs(&v, &w) {
        Some(how) => Err(TestCaseError::fail(format!(
            "simplify {} printed {t}: {how}",
            c.expr
        ))),
        None => Ok(()),
    }
}

/// 4. Simplifying the simplified text again keeps its value.
fn simplify_is_idempotent_in_value(c: &Case) -> Result<(), TestCaseError> {
    value_of_input(c)?;
    let t = simplify(c, &c.expr)?;
    // A T that does not evaluate is property 1's failure.
    let v = eval(c, &t).map_err(|e| TestCaseError::reject(format!("{t}: {e}")))?;
    let t2 = simplify(c, &t)?;
    let w = eval(c, &t2).map_err(|e| {
        TestCaseError::fail(format!(
            "simplify {} printed {t}; simplify {t} printed {t2}, which does not evaluate: {e}",
            c.expr
        ))
    })?;
    match differs(&v, &w) {
        Some(how) => Err(TestCaseError::fail(format!(
            "simplify {} printed {t}; simplify {t} printed {t2}: {how}",
            c.expr
        ))),
        None => Ok(()),
    }
}

/// A refusal jacob is allowed: none. Every derivative of these expressions, of any
/// shape by any variable (matrix-valued ones in `kron` form), must be answered.
fn refused(_code: i32, _err: &str) -> bool {
    false
}

/// `check` runs as a child process unless SHAPE_IN_PROCESS is set: a claim jacob
/// printed can crash it (`check "C*x" --wrt C --claim "kron(ones', I)"` overflows the
/// stack), which in-process would abort every test of this file.
fn isolate_check() -> bool {
    std::env::var_os("SHAPE_IN_PROCESS").is_none()
}

/// `check OF --wrt v --claim CLAIM` must agree; no valid point (the expression's domain
/// or a kink everywhere) discards the case.
fn check_claim(
    c: &Case,
    of: &str,
    wrt: &str,
    claim: &str,
    layout: &str,
    what: &str,
) -> Result<(), TestCaseError> {
    check_claim_with(c, of, wrt, claim, layout, what, &c.decls())
}

/// [`check_claim`] with declarations of its own.
fn check_claim_with(
    c: &Case,
    of: &str,
    wrt: &str,
    claim: &str,
    layout: &str,
    what: &str,
    decls: &[String],
) -> Result<(), TestCaseError> {
    if hunt_skips()
        .iter()
        .any(|k| k.strip_prefix("claim:").is_some_and(|k| claim.contains(k)))
    {
        return Err(TestCaseError::reject(format!("a known failure: {claim}")));
    }
    let seed = c.seed.to_string();
    let args = [
        "check", of, "--wrt", wrt, "--claim", claim, "--seed", &seed, "--layout", layout,
    ];
    let (code, out, err) = run_as(isolate_check(), &args, decls);
    if code == 2 && (err.contains("no valid point") || err.contains("no point found")) {
        return Err(TestCaseError::reject(format!("check {of}: {err}")));
    }
    if code != 0 {
        let decls: String = decls.iter().map(|d| format!(" {d}")).collect();
        return Err(TestCaseError::fail(format!(
            "{what} printed {claim}, and `check {of:?} --wrt {wrt} --claim {claim:?} --seed {seed} \
             --layout {layout}{decls}` exits {code}:\n{}{}",
            out.trim_end(),
            err.trim_end()
        )));
    }
    Ok(())
}

/// 2. `diff E --wrt v` prints D that agrees with finite differences (read back by `check`).
fn diff_is_right(c: &Case, wrt: &str) -> Result<(), TestCaseError> {
    let args = ["diff", c.expr.as_str(), "--wrt", wrt, "--layout", c.layout];
    let (code, out, err) = run(&args, &c.decls());
    if refused(code, &err) {
        return Ok(());
    }
    if code != 0 {
        return Err(TestCaseError::fail(format!(
            "diff {} --wrt {wrt} exits {code}: {}",
            c.expr,
            err.trim_end()
        )));
    }
    let d = out.trim();
    let what = format!("diff {} --wrt {} --layout {}", c.expr, wrt, c.layout);
    check_claim(c, &c.expr, wrt, d, c.layout, &what)
}

fn diff_by_every_variable(c: &Case) -> Result<(), TestCaseError> {
    value_of_input(c)?;
    for v in &c.vars {
        diff_is_right(c, v)?;
    }
    Ok(())
}

/// 3. `hess E --wrt v` is the Jacobian of `diff E --wrt v`.
fn hess_is_jacobian_of_gradient(c: &Case, wrt: &str) -> Result<(), TestCaseError> {
    let (code, out, err) = run(&["hess", &c.expr, "--wrt", wrt], &c.decls());
    if refused(code, &err) {
        return Ok(());
    }
    if code != 0 {
        return Err(TestCaseError::fail(format!(
            "hess {} --wrt {wrt} exits {code}: {}",
            c.expr,
            err.trim_end()
        )));
    }
    let h = out.trim().to_string();
    let (code, out, err) = run(&["diff", &c.expr, "--wrt", wrt], &c.decls());
    if code != 0 {
        return Err(TestCaseError::fail(format!(
            "hess {} --wrt {wrt} works, but diff exits {code}: {}",
            c.expr,
            err.trim_end()
        )));
    }
    let g = out.trim().to_string();
    let what = format!("hess {} --wrt {} (gradient {g})", c.expr, wrt);
    let words: Vec<&str> = g
        .split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
        .collect();
    if !words.contains(&wrt) {
        // A gradient without the variable is constant: the Hessian is a zero of the
        // variable's length squared.
        let len = SYMBOLS
            .iter()
            .find(|(s, _)| *s == wrt)
            .map_or(1, |(_, t)| t.shape(c.n, c.m).0);
        let value =
            eval(c, &h).map_err(|e| TestCaseError::fail(format!("{what} printed {h}: {e}")))?;
        if value.shape != (len, len) || value.entries.iter().any(|v| *v != 0.0) {
            return Err(TestCaseError::fail(format!(
                "{what} printed {h} = {value}, but the gradient is constant in {wrt}"
            )));
        }
        return Ok(());
    }
    // Read alone, the gradient must keep the sizes the expression gave its symbols.
    let mut decls = c.decls();
    for (name, ty) in SYMBOLS {
        if words.contains(&name) && !matches!(ty, Ty::S) {
            let (r, k) = ty.shape(c.n, c.m);
            decls.push("--dim".into());
            decls.push(format!("{name}={r}x{k}"));
        }
    }
    check_claim_with(c, &g, wrt, &h, "mixed", &what, &decls)
}

/// The variables `hess` takes: scalars and vectors.
fn hess_variables(c: &Case) -> Vec<&'static str> {
    c.vars
        .iter()
        .copied()
        .filter(|v| {
            SYMBOLS
                .iter()
                .any(|(s, t)| s == v && matches!(t, Ty::S | Ty::N | Ty::M))
        })
        .collect()
}

fn hess_by_every_variable(c: &Case) -> Result<(), TestCaseError> {
    value_of_input(c)?;
    for v in hess_variables(c) {
        hess_is_jacobian_of_gradient(c, v)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Strategies for cases

const DEPTH: usize = 3;

/// Sizes n ≠ m from 2..=5.
fn sizes() -> impl Strategy<Value = (usize, usize)> {
    (2usize..=5, 1usize..=3).prop_map(|(n, d)| (n, 2 + (n - 2 + d) % 4))
}

fn cases(types: &'static [Ty], layouts: &'static [&'static str]) -> impl Strategy<Value = Case> {
    let l = levels(DEPTH);
    let typed: Vec<BoxedStrategy<(Ty, E)>> = types
        .iter()
        .map(|&t| l.e(t).prop_map(move |e| (t, e)).boxed())
        .collect();
    (
        Union::new(typed),
        sizes(),
        any::<u64>(),
        proptest::sample::select(layouts.to_vec()),
    )
        .prop_map(|((t, e), (n, m), seed, layout)| Case::new(Some(t), &e, n, m, seed, layout))
}

fn all_cases() -> impl Strategy<Value = Case> {
    cases(&TYPES, &["mixed"])
}

fn diff_cases() -> impl Strategy<Value = Case> {
    cases(&TYPES, &["mixed", "mixed", "mixed", "numerator"])
}

fn scalar_cases() -> impl Strategy<Value = Case> {
    cases(&[Ty::S], &["mixed"])
}

/// `cases` unless PROPTEST_CASES says otherwise.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        max_global_rejects: 20 * cases + 1000,
        max_shrink_iters: 2000,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(1000))]

    /// Property 1.
    #[test]
    fn simplify_prints_text_with_the_shape_and_value_of_its_input(c in all_cases()) {
        simplify_keeps_shape_and_value(&c)?;
    }
}

proptest! {
    #![proptest_config(config(500))]

    /// Property 4.
    #[test]
    fn simplifying_twice_keeps_the_value(c in all_cases()) {
        simplify_is_idempotent_in_value(&c)?;
    }
}

proptest! {
    #![proptest_config(config(500))]

    /// Property 2.
    #[test]
    fn derivatives_agree_with_finite_differences(c in diff_cases()) {
        diff_by_every_variable(&c)?;
    }
}

proptest! {
    #![proptest_config(config(300))]

    /// Property 3.
    #[test]
    fn hessians_are_jacobians_of_gradients(c in scalar_cases()) {
        hess_by_every_variable(&c)?;
    }
}

// ---------------------------------------------------------------------------------------
// The case file

const CASE_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/shape_cases.tsv");

/// Sizes and seeds every case-file line is replayed at.
const REPLAY_AT: [(usize, usize, u64); 2] = [(3, 4, 1), (4, 2, 7)];

/// One line of the case file: command, expression, variable (or empty), extra flags.
fn replay_line(line: &str) -> Result<(), String> {
    let cols: Vec<&str> = line.split('\t').collect();
    let [command, expr, wrt, flags] = cols[..] else {
        return Err("a case line has four tab-separated columns".into());
    };
    let flags: Vec<&str> = flags.split_whitespace().collect();
    let layout = flags
        .iter()
        .position(|f| *f == "--layout")
        .and_then(|i| flags.get(i + 1))
        .copied()
        .unwrap_or("mixed");
    let layout: &'static str = ["mixed", "numerator", "denominator"]
        .into_iter()
        .find(|l| *l == layout)
        .ok_or(format!("unknown layout {layout}"))?;
    for (n, m, seed) in REPLAY_AT {
        let mut c = Case {
            ty: None,
            tree: None,
            expr: expr.to_string(),
            vars: Vec::new(),
            n,
            m,
            seed,
            layout,
        };
        // `decls` declares S symmetric where S occurs.
        if flags.contains(&"S")
            || expr
                .split(|ch: char| !ch.is_alphanumeric())
                .any(|w| w == "S")
        {
            c.vars.push("S");
        }
        let result = match command {
            "simplify" => simplify_keeps_shape_and_value(&c)
                .and_then(|()| simplify_is_idempotent_in_value(&c)),
            "diff" => value_of_input(&c).and_then(|_| diff_is_right(&c, wrt)),
            "hess" => value_of_input(&c).and_then(|_| hess_is_jacobian_of_gradient(&c, wrt)),
            other => return Err(format!("unknown command {other}")),
        };
        match result {
            Ok(()) => {}
            Err(TestCaseError::Reject(why)) => {
                return Err(format!("the case cannot be replayed (n={n}, m={m}): {why}"));
            }
            Err(TestCaseError::Fail(why)) => {
                return Err(format!("(n={n}, m={m}, seed={seed}) {why}"));
            }
        }
    }
    Ok(())
}

/// Every case the properties have found, replayed through the same checks.
#[test]
fn replay_shape_cases() {
    let text = std::fs::read_to_string(CASE_FILE).expect("tests/data/shape_cases.tsv");
    let mut failures = Vec::new();
    let mut count = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        count += 1;
        if let Err(e) = replay_line(line) {
            failures.push(format!("line {}: {line:?}\n  {e}", i + 1));
        }
    }
    assert!(count > 0, "the case file has cases");
    assert!(
        failures.is_empty(),
        "{} of {count} cases fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Hunting for distinct failures

/// Runs `test` on `cases` cases of `strategy`, shrinks every failure, and returns the
/// distinct minimal failures with their messages.
fn hunt_one<S: Strategy<Value = Case>>(
    strategy: S,
    cases: usize,
    seed: u64,
    test: impl Fn(&Case) -> Result<(), TestCaseError>,
) -> Vec<(Case, String)> {
    let config = ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let mut found: Vec<(Case, String)> = Vec::new();
    let known = |why: &str| hunt_skips().iter().any(|s| why.contains(s.as_str()));
    let without = std::env::var("SHAPE_HUNT_WITHOUT").unwrap_or_default();
    let left_out = |c: &Case| {
        without
            .split(',')
            .any(|f| c.tree.as_ref().is_some_and(|e| e.has(f)))
    };
    let fails = |c: &Case| {
        if left_out(c) {
            return None;
        }
        match test(c) {
            Err(TestCaseError::Fail(why)) if !known(why.message()) => Some(why.to_string()),
            _ => None,
        }
    };
    for _ in 0..cases {
        let Ok(mut tree) = strategy.new_tree(&mut runner) else {
            continue;
        };
        let Some(mut why) = fails(&tree.current()) else {
            continue;
        };
        let mut last = tree.current();
        let mut steps = 0;
        if tree.simplify() {
            while steps < 500 {
                steps += 1;
                let cur = tree.current();
                if let Some(w) = fails(&cur) {
                    last = cur;
                    why = w;
                    if !tree.simplify() {
                        break;
                    }
                } else if !tree.complicate() {
                    break;
                }
            }
        }
        if !found.iter().any(|(c, _)| c.expr == last.expr) {
            eprintln!("found: {last:?}\n  {why}");
            found.push((last, why));
        }
    }
    found
}

/// Failures already known, for `hunt`: SHAPE_HUNT_SKIP, `|`-separated substrings of
/// their messages; `claim:TEXT` skips running `check` on a claim containing TEXT.
fn hunt_skips() -> &'static [String] {
    static SKIPS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    SKIPS.get_or_init(|| {
        std::env::var("SHAPE_HUNT_SKIP")
            .unwrap_or_default()
            .split('|')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    })
}

/// For hunting the derivatives' own failures: rejects a case whose expression
/// `simplify` already gets wrong (`check` simplifies it before anything else).
fn clean(c: &Case) -> Result<(), TestCaseError> {
    simplify_keeps_shape_and_value(c)
        .map_err(|e| TestCaseError::reject(format!("simplify fails first: {e}")))
}

/// Not a test: a search for failures, run by hand (see the top of the file).
#[test]
#[ignore]
fn hunt() {
    ISOLATE_ALL.store(true, std::sync::atomic::Ordering::Relaxed);
    let cases = std::env::var("SHAPE_HUNT_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let seed = std::env::var("SHAPE_HUNT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let only = std::env::var("SHAPE_HUNT_ONLY").unwrap_or_default();
    let mut lines = Vec::new();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|o| o == name);
    if wanted("simplify") {
        for (c, why) in hunt_one(all_cases(), cases, seed, simplify_keeps_shape_and_value) {
            lines.push(format!(
                "simplify\t{}\t\t{}\t# {why}",
                c.expr,
                c.decls().join(" ")
            ));
        }
    }
    if wanted("twice") {
        for (c, why) in hunt_one(all_cases(), cases, seed, simplify_is_idempotent_in_value) {
            lines.push(format!(
                "simplify\t{}\t\t{}\t# {why}",
                c.expr,
                c.decls().join(" ")
            ));
        }
    }
    if wanted("diff") {
        let test = |c: &Case| {
            clean(c)?;
            for v in &c.vars {
                diff_is_right(c, v).map_err(|e| match e {
                    TestCaseError::Fail(w) => TestCaseError::fail(format!("[wrt {v}] {w}")),
                    r => r,
                })?;
            }
            Ok(())
        };
        for (c, why) in hunt_one(diff_cases(), cases, seed, test) {
            let mut flags = c.decls();
            if c.layout != "mixed" {
                flags.extend(["--layout".into(), c.layout.into()]);
            }
            lines.push(format!("diff\t{}\t?\t{}\t# {why}", c.expr, flags.join(" ")));
        }
    }
    if wanted("hess") {
        let test = |c: &Case| {
            clean(c)?;
            for v in hess_variables(c) {
                hess_is_jacobian_of_gradient(c, v).map_err(|e| match e {
                    TestCaseError::Fail(w) => TestCaseError::fail(format!("[wrt {v}] {w}")),
                    r => r,
                })?;
            }
            Ok(())
        };
        for (c, why) in hunt_one(scalar_cases(), cases, seed, test) {
            lines.push(format!(
                "hess\t{}\t?\t{}\t# {why}",
                c.expr,
                c.decls().join(" ")
            ));
        }
    }
    eprintln!("{} distinct failures:", lines.len());
    for l in lines {
        eprintln!("{}", l.replace('\n', " | "));
    }
}

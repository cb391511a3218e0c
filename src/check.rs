//! `jacob check` as a library function: compares a derivative (jacob's own, or a
//! claim) with central finite differences at seeded random points and returns a
//! [`CheckReport`]; the command line formats it.
//!
//! Both sides are brought to the numerator Jacobian ∂vec(f)/∂vec(V), numel(f)×numel(V),
//! column-major, so that one comparison serves every layout of SPEC §2.

use crate::diff::{self, Layout, Rank};
use crate::error::{Error, ExprError, Span};
use crate::eval::{self, Env, EvalError};
use crate::graph::{Graph, Id, Kind, Symbol};
use crate::numeric::{self, Draw};
use crate::parse;
use crate::pipeline::{self, Declarations};
use crate::print;
use crate::shape::{Dim, DimNames, Shape};
use nalgebra::DMatrix;

/// Failed draws of one point before switching to positive values (SPD matrices).
const SWITCH_TO_POSITIVE: usize = 8;
/// Failed draws of one point before giving up.
const MAX_TRIES: usize = 50;
/// Points closer than this to a kink (relu, abs, …) are re-drawn.
const KINK_MARGIN: f64 = 1e-3;
/// Absolute tolerance: the noise of central differences.
const TOL_ABS: f64 = 1e-6;
/// Above this many entries in the variable, compare along random directions.
const MAX_ENTRIES_FD: usize = 60;
/// How many random directions.
const DIRECTIONS: usize = 8;
/// The most points `--points` may ask for.
const MAX_POINTS: usize = 1000;
/// The most entries a symbol's random value may have.
const MAX_SYMBOL_ENTRIES: usize = 1_000_000;
/// The most entries of the Jacobian compared at a point.
const MAX_JACOBIAN_ENTRIES: usize = 20_000_000;

/// What to check: `jacob check TEXT --wrt WRT [--claim CLAIM] …`.
#[derive(Clone, Debug)]
pub struct CheckRequest<'a> {
    /// The expression, as the user typed it.
    pub text: &'a str,
    /// Declared kinds and sizes.
    pub decls: &'a Declarations,
    /// The variable.
    pub wrt: &'a str,
    /// The layout of the derivative (a differential has none: [`Layout::Mixed`]).
    pub layout: Layout,
    /// Check the differential along random directions dX instead of the Jacobian.
    pub differential: bool,
    /// A derivative to check instead of jacob's own; one that uses dX is a differential.
    pub claim: Option<&'a str>,
    /// How many random points (1 to 1,000).
    pub points: usize,
    /// Relative tolerance.
    pub tol: f64,
    /// Seed for the random sizes and points.
    pub seed: u64,
}

/// The comparison at one point.
#[derive(Clone, Debug)]
pub struct PointResult {
    /// The sizes drawn, by the names `jacob shape` gives them.
    pub sizes: Vec<(String, usize)>,
    /// The largest absolute difference from finite differences.
    pub abs: f64,
    /// The largest relative difference.
    pub rel: f64,
    /// Within the tolerance.
    pub agrees: bool,
    /// The derivative could not be evaluated where the expression could.
    pub error: Option<String>,
    /// The symmetrized derivative agrees (for a symmetric variable).
    sym_agrees: bool,
}

/// The derivative that was checked, as jacob prints it.
#[derive(Clone, Debug)]
pub struct Checked {
    /// Text (the claim as written, or jacob's derivative).
    pub text: String,
    /// LaTeX.
    pub latex: String,
    /// Its shape, each size a number or a name as `jacob shape` gives it.
    pub shape: [String; 2],
}

/// What `check` found.
#[derive(Clone, Debug)]
pub struct CheckReport {
    /// The derivative agrees with finite differences at every point.
    pub agrees: bool,
    /// The claim as written, or jacob's derivative: what was compared.
    pub checked: String,
    /// The derivative compared, printed (`None` for a claim of the wrong shape).
    pub derivative: Option<Checked>,
    /// jacob's own derivative, when a claim was checked and jacob has one.
    pub own: Option<String>,
    /// The layout.
    pub layout: Layout,
    /// A differential was checked.
    pub differential: bool,
    /// One result per point, in order.
    pub points: Vec<PointResult>,
    /// For a claim of the wrong shape (a disagreement, no point evaluated): why.
    pub wrong_shape: Option<String>,
    /// Other layouts in which a disagreeing claim agrees.
    pub agrees_in_layouts: Vec<&'static str>,
    /// Notes for the user, in order.
    pub notes: Vec<String>,
}

/// How jacob forms its own derivative of the expression as written: simplify, then
/// differentiate (the same pipeline as `jacob diff`).
pub(crate) type Derive = dyn Fn(&mut Graph, Id, Symbol, Layout) -> Result<Id, diff::DiffError>;

/// jacob's own derivative: the simplified expression, differentiated.
pub(crate) fn derive(
    g: &mut Graph,
    f: Id,
    var: Symbol,
    layout: Layout,
) -> Result<Id, diff::DiffError> {
    let simplified = g.simplify(f, false);
    diff::derivative(g, simplified, var, layout)
}

/// Checks a derivative against finite differences of the expression as written.
pub fn check(req: &CheckRequest) -> Result<CheckReport, Error> {
    check_with(req, &derive)
}

/// Checks a derivative, with jacob's own formed by `own_derivative`: nothing in the
/// comparison goes through it, so a planted bug in it shows as a disagreement.
pub(crate) fn check_with(
    req: &CheckRequest,
    own_derivative: &Derive,
) -> Result<CheckReport, Error> {
    let mut report = check_in(req, own_derivative)?;
    // A claim that disagrees may be right in another layout: say which.
    if !report.agrees && req.claim.is_some() && !req.differential {
        for other in [Layout::Mixed, Layout::Numerator, Layout::Denominator] {
            if other == req.layout {
                continue;
            }
            let there = CheckRequest {
                layout: other,
                ..req.clone()
            };
            if check_in(&there, own_derivative).is_ok_and(|r| r.agrees) {
                report.agrees_in_layouts.push(other.name());
            }
        }
        if let Some(first) = report.agrees_in_layouts.first() {
            let layouts = match report.agrees_in_layouts.as_slice() {
                [one] => format!("{one} layout"),
                more => format!("{} layouts", more.join(" and ")),
            };
            report.notes.insert(
                0,
                format!("the claim matches finite differences in {layouts}: add --layout {first}"),
            );
        }
    }
    Ok(report)
}

/// One check in the layout `req.layout`.
fn check_in(req: &CheckRequest, own_derivative: &Derive) -> Result<CheckReport, Error> {
    if !(1..=MAX_POINTS).contains(&req.points) {
        return Err(Error::Usage(format!(
            "--points must be from 1 to {MAX_POINTS}"
        )));
    }
    if !(req.tol.is_finite() && req.tol >= 0.0) {
        return Err(Error::Usage(format!(
            "--tol {} must be a number ≥ 0",
            req.tol
        )));
    }
    let text = req.text;
    let mut g = Graph::new();
    let parsed = pipeline::parse_text(&mut g, req.decls, text)?;
    let mut notes = pipeline::kind_notes(&parsed);
    let var = pipeline::variable(&g, &parsed, text, req.wrt)?;
    // The reference is the expression as written, not as simplified: a bug in the
    // simplifier must show up as a disagreement, never be endorsed.
    let f = parsed.root;
    let layout = req.layout;
    // A differential: asked for, or a claim that uses dX (SPEC §5).
    let dname = format!("d{}", g.symbol(var).name);
    let differential =
        req.differential || req.claim.is_some_and(|c| find_word(c, &dname).is_some());
    let dx = if differential {
        if layout != Layout::Mixed {
            return Err(Error::Usage(
                "a differential has no layout: check it without --layout".into(),
            ));
        }
        Some(diff::differential_symbol(&mut g, var).map_err(|e| Error::Usage(e.to_string()))?)
    } else {
        None
    };
    let own = if differential {
        let simplified = g.simplify(f, false);
        diff::differential_form(&mut g, simplified, var, false)
    } else {
        own_derivative(&mut g, f, var, layout)
    };
    let (d, expected, own_text) = match req.claim {
        None => {
            let d = own.map_err(|e| Error::Unsupported(e.to_string()))?;
            (d, g.shape(d), None)
        }
        Some(claim) => {
            let own = own.map(|d| (g.shape(d), print::text(&g, d)));
            // A differential has the expression's shape, whatever jacob makes of it.
            let own_shape = if differential {
                Some(g.shape(f))
            } else {
                own.as_ref().ok().map(|(s, _)| *s)
            };
            let own_text = own.as_ref().ok().map(|(_, t)| t.clone());
            let read = read_claim(&mut g, req.decls, claim, f, var, layout, own_shape);
            let (d, expected) = match (&own, read) {
                (_, Ok(read)) => read,
                // jacob's own error says more than "no expected shape".
                (Err(de), Err(ClaimError::NoShape)) => {
                    return Err(Error::Unsupported(de.to_string()));
                }
                (_, Err(ClaimError::NoShape)) => {
                    return Err(Error::Unsupported("this derivative".into()));
                }
                (_, Err(ClaimError::Input(e))) => return Err(e),
                // A claim of the wrong shape is a wrong derivative (SPEC §5).
                (_, Err(ClaimError::WrongShape(why))) => {
                    if let Some(t) = &own_text {
                        notes.push(format!("jacob's derivative is {t}"));
                    }
                    return Ok(CheckReport {
                        agrees: false,
                        checked: claim.trim().to_string(),
                        derivative: None,
                        own: own_text,
                        layout,
                        differential,
                        points: Vec::new(),
                        wrong_shape: Some(why),
                        agrees_in_layouts: Vec::new(),
                        notes,
                    });
                }
            };
            (d, expected, own_text)
        }
    };
    pipeline::folded(&g, text)?;
    let problem = Problem {
        g: &g,
        f,
        d,
        var,
        expected,
        layout,
        f_scalar: g.rank(f) == Rank::Scalar,
        v_scalar: g.symbol(var).kind == Kind::Scalar,
        symmetric: g.symbol(var).kind == Kind::Symmetric,
        tol: req.tol,
        differential: dx,
    };
    let mut rng = fastrand::Rng::with_seed(req.seed);
    let mut draw = Draw::Signed;
    let mut results: Vec<PointResult> = Vec::with_capacity(req.points);
    let mut last_error = String::new();
    for _ in 0..req.points {
        let mut failures = 0usize;
        loop {
            if failures >= MAX_TRIES {
                return Err(Error::Usage(format!(
                    "no point found where the expression and the derivative can both be evaluated ({MAX_TRIES} points and sizes tried; the last: {last_error}), so nothing was compared"
                )));
            }
            if failures >= SWITCH_TO_POSITIVE {
                draw = Draw::Positive;
            }
            let mut env = sample(&g, req.decls, &mut rng, draw)?;
            match problem.at(&mut env, &mut rng)? {
                Outcome::Point(r) => {
                    results.push(r);
                    break;
                }
                Outcome::Redraw(why) => {
                    failures += 1;
                    last_error = why;
                }
            }
        }
    }
    let agrees = results.iter().all(|r| r.agrees);
    let checked = match req.claim {
        Some(c) => c.trim().to_string(),
        None => print::text(&g, d),
    };
    if !agrees && req.claim.is_some() {
        if problem.symmetric && results.iter().all(|r| r.sym_agrees) {
            let (form, what) = if problem.f_scalar {
                ("(G + G')/2", "gradient")
            } else {
                ("averaged over the entries (i, j) and (j, i)", "Jacobian")
            };
            notes.push(format!(
                "the claim agrees once symmetrized, {form}: with respect to the symmetric matrix {}, jacob checks the symmetric {what}",
                g.symbol(var).name
            ));
        }
        if let Some(t) = &own_text {
            notes.push(format!("jacob's derivative is {t}"));
        }
    }
    Ok(CheckReport {
        agrees,
        checked,
        derivative: Some(Checked {
            text: print::text(&g, d),
            latex: crate::latex::latex(&g, d),
            shape: pipeline::shape_names(&g, g.shape(d)),
        }),
        own: own_text,
        layout,
        differential,
        points: results,
        wrong_shape: None,
        agrees_in_layouts: Vec::new(),
        notes,
    })
}

enum ClaimError {
    /// The expected shape of the derivative is not known (unsupported combination).
    NoShape,
    /// The claim's shape is not the derivative's: why, in words.
    WrongShape(String),
    /// The claim cannot be used.
    Input(Error),
}

impl From<Error> for ClaimError {
    fn from(e: Error) -> ClaimError {
        ClaimError::Input(e)
    }
}

/// Parses the claim into the expression's graph and fits its shape to the expected one.
fn read_claim(
    g: &mut Graph,
    decls: &Declarations,
    claim: &str,
    f: Id,
    var: Symbol,
    layout: Layout,
    own_shape: Option<Shape>,
) -> Result<(Id, Shape), ClaimError> {
    // The expression's sizes, named as `jacob shape` names them, with any --dim size:
    // the claim may not make two different sizes one (unless --dim makes them equal).
    let mut names = DimNames::default();
    let mut sizes = Env::default();
    let _ = numeric::apply_dims(g, &mut sizes, &decls.dims);
    let mut dims: Vec<(Dim, String, Option<usize>)> = Vec::new();
    for (_, info) in g.symbols() {
        for d in [info.shape.rows, info.shape.cols] {
            let d = g.dims.find(d);
            if d != Dim::One && g.dims.factors(d).is_none() && !dims.iter().any(|(e, ..)| *e == d) {
                dims.push((d, names.name(&g.dims, d), numeric::size_of(g, &sizes, d)));
            }
        }
    }
    let merged = |g: &Graph| -> Option<(String, String)> {
        dims.iter().enumerate().find_map(|(i, (a, na, sa))| {
            dims[i + 1..].iter().find_map(|(b, nb, sb)| {
                let same = g.dims.find(*a) == g.dims.find(*b);
                (same && !(sa.is_some() && sa == sb)).then(|| (na.clone(), nb.clone()))
            })
        })
    };
    let before = g.symbols().count();
    let parsed = parse::parse(claim, g, &decls.kinds).map_err(|e| Error::in_expr(e, claim))?;
    if let Some((_, info)) = g.symbols().nth(before) {
        let name = info.name.clone();
        let message = format!("the claim uses `{name}`, which does not appear in the expression");
        return Err(match find_word(claim, &name) {
            Some(span) => Error::in_expr(ExprError::new(message, span), claim),
            None => Error::Usage(message),
        }
        .into());
    }
    let expected = match own_shape {
        Some(s) => s,
        None => expected_shape(g, f, var, layout).ok_or(ClaimError::NoShape)?,
    };
    if let Some((a, b)) = merged(g) {
        return Err(ClaimError::WrongShape(format!(
            "it needs the sizes {a} and {b} to be equal, but the expression does not make them so (fix both with --dim to check at such sizes)"
        )));
    }
    let root = parsed.root;
    let got = g.shape(root);
    // `0` is a 1×1 zero that stands for a zero of any shape.
    if g.is_zero(root) && g.dims.is_scalar(got) {
        return Ok((root, expected));
    }
    let got_text = names.shape(&g.dims, got);
    let expected_text = names.shape(&g.dims, expected);
    let fits = g.dims.unify(got.rows, expected.rows) && g.dims.unify(got.cols, expected.cols);
    if !fits || merged(g).is_some() {
        let what = match g.rank(f) {
            Rank::Scalar => "a scalar",
            Rank::Vector => "a vector",
            Rank::Matrix => "a matrix",
        };
        let info = g.symbol(var);
        return Err(ClaimError::WrongShape(format!(
            "it is {got_text}, but the derivative of {what} by the {} {} ({} layout) is {expected_text}",
            info.kind.word(),
            info.name,
            layout.name()
        )));
    }
    Ok((root, expected))
}

/// The first place where `name` occurs as a whole word.
fn find_word(text: &str, name: &str) -> Option<Span> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(name).find_map(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + name.len()..].chars().next();
        (!before.is_some_and(is_word) && !after.is_some_and(is_word))
            .then(|| Span::new(i, i + name.len()))
    })
}

/// The shape of the derivative of `f` by `var` in `layout` (SPEC §2), or None where
/// jacob has no layout for it (a matrix by a vector or matrix).
fn expected_shape(g: &mut Graph, f: Id, var: Symbol, layout: Layout) -> Option<Shape> {
    let fs = g.shape(f);
    let v = g.sym(var);
    let vs = g.shape(v);
    let numerator_or_mixed = |s: Shape| {
        if layout == Layout::Denominator {
            s.t()
        } else {
            s
        }
    };
    Some(match (g.rank(f), g.rank(v)) {
        (Rank::Scalar, Rank::Scalar) => Shape::SCALAR,
        (Rank::Vector, Rank::Scalar) => numerator_or_mixed(fs),
        (Rank::Matrix, Rank::Scalar) => fs,
        (Rank::Scalar, _) => {
            if layout == Layout::Numerator {
                vs.t()
            } else {
                vs
            }
        }
        // ∂vec(F)/∂vec(X): entries of F by entries of X.
        _ => {
            let p = g.dims.product(fs.rows, fs.cols);
            let n = g.dims.product(vs.rows, vs.cols);
            numerator_or_mixed(Shape::new(p, n))
        }
    })
}

/// Sizes and random values for every symbol.
fn sample(
    g: &Graph,
    decls: &Declarations,
    rng: &mut fastrand::Rng,
    draw: Draw,
) -> Result<Env, Error> {
    let mut env = Env::default();
    numeric::apply_dims(g, &mut env, &decls.dims)?;
    numeric::choose_sizes(g, &mut env, rng);
    let symbols: Vec<Symbol> = g.symbols().map(|(s, _)| s).collect();
    for s in symbols {
        if let Some((r, c)) = numeric::numeric_shape(g, &env, g.symbol(s).shape)
            && r.saturating_mul(c) > MAX_SYMBOL_ENTRIES
        {
            return Err(Error::Usage(format!(
                "`{}` would be {r}×{c}, too large for check (at most {MAX_SYMBOL_ENTRIES} entries): give smaller sizes with --dim",
                g.symbol(s).name
            )));
        }
        let v = numeric::random_value(g, &env, s, rng, draw)?;
        env.values.insert(s, v);
    }
    Ok(env)
}

/// The sizes of the symbols' dimensions, named as `jacob shape` names them.
fn sizes(g: &Graph, env: &Env) -> Vec<(String, usize)> {
    let mut names = DimNames::default();
    let mut out: Vec<(String, usize)> = Vec::new();
    for (_, info) in g.symbols() {
        for d in [info.shape.rows, info.shape.cols] {
            let d = g.dims.find(d);
            if d == Dim::One || g.dims.factors(d).is_some() {
                continue;
            }
            let name = names.name(&g.dims, d);
            if let Some(n) = numeric::size_of(g, env, d)
                && !out.iter().any(|(m, _)| *m == name)
            {
                out.push((name, n));
            }
        }
    }
    out
}

/// True for evaluation errors that a different point may avoid.
fn redrawable(e: &EvalError) -> bool {
    matches!(
        e,
        EvalError::Domain(_)
            | EvalError::DivisionByZero
            | EvalError::Singular
            | EvalError::LogdetNotPositive
            | EvalError::NotFinite(_)
    )
}

enum Outcome {
    Point(PointResult),
    Redraw(String),
}

/// Everything fixed across points.
struct Problem<'a> {
    g: &'a Graph,
    f: Id,
    d: Id,
    var: Symbol,
    /// The symbolic shape of the derivative in `layout`.
    expected: Shape,
    layout: Layout,
    f_scalar: bool,
    v_scalar: bool,
    symmetric: bool,
    tol: f64,
    /// For a differential (`--form differential`, or a claim that uses dX): the symbol
    /// dX, which each direction of the finite differences is put into.
    differential: Option<Symbol>,
}

/// Where finite differences are taken: the variable's value, the directions (unit
/// vectors of vec(V), or random unit directions when V is large).
struct Directions {
    v0: DMatrix<f64>,
    directions: Vec<DMatrix<f64>>,
    unit: bool,
}

/// Evaluates one root; Ok(Err(message)) for a problem another point may avoid.
fn eval_one(g: &Graph, root: Id, env: &Env) -> Result<Result<DMatrix<f64>, String>, Error> {
    match eval::eval(g, &[root], env) {
        Ok(mut v) => match v.pop() {
            Some(m) if m.iter().all(|x| x.is_finite()) => Ok(Ok(m)),
            Some(_) => Ok(Err("a value is not a finite number".into())),
            None => Err(Error::Internal("nothing was evaluated".into())),
        },
        Err(e) if redrawable(&e) => Ok(Err(e.to_string())),
        Err(e) => Err(numeric::explain(g, e)),
    }
}

impl Problem<'_> {
    /// Compares at the point `env`, or says why the point is unusable.
    fn at(&self, env: &mut Env, rng: &mut fastrand::Rng) -> Result<Outcome, Error> {
        let g = self.g;
        let f0 = match eval_one(g, self.f, env)? {
            Ok(v) => v,
            Err(why) => return Ok(Outcome::Redraw(why)),
        };
        match eval::kink_distance(g, &[self.f], env) {
            Ok(k) if k < KINK_MARGIN => {
                return Ok(Outcome::Redraw(
                    "the point is too close to a kink (relu, abs, sign, step or norm1)".into(),
                ));
            }
            Ok(_) => {}
            Err(e) if redrawable(&e) => return Ok(Outcome::Redraw(e.to_string())),
            Err(e) => return Err(numeric::explain(g, e)),
        }
        let v0 = env
            .values
            .get(&self.var)
            .cloned()
            .ok_or_else(|| Error::Internal("the variable has no value".into()))?;
        let (vr, vc) = v0.shape();
        let nv = vr * vc;
        let nf = f0.len();
        if nf.saturating_mul(nv) > MAX_JACOBIAN_ENTRIES {
            return Err(Error::Usage(format!(
                "the Jacobian would be {nf}×{nv}, too large for check: give smaller sizes with --dim"
            )));
        }
        let sizes = sizes(g, env);

        // Directions: unit vectors of vec(V), or random unit directions when V is large.
        let directions: Vec<DMatrix<f64>> = if nv <= MAX_ENTRIES_FD {
            (0..nv)
                .map(|k| {
                    let (i, j) = (k % vr, k / vr);
                    let mut e = DMatrix::zeros(vr, vc);
                    e[(i, j)] = 1.0;
                    if self.symmetric && i != j {
                        e[(j, i)] = 1.0;
                    }
                    e
                })
                .collect()
        } else {
            (0..DIRECTIONS)
                .map(|_| {
                    let mut e = DMatrix::from_fn(vr, vc, |_, _| rng.f64() * 2.0 - 1.0);
                    if self.symmetric && vr == vc {
                        e = (&e + e.transpose()) * 0.5;
                    }
                    let norm = e.norm();
                    if norm > 0.0 { e / norm } else { e }
                })
                .collect()
        };
        let unit = nv <= MAX_ENTRIES_FD;
        let at = Directions {
            v0: v0.clone(),
            directions,
            unit,
        };
        let (jn, noise) = match self.differences(env, &at, 1.0)? {
            Ok(d) => d,
            Err(why) => return Ok(Outcome::Redraw(why)),
        };
        if jn.iter().any(|x| !x.is_finite()) {
            return Ok(Outcome::Redraw("the finite differences overflowed".into()));
        }

        let failed = |why: String| PointResult {
            sizes: sizes.clone(),
            abs: f64::INFINITY,
            rel: f64::INFINITY,
            agrees: false,
            error: Some(why),
            sym_agrees: false,
        };
        // A derivative that cannot be evaluated where the expression can, or that has
        // the wrong shape, disagrees.
        // A derivative that cannot be evaluated at this point (an inverse of a matrix
        // that is singular at these sizes, as A*X*B is when A has fewer columns than
        // rows) says nothing about whether it is right: draw the point, and the sizes,
        // again.
        let dv = match eval::eval(g, &[self.d], env) {
            Ok(mut v) => match v.pop() {
                Some(m) if m.iter().all(|x| x.is_finite()) => m,
                _ => {
                    return Ok(Outcome::Redraw(
                        "the derivative is not a finite number there".into(),
                    ));
                }
            },
            Err(e @ EvalError::Internal(_)) => return Ok(Outcome::Point(failed(e.to_string()))),
            Err(e) if redrawable(&e) => {
                return Ok(Outcome::Redraw(format!(
                    "the derivative cannot be evaluated there: {e}"
                )));
            }
            Err(e) => return Err(numeric::explain(g, e)),
        };
        if let Some(dx) = self.differential {
            let mut out = self.compare_differential(env, dx, &at, &jn, sizes, noise)?;
            if let Outcome::Point(r) = &mut out
                && !r.agrees
                && r.error.is_none()
            {
                let bound = TOL_ABS + self.tol * jn.amax() + noise;
                r.agrees = self.within_noise(env, &at, &jn, r.abs, bound)?;
            }
            return Ok(out);
        }
        let full = match self.numerator_jacobian(env, dv, nf, nv)? {
            Ok(j) => j,
            Err(why) => return Ok(Outcome::Point(failed(why))),
        };
        // With respect to a symmetric matrix the derivative must be the symmetric one,
        // J(I + K)/2 with K the commutation matrix (SPEC §2): the finite differences
        // perturb symmetrically, which measures exactly that. A derivative that agrees
        // only once symmetrized is noted.
        let square = self.symmetric && vr == vc && vr > 1;
        let symmetrized = |mut js: DMatrix<f64>| -> DMatrix<f64> {
            for j in 0..vc {
                for i in 0..j {
                    let (a, b) = (i + j * vr, j + i * vr);
                    let avg = (js.column(a) + js.column(b)) * 0.5;
                    js.set_column(a, &avg);
                    js.set_column(b, &avg);
                }
            }
            js
        };
        let project = |js: &DMatrix<f64>| -> DMatrix<f64> {
            if unit {
                js.clone()
            } else {
                let mut out = DMatrix::zeros(nf, at.directions.len());
                for (k, e) in at.directions.iter().enumerate() {
                    let col = js * DMatrix::from_column_slice(nv, 1, e.as_slice());
                    out.set_column(k, &col.column(0));
                }
                out
            }
        };
        let size = jn.amax();
        let error = |js: &DMatrix<f64>| {
            let e = (js - &jn).amax();
            if e.is_finite() { e } else { f64::INFINITY }
        };
        let bound = TOL_ABS + self.tol * size + noise;
        let mut abs = error(&project(&full));
        let mut sym_agrees = false;
        if square {
            let sym = symmetrized(full.clone());
            if !unit {
                // Random symmetric directions cannot see the part that is not symmetric:
                // measure it directly, as the entrywise comparison would.
                abs = abs.max((&full - &sym).amax());
            }
            sym_agrees = error(&project(&sym)) <= bound;
        }
        let agrees = self.within_noise(env, &at, &jn, abs, bound)?;
        Ok(Outcome::Point(PointResult {
            sizes,
            abs,
            rel: abs / size.max(1e-12),
            agrees,
            error: None,
            sym_agrees,
        }))
    }

    /// Central differences of f along each direction, as columns, with a step `step`
    /// times the usual, and an estimate of their rounding error (a value of size |f| is
    /// known to about ε|f|, so its central difference to about ε|f|/h); `Err` with why
    /// the point is unusable.
    fn differences(
        &self,
        env: &mut Env,
        at: &Directions,
        step: f64,
    ) -> Result<Result<(DMatrix<f64>, f64), String>, Error> {
        let g = self.g;
        let (v0, directions, unit) = (&at.v0, &at.directions, at.unit);
        let (vr, _) = v0.shape();
        let scale = v0.amax().max(1.0);
        let mut jn: Option<DMatrix<f64>> = None;
        let mut noise = 0.0f64;
        for (k, e) in directions.iter().enumerate() {
            let h = step
                * if unit {
                    1e-6 * v0[k].abs().max(1.0)
                } else {
                    1e-6 * scale
                };
            env.values.insert(self.var, v0 + e * h);
            let plus = eval_one(g, self.f, env)?;
            env.values.insert(self.var, v0 - e * h);
            let minus = eval_one(g, self.f, env)?;
            env.values.insert(self.var, v0.clone());
            let (plus, minus) = match (plus, minus) {
                (Ok(p), Ok(m)) if p.len() == m.len() => (p, m),
                (Err(why), _) | (_, Err(why)) => {
                    return Ok(Err(format!("{why} (next to the point)")));
                }
                _ => {
                    return Err(Error::Internal(
                        "the expression changed shape under a small change".into(),
                    ));
                }
            };
            let nf = plus.len();
            let jn = jn.get_or_insert_with(|| DMatrix::zeros(nf, directions.len()));
            if jn.nrows() != nf {
                return Err(Error::Internal(
                    "the expression changed shape under a small change".into(),
                ));
            }
            let (i, j) = (k % vr.max(1), k / vr.max(1));
            let half = if unit && self.symmetric && i != j {
                0.5
            } else {
                1.0
            };
            for r in 0..nf {
                jn[(r, k)] = (plus[r] - minus[r]) / (2.0 * h) * half;
                let magnitude = plus[r].abs().max(minus[r].abs());
                noise = noise.max(4.0 * f64::EPSILON * magnitude / (2.0 * h) * half);
            }
        }
        Ok(Ok((jn.unwrap_or_else(|| DMatrix::zeros(0, 0)), noise)))
    }

    /// Where the derivative is off by `abs` (more than the bound), a second set of
    /// differences with a step four times as large: if the two sets differ by as much,
    /// the differences cannot tell, and the point does not count against the derivative.
    fn within_noise(
        &self,
        env: &mut Env,
        at: &Directions,
        jn: &DMatrix<f64>,
        abs: f64,
        bound: f64,
    ) -> Result<bool, Error> {
        if abs <= bound {
            return Ok(true);
        }
        let Ok((wide, _)) = self.differences(env, at, 4.0)? else {
            return Ok(false);
        };
        if wide.shape() != jn.shape() {
            return Ok(false);
        }
        let spread = (&wide - jn).amax();
        Ok(spread.is_finite() && abs <= bound + 2.0 * spread)
    }

    /// A differential against the finite differences: dF with dX set to each direction.
    fn compare_differential(
        &self,
        env: &mut Env,
        dx: Symbol,
        at: &Directions,
        jn: &DMatrix<f64>,
        sizes: Vec<(String, usize)>,
        noise: f64,
    ) -> Result<Outcome, Error> {
        let g = self.g;
        let (directions, unit, vr) = (&at.directions, at.unit, at.v0.nrows());
        let nf = jn.nrows();
        let mut js = DMatrix::zeros(nf, directions.len());
        for (k, e) in directions.iter().enumerate() {
            env.values.insert(dx, e.clone());
            let v = match eval::eval(g, &[self.d], env) {
                Ok(mut v) => v.pop().unwrap_or_else(|| DMatrix::zeros(0, 0)),
                Err(e) if redrawable(&e) => {
                    return Ok(Outcome::Redraw(format!(
                        "the differential cannot be evaluated there: {e}"
                    )));
                }
                Err(e @ EvalError::Internal(_)) => {
                    return Ok(Outcome::Point(PointResult {
                        sizes,
                        abs: f64::INFINITY,
                        rel: f64::INFINITY,
                        agrees: false,
                        error: Some(e.to_string()),
                        sym_agrees: false,
                    }));
                }
                Err(e) => return Err(numeric::explain(g, e)),
            };
            // A claim `0` stands for the zero of any shape.
            let v = if v.shape() == (1, 1) && nf != 1 && g.is_zero(self.d) {
                DMatrix::zeros(nf, 1)
            } else {
                v
            };
            if v.len() != nf {
                return Ok(Outcome::Point(PointResult {
                    sizes,
                    abs: f64::INFINITY,
                    rel: f64::INFINITY,
                    agrees: false,
                    error: Some(format!(
                        "the differential evaluates to a {}×{} matrix, but the expression has {nf} entries",
                        v.nrows(),
                        v.ncols()
                    )),
                    sym_agrees: false,
                }));
            }
            let (i, j) = (k % vr.max(1), k / vr.max(1));
            let half = if unit && self.symmetric && i != j {
                0.5
            } else {
                1.0
            };
            for r in 0..nf {
                js[(r, k)] = v[r] * half;
            }
        }
        let size = jn.amax();
        let abs = (&js - jn).amax();
        let abs = if abs.is_finite() { abs } else { f64::INFINITY };
        let agrees = abs <= TOL_ABS + self.tol * size + noise;
        Ok(Outcome::Point(PointResult {
            sizes,
            abs,
            rel: abs / size.max(1e-12),
            agrees,
            error: None,
            sym_agrees: false,
        }))
    }

    /// The derivative's value as the numerator Jacobian ∂vec(f)/∂vec(V), nf×nv; an
    /// error message (a disagreement) when its shape is not the derivative's.
    fn numerator_jacobian(
        &self,
        env: &Env,
        dv: DMatrix<f64>,
        nf: usize,
        nv: usize,
    ) -> Result<Result<DMatrix<f64>, String>, Error> {
        let g = self.g;
        let (er, ec) = numeric::numeric_shape(g, env, self.expected).ok_or_else(|| {
            Error::Usage("the size of the derivative is not known: give sizes with --dim".into())
        })?;
        // A claim `0` stands for the zero of any shape; nothing else is broadcast.
        let dv = if dv.shape() == (1, 1) && (er, ec) != (1, 1) && g.is_zero(self.d) {
            DMatrix::from_element(er, ec, dv[(0, 0)])
        } else {
            dv
        };
        if dv.shape() != (er, ec) {
            return Ok(Err(format!(
                "the derivative evaluates to a {}×{} matrix, but a {er}×{ec} one was expected",
                dv.nrows(),
                dv.ncols()
            )));
        }
        let js = if self.f_scalar || self.v_scalar {
            let m = if self.f_scalar && !self.v_scalar && self.layout == Layout::Numerator {
                dv.transpose()
            } else {
                dv
            };
            if m.len() != nf * nv {
                None
            } else {
                Some(DMatrix::from_column_slice(nf, nv, m.as_slice()))
            }
        } else {
            let m = if self.layout == Layout::Denominator {
                dv.transpose()
            } else {
                dv
            };
            (m.shape() == (nf, nv)).then_some(m)
        };
        Ok(js.ok_or_else(|| {
            format!(
                "the derivative evaluates to {er}×{ec} entries, which do not form the {nf}×{nv} Jacobian"
            )
        }))
    }
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::*;
    use crate::cli::{CheckArgs, CommonArgs, Config, LayoutArg};
    use crate::run::{self, Answer};
    use serde_json::json;

    fn args(expr: &str, wrt: &str) -> CheckArgs {
        CheckArgs {
            common: CommonArgs {
                expr: expr.into(),
                ..CommonArgs::default()
            },
            wrt: wrt.into(),
            ..CheckArgs::default()
        }
    }

    fn config(a: &CheckArgs) -> Result<Config, Error> {
        crate::cli::Command::Check(a.clone()).config()
    }

    fn go(a: &CheckArgs) -> Result<Answer, Error> {
        run::check(a, &config(a)?, &a.common.expr)
    }

    fn agrees(a: &CheckArgs) -> Answer {
        let ans = go(a).unwrap_or_else(|e| panic!("{}: {e}", a.common.expr));
        assert!(!ans.disagrees, "{}:\n{}", a.common.expr, ans.out);
        let last = ans.out.lines().last().unwrap_or_default();
        assert!(last.starts_with("agrees: "), "{}", ans.out);
        assert!(!ans.out.contains("NaN"), "{}", ans.out);
        ans
    }

    fn own(expr: &str, wrt: &str) -> Answer {
        agrees(&args(expr, wrt))
    }

    fn claim(expr: &str, wrt: &str, c: &str) -> CheckArgs {
        let mut a = args(expr, wrt);
        a.claim = Some(c.into());
        a
    }

    fn disagrees(a: &CheckArgs) -> Answer {
        let ans = go(a).unwrap_or_else(|e| panic!("{}: {e}", a.common.expr));
        assert!(ans.disagrees, "{}:\n{}", a.common.expr, ans.out);
        let last = ans.out.lines().last().unwrap_or_default();
        assert!(last.starts_with("disagrees: "), "{}", ans.out);
        ans
    }

    /// jacob's pipeline with a bug planted after simplifying: every identity becomes the
    /// scalar 1 and every size the number 1, the kind of bug a simplifier that loses
    /// shapes has.
    fn planted(g: &mut Graph, f: Id, var: Symbol, layout: Layout) -> Result<Id, diff::DiffError> {
        let d = derive(g, f, var, layout)?;
        let mut map: std::collections::HashMap<Id, Id> = std::collections::HashMap::new();
        for old in g.reachable(&[d]) {
            let node = g.node(old).clone();
            let new = match node {
                crate::graph::Node::Identity(_) | crate::graph::Node::Size(_) => g.num(1.0),
                _ => {
                    let kids: Vec<Id> = node.children().iter().map(|c| map[c]).collect();
                    g.rebuild(&node, &kids, old)
                }
            };
            map.insert(old, new);
        }
        Ok(map[&d])
    }

    #[test]
    fn check_catches_a_planted_simplifier_bug() {
        for (e, v) in [
            ("c'*(A*inv(A) + X)*x", "x"),
            ("alpha*sum(x - x + 1)", "alpha"),
            ("alpha*tr(I + A - A)", "alpha"),
            ("tr(B + norm1(u)*I)", "u"),
        ] {
            let decls = Declarations::default();
            let req = CheckRequest {
                text: e,
                decls: &decls,
                wrt: v,
                layout: Layout::Mixed,
                differential: false,
                claim: None,
                points: 3,
                tol: 1e-5,
                seed: 1,
            };
            let planted = check_with(&req, &planted).unwrap();
            assert!(
                !planted.agrees,
                "{e}: the planted bug was endorsed: {:?}",
                planted.points
            );
            own(e, v);
        }
    }

    #[test]
    fn claims_are_read_as_written() {
        // The old simplifier turned A*inv(A) into the scalar 1, which broadcasts.
        disagrees(&claim("c'*(A*inv(A) + X)*x", "x", "(1 + X')*c"));
        agrees(&claim("c'*(A*inv(A) + X)*x", "x", "(I + X')*c"));
        agrees(&claim("c'*(A*inv(A) + X)*x", "x", "(A*inv(A) + X')*c"));
        disagrees(&claim("alpha*sum(x - x + 1)", "alpha", "1"));
        agrees(&claim("alpha*sum(x - x + 1)", "alpha", "rows(x)"));
        let mut sym = claim("S'*x", "S", "kron(x', eye(rows(S)))");
        sym.common.symmetric = vec!["S".into()];
        let ans = disagrees(&sym);
        assert!(
            ans.notes.iter().any(|n| n.contains("once symmetrized")),
            "{:?}",
            ans.notes
        );
        sym.claim = Some("(kron(x', eye(rows(S))) + kron(eye(rows(S)), x'))/2".into());
        agrees(&sym);
    }

    #[test]
    fn check_own_derivatives() {
        for (e, v) in [
            ("A*x", "x"),
            ("x'*A*x", "x"),
            ("norm2(A*x - y)^2", "x"),
            ("a'*X*b", "X"),
            ("tr(X*A)", "X"),
            ("log(det(X))", "X"),
            ("softmax(x)", "x"),
            ("relu(B*x)", "x"),
            ("log(x)", "x"),
            ("sum(log(x))", "x"),
            ("sigmoid(W*x)", "x"),
            ("logsumexp(A*x)", "x"),
            ("inv(X)*b", "b"),
        ] {
            own(e, v);
        }
    }

    #[test]
    fn check_sizes_are_distinct_and_named() {
        let ans = own("A*x", "x");
        let first = ans.out.lines().next().unwrap_or_default();
        assert!(first.starts_with("point 1: max abs error "), "{first}");
        assert!(first.contains("(sizes n="), "{first}");
        assert!(first.contains(", m="), "{first}");
    }

    #[test]
    fn check_symmetric_layouts_and_scalars() {
        let mut a = args("x'*A*x", "x");
        a.common.symmetric = vec!["A".into()];
        agrees(&a);
        let mut a = args("x'*A*x", "x");
        a.layout = LayoutArg::Numerator;
        agrees(&a);
        let mut a = args("x'*A*x", "x");
        a.layout = LayoutArg::Denominator;
        agrees(&a);
        let mut a = args("a'*X*b", "X");
        a.layout = LayoutArg::Numerator;
        agrees(&a);
        let mut a = args("exp(t*x)", "t");
        a.common.scalar = vec!["t".into()];
        agrees(&a);
        let mut a = args("exp(t*X)", "t");
        a.common.scalar = vec!["t".into()];
        agrees(&a);
        let mut a = args("x'*S*x + tr(S*A)", "S");
        a.common.symmetric = vec!["S".into()];
        agrees(&a);
        let mut a = args("S*a", "S");
        a.common.symmetric = vec!["S".into()];
        agrees(&a);
        a.common.dim = vec!["S=9x9".into()];
        agrees(&a);
        let mut a = claim("a'*S*b", "S", "a*b'");
        a.common.symmetric = vec!["S".into()];
        let ans = disagrees(&a);
        assert!(
            ans.notes.iter().any(|n| n.contains("symmetrized")),
            "{:?}",
            ans.notes
        );
        a.common.dim = vec!["S=9x9".into()];
        disagrees(&a);
        a.claim = Some("(a*b' + b*a')/2".into());
        agrees(&a);
        let mut a = args("A*x", "x");
        a.layout = LayoutArg::Denominator;
        agrees(&a);
    }

    #[test]
    fn check_claims_accepted() {
        agrees(&claim("norm2(A*x - y)^2", "x", "2*A'*(A*x - y)"));
        agrees(&claim("x'*A*x", "x", "(A + A')*x"));
        agrees(&claim("a'*X*b", "X", "a*b'"));
        agrees(&claim("x'*x + 0*y'*y", "y", "0"));
        let mut a = claim("x'*A*x", "x", "2*A*x");
        a.common.symmetric = vec!["A".into()];
        agrees(&a);
        let mut a = claim("x'*A*x", "x", "x'*(A + A')");
        a.layout = LayoutArg::Numerator;
        agrees(&a);
    }

    #[test]
    fn check_claims_rejected() {
        let ans = disagrees(&claim("x'*A*x", "x", "2*A*x"));
        assert!(
            ans.notes
                .iter()
                .any(|n| n.starts_with("jacob's derivative is ")),
            "{:?}",
            ans.notes
        );
        // `b*a'` has the transposed shape; with a square X the shapes fit and the
        // numbers must catch the mistake.
        let mut a = claim("a'*X*b", "X", "b*a'");
        a.common.dim = vec!["X=4x4".into()];
        disagrees(&a);
        disagrees(&claim("norm2(A*x - y)^2", "x", "-2*A'*(A*x - y)"));
        disagrees(&claim("norm2(A*x - y)^2", "x", "A'*(A*x - y)"));
        let mut a = claim("A*x", "x", "A'");
        a.common.dim = vec!["A=4x4".into()];
        disagrees(&a);
    }

    #[test]
    fn check_wrong_shape_is_a_disagreement() {
        let ans = disagrees(&claim("a'*X*b", "X", "b*a'"));
        assert!(
            ans.out.contains("the wrong shape: it is")
                && ans.out.contains("by the matrix X (mixed layout) is"),
            "{}",
            ans.out
        );
        // A numerator-layout row where mixed layout wants a column: noted.
        let ans = disagrees(&claim("x'*A*x", "x", "x'*(A + A')"));
        assert!(ans.out.contains("it is 1×"), "{}", ans.out);
        assert_eq!(
            ans.notes.first().map(String::as_str),
            Some(
                "the claim matches finite differences in numerator layout: add --layout numerator"
            )
        );
        let ans = disagrees(&claim("A*x", "x", "A'"));
        assert!(
            ans.out.contains("it is m×n") && ans.out.contains("is n×m"),
            "{}",
            ans.out
        );
        assert!(
            ans.notes
                .iter()
                .any(|n| n.contains("in denominator layout")),
            "{:?}",
            ans.notes
        );
        // Wrong in every layout: no such note.
        let ans = disagrees(&claim("a'*X*b", "X", "X + X'"));
        assert!(ans.out.contains("to be equal"), "{}", ans.out);
        assert!(
            !ans.notes.iter().any(|n| n.contains("layout")),
            "{:?}",
            ans.notes
        );
        // Shapes that fit (X square) but numbers that match only in another layout.
        let mut a = claim("a'*X*b", "X", "b*a'");
        a.common.dim = vec!["X=4x4".into()];
        let ans = disagrees(&a);
        assert!(
            ans.notes.iter().any(|n| n.contains("numerator layout")),
            "{:?}",
            ans.notes
        );
        // A name the expression does not have is still an input error.
        let e = go(&claim("x'*A*x", "x", "A*z"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("`z`"), "{e}");
    }

    #[test]
    fn a_derivative_singular_at_some_sizes_is_checked_at_others() {
        // A*X*B is singular whenever A has more rows than columns or B more columns
        // than rows; jacob's derivative has inv(A*X*B). Those sizes are drawn again.
        let mut a = args("det(A*X*B)", "X");
        a.points = 12;
        let ans = agrees(&a);
        assert_eq!(ans.out.lines().count(), 13, "{}", ans.out);
        // Nowhere evaluable: an input error, not a disagreement.
        let e = go(&claim("x'*x", "x", "sqrt(-x.*x - 1)"))
            .err()
            .map(|e| (e.exit_code(), e.to_string()))
            .unwrap_or_default();
        assert_eq!(e.0, 2);
        assert!(e.1.contains("nothing was compared"), "{}", e.1);
    }

    #[test]
    fn check_json_and_exit_codes() {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut stdin = std::io::Cursor::new(Vec::new());
        let code = run::run(
            [
                "jacob", "check", "x'*A*x", "--wrt", "x", "--format", "json", "--points", "2",
            ],
            &mut stdin,
            &mut out,
            &mut err,
        );
        assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
        let j: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
        assert_eq!(j["agrees"], json!(true));
        assert_eq!(j["layout"], json!("mixed"));
        assert_eq!(j["points"].as_array().map(Vec::len), Some(2));
        assert!(j["points"][0]["sizes"]["n"].is_u64(), "{j}");
        assert!(j["claim"].is_null());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run::run(
            ["jacob", "check", "x'*A*x", "--wrt", "x", "--claim", "2*A*x"],
            &mut stdin,
            &mut out,
            &mut err,
        );
        assert_eq!(code, 1);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run::run(
            ["jacob", "check", "x'*A*x", "--wrt", "x", "--claim", "A"],
            &mut stdin,
            &mut out,
            &mut err,
        );
        assert_eq!(code, 1, "a claim of the wrong shape is a wrong derivative");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run::run(
            ["jacob", "check", "x'*A*x", "--wrt", "x", "--claim", "A*x"],
            &mut stdin,
            &mut out,
            &mut err,
        );
        assert_eq!(code, 1);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run::run(
            ["jacob", "check", "x'*A*x", "--wrt", "x", "--claim", "A*"],
            &mut stdin,
            &mut out,
            &mut err,
        );
        assert_eq!(code, 2, "a claim that cannot be read is an input error");
    }

    #[test]
    fn check_no_valid_point() {
        let e = go(&args("log(-exp(x))", "x"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.starts_with("no point found where"), "{e}");
    }

    #[test]
    fn check_large_variable_uses_directions() {
        let mut a = args("norm2(A*x - y)^2", "x");
        a.common.dim = vec!["x=70".into()];
        agrees(&a);
        let mut a = claim("norm2(A*x - y)^2", "x", "A'*(A*x - y)");
        a.common.dim = vec!["x=70".into()];
        disagrees(&a);
    }
}

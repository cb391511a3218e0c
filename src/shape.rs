//! Symbolic shapes: dimensions as union-find variables, unified as an expression is read.

use std::collections::HashMap;
use std::fmt;

/// One dimension of a shape: the constant 1, or a symbolic size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    /// The size 1 (scalars, the column count of a vector).
    One,
    /// A symbolic size, an index into [`Dims`].
    Var(u32),
}

/// The shape of a value: rows × columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    /// Number of rows.
    pub rows: Dim,
    /// Number of columns.
    pub cols: Dim,
}

impl Shape {
    /// The 1×1 shape of a scalar.
    pub const SCALAR: Shape = Shape {
        rows: Dim::One,
        cols: Dim::One,
    };

    /// A shape from its two dimensions.
    pub fn new(rows: Dim, cols: Dim) -> Shape {
        Shape { rows, cols }
    }

    /// The transposed shape.
    pub fn t(self) -> Shape {
        Shape::new(self.cols, self.rows)
    }
}

/// The most atoms a product is normalized over (see [`Dims::product`]).
const MAX_ATOMS: usize = 64;

/// The table of symbolic dimensions: union-find with "flexible" variables that may
/// still turn out to be 1 (the column count of `ones`), product dimensions
/// (`vec(A)` has m·n rows), and sizes written as numbers (`eye(3)`).
#[derive(Clone, Debug, Default)]
pub struct Dims {
    parent: Vec<u32>,
    flex: Vec<bool>,
    product_of: Vec<Option<(Dim, Dim)>>,
    /// Product dimensions by their sorted atoms.
    products: HashMap<Vec<Dim>, Dim>,
    /// The number a size was written as (`eye(3)`), on the representative.
    value: Vec<Option<u64>>,
    literals: HashMap<u64, Dim>,
}

impl Dims {
    /// A new symbolic size that is never 1.
    pub fn fresh(&mut self) -> Dim {
        self.push(false, None)
    }

    /// A new symbolic size that may still be unified with 1 (and defaults to 1).
    pub fn fresh_flex(&mut self) -> Dim {
        self.push(true, None)
    }

    fn push(&mut self, flex: bool, product: Option<(Dim, Dim)>) -> Dim {
        let idx = self.parent.len() as u32;
        self.parent.push(idx);
        self.flex.push(flex);
        self.product_of.push(product);
        self.value.push(None);
        Dim::Var(idx)
    }

    /// The size written as the number `n` (`eye(3)`): 1 is [`Dim::One`]; the same number
    /// is the same dimension.
    pub fn literal(&mut self, n: u64) -> Dim {
        if n == 1 {
            return Dim::One;
        }
        if let Some(&d) = self.literals.get(&n) {
            return self.find(d);
        }
        let d = self.push(false, None);
        if let Dim::Var(v) = d {
            self.value[v as usize] = Some(n);
        }
        self.literals.insert(n, d);
        d
    }

    /// The number a size was written as, if it was (`eye(3)` has rows 3).
    pub fn value(&self, d: Dim) -> Option<u64> {
        match self.find(d) {
            Dim::One => Some(1),
            Dim::Var(v) => self.value[v as usize],
        }
    }

    /// The size `a·b`. Sizes multiply in any order and grouping: m·n is n·m, and
    /// (m·n)·k is m·(n·k) (the columns of kron(x', I) and the rows of vec(A) must
    /// meet), so a product is stored by its sorted atoms.
    pub fn product(&mut self, a: Dim, b: Dim) -> Dim {
        let (a, b) = (self.find(a), self.find(b));
        match (a, b) {
            (Dim::One, d) | (d, Dim::One) => d,
            _ => {
                let mut atoms = self.atoms(a);
                atoms.extend(self.atoms(b));
                if atoms.len() > MAX_ATOMS {
                    // Past this many factors, a product is kept as it was formed.
                    let d = self.push(false, Some((a, b)));
                    return d;
                }
                atoms.sort_unstable();
                self.product_of_atoms(&atoms)
            }
        }
    }

    /// The sizes a product multiplies, none a product itself, in increasing order.
    pub fn atoms(&self, d: Dim) -> Vec<Dim> {
        let mut out = Vec::new();
        let mut stack = vec![d];
        let mut steps = 0usize;
        while let Some(d) = stack.pop() {
            steps += 1;
            if steps > 100_000 {
                break;
            }
            match self.find(d) {
                Dim::One => {}
                Dim::Var(v) => match self.product_of[v as usize] {
                    Some((a, b)) => stack.extend([a, b]),
                    None => out.push(Dim::Var(v)),
                },
            }
        }
        out.sort_unstable();
        out
    }

    /// The product of sorted atoms, built left to right and found again by its atoms.
    fn product_of_atoms(&mut self, atoms: &[Dim]) -> Dim {
        let mut acc = match atoms.first() {
            Some(&d) => d,
            None => return Dim::One,
        };
        for k in 2..=atoms.len() {
            let key = &atoms[..k];
            acc = match self.products.get(key) {
                Some(&d) => self.find(d),
                None => {
                    let d = self.push(false, Some((acc, atoms[k - 1])));
                    self.products.insert(key.to_vec(), d);
                    d
                }
            };
        }
        acc
    }

    /// The factors of a product dimension.
    pub fn factors(&self, d: Dim) -> Option<(Dim, Dim)> {
        match self.find(d) {
            Dim::Var(v) => self.product_of[v as usize],
            Dim::One => None,
        }
    }

    /// The representative of a dimension. Flexible variables still unbound count as
    /// themselves; use [`Dims::settle`] to default them to 1.
    pub fn find(&self, d: Dim) -> Dim {
        let Dim::Var(mut v) = d else {
            return Dim::One;
        };
        loop {
            let p = self.parent[v as usize];
            if p == v {
                return Dim::Var(v);
            }
            if p == u32::MAX {
                return Dim::One;
            }
            v = p;
        }
    }

    /// A shape with its dimensions replaced by their representatives.
    pub fn resolve(&self, s: Shape) -> Shape {
        Shape::new(self.find(s.rows), self.find(s.cols))
    }

    /// True for a size that may still turn out to be 1 (the column count of `ones`).
    pub fn is_flex(&self, d: Dim) -> bool {
        matches!(self.find(d), Dim::Var(v) if self.flex[v as usize])
    }

    /// Makes `a` and `b` the same size; false when they cannot be (a vector's length
    /// against 1, or two different products).
    pub fn unify(&mut self, a: Dim, b: Dim) -> bool {
        let (a, b) = (self.find(a), self.find(b));
        match (a, b) {
            _ if a == b => true,
            (Dim::One, Dim::Var(v)) | (Dim::Var(v), Dim::One) => {
                if self.product_of[v as usize].is_some() {
                    // a·b = 1 when a = b = 1.
                    let atoms = self.atoms(Dim::Var(v));
                    let ok = atoms.iter().all(|&d| self.unify(d, Dim::One));
                    if ok {
                        self.product_of[v as usize] = None;
                        self.parent[v as usize] = u32::MAX;
                    }
                    return ok;
                }
                if self.flex[v as usize] && self.value[v as usize].is_none() {
                    self.parent[v as usize] = u32::MAX;
                    true
                } else {
                    false
                }
            }
            (Dim::Var(x), Dim::Var(y)) => {
                let (vx, vy) = (self.value[x as usize], self.value[y as usize]);
                if let (Some(a), Some(b)) = (vx, vy)
                    && a != b
                {
                    return false;
                }
                // A product whose factors turned out to be 1 but one (`kron(ones', B)`
                // once `ones'` is known to be a row) is that factor.
                if self.collapse(x) || self.collapse(y) {
                    return self.unify(a, b);
                }
                let (px, py) = (self.product_of[x as usize], self.product_of[y as usize]);
                if px.is_some() || py.is_some() {
                    let (ax, ay) = (self.atoms(Dim::Var(x)), self.atoms(Dim::Var(y)));
                    // The atoms only one side has must meet: pairwise when there are as
                    // many, or be 1 where the other side has none left.
                    let (mut rx, mut ry) = (Vec::new(), ay.clone());
                    for d in ax {
                        match ry.iter().position(|&e| e == d) {
                            Some(i) => {
                                ry.remove(i);
                            }
                            None => rx.push(d),
                        }
                    }
                    let plain = px.is_none() || py.is_none();
                    let ok = if plain && !rx.is_empty() && !ry.is_empty() {
                        // A size that is not a product stands for the product (`q = k·p`).
                        true
                    } else if rx.len() == ry.len() {
                        rx.iter().zip(&ry).all(|(&p, &q)| self.unify(p, q))
                    } else if rx.is_empty() || ry.is_empty() {
                        rx.iter().chain(&ry).all(|&d| self.unify(d, Dim::One))
                    } else {
                        false
                    };
                    if !ok {
                        return false;
                    }
                    let (x, y) = (self.find(Dim::Var(x)), self.find(Dim::Var(y)));
                    if let (Dim::Var(x), Dim::Var(y)) = (x, y)
                        && x != y
                    {
                        let product = self.product_of[x as usize].or(self.product_of[y as usize]);
                        let (old, new) = if x < y { (x, y) } else { (y, x) };
                        self.link(old, new);
                        self.product_of[old as usize] = None;
                        // Still a product only if two atoms or more are left, none of
                        // them the size itself (`m = 1·m` is just m).
                        if let Some((p, q)) = product {
                            let mut atoms = self.atoms(p);
                            atoms.extend(self.atoms(q));
                            if atoms.len() >= 2 && !atoms.contains(&Dim::Var(old)) {
                                self.product_of[old as usize] = product;
                            }
                        }
                        self.value[old as usize] = vx.or(vy);
                        self.flex[old as usize] = false;
                    }
                    return true;
                }
                // The older variable stays the representative.
                let (old, new) = if x < y { (x, y) } else { (y, x) };
                let flex = self.flex[old as usize] && self.flex[new as usize];
                let product = px.or(py);
                self.link(old, new);
                self.flex[old as usize] = flex;
                self.product_of[old as usize] = product;
                self.value[old as usize] = vx.or(vy);
                true
            }
            (Dim::One, Dim::One) => true,
        }
    }

    /// Turns the product `v` whose atoms are now all 1 but one into that atom (or 1);
    /// true when it did.
    fn collapse(&mut self, v: u32) -> bool {
        if self.product_of[v as usize].is_none() {
            return false;
        }
        let atoms = self.atoms(Dim::Var(v));
        if atoms.len() > 1 {
            return false;
        }
        self.product_of[v as usize] = None;
        match atoms.first() {
            None => self.parent[v as usize] = u32::MAX,
            Some(&o) => {
                self.unify(Dim::Var(v), o);
            }
        }
        true
    }

    fn link(&mut self, x: u32, y: u32) {
        let (old, new) = if x < y { (x, y) } else { (y, x) };
        self.parent[new as usize] = old;
    }

    /// True when the shape is certainly 1×1.
    pub fn is_scalar(&self, s: Shape) -> bool {
        self.find(s.rows) == Dim::One && self.find(s.cols) == Dim::One
    }

    /// True when the shape is 1×1 or may still become 1×1.
    pub fn could_be_scalar(&self, s: Shape) -> bool {
        [s.rows, s.cols]
            .iter()
            .all(|&d| self.find(d) == Dim::One || self.is_flex(d))
    }

    /// True when the shape is a column n×1 (n not 1).
    pub fn is_column(&self, s: Shape) -> bool {
        self.find(s.cols) == Dim::One && self.find(s.rows) != Dim::One
    }

    /// True when the shape is a row 1×n (n not 1).
    pub fn is_row(&self, s: Shape) -> bool {
        self.find(s.rows) == Dim::One && self.find(s.cols) != Dim::One
    }

    /// Binds every flexible variable still free to 1.
    pub fn settle(&mut self) {
        for v in 0..self.parent.len() {
            if self.flex[v] && self.find(Dim::Var(v as u32)) == Dim::Var(v as u32) {
                self.parent[v] = u32::MAX;
            }
        }
    }

    /// Names for the symbolic sizes, in the order given: `n`, `m`, `k`, `p`, …
    pub fn namer(&self) -> DimNames {
        DimNames::default()
    }
}

/// Gives readable names to symbolic sizes in order of first use.
#[derive(Default, Debug, Clone)]
pub struct DimNames {
    names: HashMap<Dim, String>,
}

const DIM_LETTERS: [&str; 8] = ["n", "m", "k", "p", "q", "r", "s", "t"];

impl DimNames {
    /// The name of a dimension, naming it now if it has none yet.
    pub fn name(&mut self, dims: &Dims, d: Dim) -> String {
        let d = dims.find(d);
        if let Some(n) = dims.value(d) {
            return n.to_string();
        }
        if dims.factors(d).is_some() {
            let atoms = dims.atoms(d);
            let names: Vec<String> = atoms.iter().map(|&a| self.name(dims, a)).collect();
            return names.join("·");
        }
        let count = self.names.len();
        self.names
            .entry(d)
            .or_insert_with(|| match DIM_LETTERS.get(count) {
                Some(l) => l.to_string(),
                None => format!("n{}", count - DIM_LETTERS.len() + 1),
            })
            .clone()
    }

    /// `rows×cols`.
    pub fn shape(&mut self, dims: &Dims, s: Shape) -> String {
        let r = self.name(dims, s.rows);
        let c = self.name(dims, s.cols);
        format!("{r}×{c}")
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::One => write!(f, "1"),
            Dim::Var(v) => write!(f, "d{v}"),
        }
    }
}

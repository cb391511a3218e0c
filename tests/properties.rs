//! Property tests over random well-shaped expressions: printing then parsing gives the
//! same expression, simplifying never changes a value, and every derivative agrees
//! with finite differences.

use proptest::prelude::*;
mod common;
use common::jacob;

/// The shapes the generator knows, with n = 3 and m = 4 (distinct, so that a missing
/// transpose shows).
#[derive(Clone, Copy)]
enum Ty {
    S,
    N,
    M,
    Nm,
    Mn,
    Nn,
}

/// A random expression of a type: the seed picks every choice, so proptest can vary it.
fn random_expr(ty: Ty, depth: u32, rng: &mut fastrand::Rng) -> String {
    let leaf = depth == 0 || rng.u8(0..4) == 0;
    macro_rules! g {
        ($t:expr) => {
            operand(random_expr($t, depth.saturating_sub(1), rng))
        };
    }
    if leaf {
        return match ty {
            Ty::S => ["alpha", "beta", "2", "0.5"][rng.usize(0..4)].to_string(),
            Ty::N => "x".into(),
            Ty::M => "z".into(),
            Ty::Nm => "A".into(),
            Ty::Mn => "B".into(),
            Ty::Nn => "C".into(),
        };
    }
    match ty {
        Ty::S => match rng.usize(0..9) {
            0 => format!("sum({})", g!(Ty::N)),
            1 => format!("({})'*{}", g!(Ty::N), g!(Ty::N)),
            2 => format!("norm2({})^2", g!(Ty::M)),
            3 => format!("{}*{}", g!(Ty::S), g!(Ty::S)),
            4 => format!("({} + {})", g!(Ty::S), g!(Ty::S)),
            5 => format!("tanh({})", g!(Ty::S)),
            6 => format!("logsumexp({})", g!(Ty::N)),
            7 => format!("tr({})", g!(Ty::Nn)),
            _ => format!("({})'*{}*{}", g!(Ty::N), g!(Ty::Nm), g!(Ty::M)),
        },
        Ty::N => match rng.usize(0..10) {
            0 => format!("{}*{}", g!(Ty::Nm), g!(Ty::M)),
            1 => format!("{}*{}", g!(Ty::Nn), g!(Ty::N)),
            2 => format!("({} - 2*{})", g!(Ty::N), g!(Ty::N)),
            3 => format!("{}*{}", g!(Ty::S), g!(Ty::N)),
            4 => format!("{}.*{}", g!(Ty::N), g!(Ty::N)),
            5 => format!("tanh({})", g!(Ty::N)),
            6 => format!("sigmoid({})", g!(Ty::N)),
            7 => format!("softmax({})", g!(Ty::N)),
            8 => format!("({})'*{}", g!(Ty::Mn), g!(Ty::M)),
            _ => format!("-{}./(1 + {}.^2)", g!(Ty::N), g!(Ty::N)),
        },
        Ty::M => match rng.usize(0..4) {
            0 => format!("{}*{}", g!(Ty::Mn), g!(Ty::N)),
            1 => format!("({} + {})", g!(Ty::M), g!(Ty::M)),
            2 => format!("sin({})", g!(Ty::M)),
            _ => format!("({})'*{}", g!(Ty::Nm), g!(Ty::N)),
        },
        Ty::Nm => match rng.usize(0..4) {
            0 => format!("{}*{}", g!(Ty::Nn), g!(Ty::Nm)),
            1 => format!("{}*({})'", g!(Ty::N), g!(Ty::M)),
            2 => format!("({} + {})", g!(Ty::Nm), g!(Ty::Nm)),
            _ => format!("({})'", g!(Ty::Mn)),
        },
        Ty::Mn => match rng.usize(0..3) {
            0 => format!("({})'", g!(Ty::Nm)),
            1 => format!("{}*({})'", g!(Ty::M), g!(Ty::N)),
            _ => format!("{}*{}", g!(Ty::S), g!(Ty::Mn)),
        },
        Ty::Nn => match rng.usize(0..4) {
            0 => format!("{}*{}", g!(Ty::Nm), g!(Ty::Mn)),
            1 => format!("({})'", g!(Ty::Nn)),
            2 => format!("({} + {})", g!(Ty::Nn), g!(Ty::Nn)),
            _ => format!("{}*({})'", g!(Ty::N), g!(Ty::N)),
        },
    }
}

/// Wraps a composite expression in parentheses so that it combines as one operand.
fn operand(text: String) -> String {
    if text.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
        text
    } else {
        format!("({text})")
    }
}

fn expression(seed: u64, ty: Ty) -> String {
    let mut rng = fastrand::Rng::with_seed(seed);
    random_expr(ty, 3, &mut rng)
}

/// Values for every symbol the generator uses (n = 3, m = 4).
const SETS: [&str; 8] = [
    "--set=x=[0.3,-0.7,0.5]",
    "--set=z=[0.1,0.4,-0.2,0.9]",
    "--set=A=[[0.1,0.2,0.3,0.4],[0.5,-0.6,0.7,0.8],[0.9,1.0,-0.1,0.2]]",
    "--set=B=[[0.3,-0.1,0.2],[0.4,0.5,0.6],[-0.7,0.8,0.9],[0.1,0.2,0.3]]",
    "--set=C=[[0.5,0.1,0.2],[0.3,-0.4,0.6],[0.7,0.8,0.9]]",
    "--set=alpha=0.7",
    "--set=beta=-0.4",
    "--set=y=[0.2,0.1,-0.3]",
];

fn numbers(text: &str) -> Vec<f64> {
    text.split(|c: char| !(c.is_ascii_digit() || "-.e+".contains(c)))
        .filter_map(|t| t.parse().ok())
        .collect()
}

fn value(expr: &str) -> Option<Vec<f64>> {
    let mut args = vec!["eval", expr];
    args.extend(SETS);
    let (code, out, _) = jacob(&args);
    (code == 0).then(|| numbers(&out))
}

fn close(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= 1e-9 * (1.0 + x.abs().max(y.abs())))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// simplify → print → parse → simplify → print keeps the value, and the printed
    /// text has the value of the input.
    #[test]
    fn printing_reads_back_and_simplifying_keeps_the_value(seed in any::<u64>(), ty in 0usize..3) {
        let ty = [Ty::S, Ty::N, Ty::Nm][ty];
        let expr = expression(seed, ty);
        let (code, once, err) = jacob(&["simplify", &expr]);
        prop_assert_eq!(code, 0, "{}: {}", expr, err);
        let once = once.trim().to_string();
        let (code, twice, err) = jacob(&["simplify", &once]);
        prop_assert_eq!(code, 0, "{} → {}: {}", expr, once, err);
        // The printed form reads back; read back and printed again it keeps its value
        // (the text itself can still differ in the orientation of a 1×1 product).
        let twice = twice.trim().to_string();
        if let (Some(a), Some(b)) = (value(&once), value(&twice)) {
            prop_assert!(close(&a, &b), "{} = {:?}, but {} = {:?}", once, a, twice, b);
        }
        if let Some(before) = value(&expr) {
            let after = value(&once);
            // A zero vector or matrix keeps its shape: `zeros(rows(x))`, not `0`.
            prop_assert!(after.as_ref().is_some_and(|a| close(&before, a)), "{} = {:?}, but {} = {:?}", expr, before, once, after);
        }
    }

    /// Evaluating the expression as written and evaluating its simplified form, in one
    /// graph at the same values, give the same shape and numbers.
    #[test]
    fn simplified_evaluates_like_as_written(seed in any::<u64>(), ty in 0usize..3) {
        let ty = [Ty::S, Ty::N, Ty::Nm][ty];
        let expr = expression(seed, ty);
        let mut g = jacob::Graph::new();
        let parsed = jacob::parse(&expr, &mut g, &Default::default()).expect("generated input parses");
        let simplified = g.simplify(parsed.root, true);
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut env = jacob::Env::default();
        jacob::choose_sizes(&g, &mut env, &mut rng);
        let symbols: Vec<jacob::Symbol> = g.symbols().map(|(s, _)| s).collect();
        for s in symbols {
            let v = jacob::random_value(&g, &env, s, &mut rng, jacob::Draw::Signed).expect("sizes are known");
            env.values.insert(s, v);
        }
        if let Ok(before) = jacob::eval(&g, &[parsed.root], &env) {
            let after = jacob::eval(&g, &[simplified], &env);
            prop_assert!(after.is_ok(), "{}: the simplified form cannot be evaluated: {:?}", expr, after);
            let (a, b) = (&before[0], &after.unwrap()[0]);
            prop_assert_eq!(a.shape(), b.shape(), "{}", expr);
            prop_assert!(close(a.as_slice(), b.as_slice()), "{}: {} before, {} after", expr, a, b);
        }
    }

    /// jacob's derivative by x agrees with finite differences.
    #[test]
    fn derivatives_agree_with_finite_differences(seed in any::<u64>(), ty in 0usize..2) {
        let ty = [Ty::S, Ty::N][ty];
        let expr = expression(seed, ty);
        let (code, out, err) = jacob(&["check", &expr, "--wrt", "x", "--seed", &seed.to_string()]);
        // jacob may refuse a derivative it has no rule for yet, but never be wrong; an
        // expression without x has no derivative by x to check (exit 2).
        let refused = code == 2
            && err.contains("`x` is not a symbol of the expression");
        prop_assert!(code == 0 || refused, "check {} --wrt x: exit {}\n{}{}", expr, code, out, err);
    }
}

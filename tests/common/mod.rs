//! Helpers shared by the integration tests.

use std::io::Cursor;

/// Runs jacob in-process on `args`; returns (exit code, stdout, stderr).
pub fn jacob(args: &[&str]) -> (i32, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let argv = std::iter::once("jacob").chain(args.iter().copied());
    let code = jacob::run(argv, &mut Cursor::new(Vec::new()), &mut out, &mut err);
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

/// Evaluates `a` and `b`, each read alone with the declarations `decls`, at the same
/// random values of their symbols (drawn for `a`, at distinct random sizes); an error
/// naming both values when their shapes or values differ, or when `b` cannot be
/// evaluated where `a` can. Points where `a` has no value (a log of a negative entry)
/// are drawn again; if none is found, there is nothing to compare.
#[allow(dead_code)]
pub fn same_value(
    a: &str,
    b: &str,
    decls: &[(&str, jacob::Kind)],
    seed: u64,
) -> Result<(), String> {
    use jacob::{Draw, Env, Graph};
    let kinds: std::collections::HashMap<String, jacob::Kind> =
        decls.iter().map(|(n, k)| (n.to_string(), *k)).collect();
    let mut ga = Graph::new();
    let pa = jacob::parse(a, &mut ga, &kinds).map_err(|e| format!("{a}: {e}"))?;
    let mut gb = Graph::new();
    let pb = jacob::parse(b, &mut gb, &kinds).map_err(|e| format!("{b} (from {a}): {e}"))?;
    let mut rng = fastrand::Rng::with_seed(seed);
    for attempt in 0..20 {
        let draw = if attempt < 10 {
            Draw::Signed
        } else {
            Draw::Positive
        };
        let mut env = Env::default();
        jacob::choose_sizes(&ga, &mut env, &mut rng);
        let mut ok = true;
        let symbols: Vec<jacob::Symbol> = ga.symbols().map(|(s, _)| s).collect();
        for s in symbols {
            match jacob::random_value(&ga, &env, s, &mut rng, draw) {
                Ok(v) => {
                    env.values.insert(s, v);
                }
                Err(_) => ok = false,
            }
        }
        if !ok {
            return Ok(());
        }
        let Ok(va) = jacob::eval(&ga, &[pa.root], &env) else {
            continue;
        };
        // The same values, by name, for b; its sizes follow from them.
        let mut envb = Env::default();
        let bsyms: Vec<(jacob::Symbol, String)> =
            gb.symbols().map(|(s, i)| (s, i.name.clone())).collect();
        for (s, name) in bsyms {
            let Some(sa) = ga.lookup(&name) else {
                return Err(format!("{b} uses {name}, which {a} does not"));
            };
            let v = env.values[&sa].clone();
            let shape = gb.symbol(s).shape;
            for (d, n) in [(shape.rows, v.nrows()), (shape.cols, v.ncols())] {
                let d = gb.dims.find(d);
                if d == jacob::Dim::One {
                    if n != 1 {
                        return Err(format!("{b}: {name} is 1-wide there, {n} here"));
                    }
                    continue;
                }
                if let Some(&old) = envb.sizes.get(&d)
                    && old != n
                {
                    return Err(format!("{b}: the sizes of its symbols conflict"));
                }
                envb.sizes.insert(d, n);
            }
            envb.values.insert(s, v);
        }
        let vb = jacob::eval(&gb, &[pb.root], &envb).map_err(|e| {
            format!(
                "{b} cannot be evaluated where {a} can ({a} = {:?}): {e}",
                va[0]
            )
        })?;
        let (x, y) = (&va[0], &vb[0]);
        let close = x.shape() == y.shape()
            && x.iter()
                .zip(y.iter())
                .all(|(p, q)| (p - q).abs() <= 1e-8 * (1.0 + p.abs().max(q.abs())));
        return if close {
            Ok(())
        } else {
            Err(format!("{a} = {x:?}\nbut {b} = {y:?}"))
        };
    }
    Ok(())
}

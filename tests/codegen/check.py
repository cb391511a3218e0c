"""Runs jacob's generated NumPy and JAX modules and checks them three ways.

Called by tests/codegen.rs with a manifest (JSON) naming the jacob binary and, for each
case, the expression, its flags, the derivative texts jacob printed and the two
generated modules. For each case, at random values with distinct sizes:

1. the NumPy and JAX `value` and `value_and_grad` agree with `jacob eval` of the
   expression and of each printed derivative (the evaluator on nalgebra);
2. independently of jacob's differentiator and simplifier, each derivative agrees with
   JAX's own autodiff (`jax.jacobian`, `jax.hessian`) of the generated `value`, the
   expression as typed, brought to jacob's layout (vec stacks columns).

Prints one line per failure and exits 1 if there is any.
"""

import importlib.util
import inspect
import json
import multiprocessing
import re
import subprocess
import sys

import numpy as np

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402

RTOL = 1e-7
SIZES = [3, 4, 2, 5, 6, 7, 8, 9]


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_jacob(jacob, args):
    p = subprocess.run([jacob] + args, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def symbols_of(jacob, case):
    """The symbols' sizes, as `jacob shape` names them (numbers where --dim fixes them)."""
    code, out, err = run_jacob(jacob, ["shape", case["expr"], "--format", "json"] + case["flags"])
    if code != 0:
        raise RuntimeError(f"jacob shape failed: {err}")
    return json.loads(out)["symbols"]


def renamed(mod):
    """Parameter name -> symbol name, from the docstring's `(the symbol X of f)`."""
    names = {}
    for line in (mod.__doc__ or "").splitlines():
        m = re.match(r"\s+(\w+): .*\(the symbol (\w+) of f\)", line)
        if m:
            names[m.group(1)] = m.group(2)
    return names


def draw(rng, symbols, symmetric, positive, order):
    sizes = {}
    values = {}
    for name, (r, c) in symbols.items():
        dims = []
        for d in (r, c):
            if isinstance(d, int):
                dims.append(d)
            else:
                if d not in sizes:
                    sizes[d] = order[len(sizes) % len(order)]
                dims.append(sizes[d])
        r, c = dims
        if positive:
            v = rng.uniform(0.2, 1.2, size=(r, c))
        else:
            v = rng.uniform(-1.0, 1.0, size=(r, c))
        if r == c and r > 1:
            if name in symmetric:
                v = (v + v.T) / 2
            v = 0.5 * v + 1.5 * np.eye(r)
        values[name] = v
    return values


def set_flag(name, v):
    if v.shape == (1, 1):
        text = repr(float(v[0, 0]))
    elif v.shape[1] == 1:
        text = json.dumps([float(a) for a in v[:, 0]])
    else:
        text = json.dumps([[float(a) for a in row] for row in v])
    return ["--set", f"{name}={text}"]


def jacob_eval(jacob, text, flags, values):
    args = ["eval", text, "--format", "json"] + flags
    for name, v in values.items():
        args += set_flag(name, v)
    code, out, err = run_jacob(jacob, args)
    if code != 0:
        return None, err.strip()
    return np.array(json.loads(out)["value"], dtype=float), None


def argument(v, kind, library, flat):
    """A value as the generated code takes it: floats for scalars, columns for vectors
    (or, with `flat`, 1-D arrays, which the code reshapes)."""
    if v.shape == (1, 1) and kind == "scalar":
        return float(v[0, 0]) if library is np else jnp.float64(v[0, 0])
    if kind == "vector" and flat:
        return library.asarray(v[:, 0])
    return library.asarray(v)


def as_returned(want, flat):
    """A gradient by a vector passed as a 1-D array comes back 1-D (the docstring's
    convention); every other derivative keeps its shape."""
    want = np.asarray(want)
    if flat and want.ndim == 2 and want.shape[1] == 1 and want.shape[0] > 1:
        return want.reshape(-1)
    return want


def vec_jacobian(jac, fshape, xshape):
    """d vec(F)/d vec(X)' from an array of shape fshape + xshape (vec stacks columns)."""
    a = np.asarray(jac).reshape(tuple(fshape) + tuple(xshape))
    nf, nx = len(fshape), len(xshape)
    axes = list(reversed(range(nf))) + [nf + i for i in reversed(range(nx))]
    return a.transpose(axes).reshape(int(np.prod(fshape)), int(np.prod(xshape)))


def commutation(m, n):
    return np.eye(m * n)[[i + j * m for i in range(m) for j in range(n)]]


def reference(jac, fshape, xshape, layout, symmetric):
    """JAX's derivative of F by X, written as jacob writes it (SPEC §2)."""
    J = vec_jacobian(jac, fshape, xshape)
    if symmetric:
        n = xshape[0]
        J = J @ (np.eye(n * n) + commutation(n, n)) / 2
    if fshape == ():
        g = J.reshape(xshape, order="F") if xshape != () else J.reshape(())
        if layout == "mixed" or xshape == ():
            return g
        g = g.T
        return g if layout == "numerator" else g.T
    if xshape == ():
        t = J.reshape(fshape, order="F")
        return t
    return J if layout != "denominator" else J.T


def close(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size != b.size:
        return False, f"sizes {a.shape} and {b.shape}"
    if a.shape != b.shape and a.size == 1:
        a, b = a.reshape(()), b.reshape(())
    if a.shape != b.shape:
        return False, f"shapes {a.shape} and {b.shape}"
    scale = max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    if not np.all(np.isfinite(a)) or err > RTOL * scale:
        return False, f"max error {err:.3g} (scale {scale:.3g})"
    return True, ""


def check_case(jacob, case, rng):
    problems = []
    mods = {"numpy": load(case["numpy"], case["name"] + "_np"), "jax": load(case["jax"], case["name"] + "_jax")}
    symbols = symbols_of(jacob, case)
    symmetric = set(case["symmetric"])
    # A point where jacob computes the expression and every derivative: the first
    # draws use distinct sizes in a fixed order, later ones other orders (det(A*X*B)
    # needs A*X*B of full rank) and positive entries (log, sqrt).
    values, derivs, err = None, [], ""
    for attempt in range(12):
        order = SIZES if attempt < 2 else list(rng.permutation(SIZES))
        candidate = draw(rng, symbols, symmetric, attempt % 2 == 1, order)
        expected, err = jacob_eval(jacob, case["expr"], case["flags"], candidate)
        if expected is None or not np.all(np.isfinite(expected)):
            continue
        derivs = []
        for text in case["derivatives"]:
            d, err = jacob_eval(jacob, text, case["flags"], candidate)
            if d is None:
                break
            derivs.append(d)
        if len(derivs) == len(case["derivatives"]):
            values = candidate
            break
    if values is None:
        return [f"no point where jacob eval computes the expression and its derivatives: {err}"]

    params = list(inspect.signature(mods["numpy"].value).parameters)
    names = renamed(mods["numpy"])
    kinds = {}
    for p in params:
        sym = names.get(p, p)
        r, c = values[sym].shape
        declared = symbols[sym]
        kinds[p] = "scalar" if declared == [1, 1] else ("vector" if declared[1] == 1 else "matrix")

    results = {}
    for label, mod in mods.items():
        library = np if label == "numpy" else jnp
        flat = label == "numpy" and bool(rng.integers(2))
        args = [argument(values[names.get(p, p)], kinds[p], library, flat) for p in params]
        v = mod.value(*args)
        ok, why = close(v, expected)
        if not ok:
            problems.append(f"{label} value differs from jacob eval: {why}")
        if case["command"] == "simplify":
            continue
        value, ds = mod.value_and_grad(*args)
        ok, why = close(value, expected)
        if not ok:
            problems.append(f"{label} value_and_grad's value differs from jacob eval: {why}")
        if len(ds) != len(derivs):
            problems.append(f"{label}: {len(ds)} derivatives for {len(derivs)} variables")
            continue
        for var, d, want in zip(case["wrt"], ds, derivs):
            p = next(p for p in params if names.get(p, p) == var)
            want = as_returned(want, flat and kinds[p] == "vector")
            ok, why = close(d, want)
            if not ok:
                problems.append(f"{label} derivative by {var} differs from jacob eval: {why}")
        results[label] = (args, ds)

    if case["command"] == "simplify" or "jax" not in results:
        return problems
    # JAX's own derivative of the expression as typed.
    args, _ = results["jax"]
    numpy_args, ds = results["numpy"]
    fshape = tuple(np.shape(mods["jax"].value(*args)))
    for var, d in zip(case["wrt"], ds):
        p = next(p for p in params if names.get(p, p) == var)
        i = params.index(p)
        xshape = tuple(np.shape(args[i]))
        sym = var in symmetric
        if case["command"] == "hess":
            if sym:
                continue
            h = jax.jit(jax.hessian(mods["jax"].value, argnums=i))(*args)
            want = vec_jacobian(h, xshape, xshape) if xshape != () else np.asarray(h)
        else:
            jac = jax.jit(jax.jacobian(mods["jax"].value, argnums=i))(*args)
            want = reference(jac, fshape, xshape, case["layout"], sym)
        want = as_returned(want, np.ndim(numpy_args[i]) == 1)
        ok, why = close(d, want)
        if not ok:
            problems.append(f"derivative by {var} differs from JAX autodiff of the expression as typed: {why}")
    return problems


def check_chunk(job):
    """Checks some of the cases in one process; the lines of its failures."""
    jacob, cases, seed = job
    rng = np.random.default_rng(seed)
    lines = []
    for case in cases:
        try:
            problems = check_case(jacob, case, rng)
        except Exception as e:  # a generated module that does not run is a failure
            problems = [f"{type(e).__name__}: {e}"]
        for p in problems:
            lines.append(f"FAIL {case['name']}: jacob {case['command']} {case['expr']!r} {' '.join(case['args'])}: {p}")
    return lines


def main():
    manifest = json.load(open(sys.argv[1]))
    cases = manifest["cases"]
    # Two processes (compiling JAX functions takes most of the time); spawned, as JAX
    # does not survive a fork.
    workers = 2
    jobs = [(manifest["jacob"], cases[i::workers], 7 + i) for i in range(workers)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        lines = [line for chunk in pool.map(check_chunk, jobs) for line in chunk]
    for line in lines:
        print(line)
    print(f"{len(cases)} cases, {len(lines)} failures")
    sys.exit(1 if lines else 0)


if __name__ == "__main__":
    main()

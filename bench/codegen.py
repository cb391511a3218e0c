#!/usr/bin/env python3
"""Times the Python code jacob generates (`--format jax`, `--format numpy`) on the
scale families and prints a Markdown table.

For every case the script runs `jacob diff EXPR --wrt VARS --format jax` and
`--format numpy`, imports both modules from temporary files, and measures

  * JAX:   the generated `value_and_grad(*args)` (already under @jax.jit) against
           `jax.jit(jax.value_and_grad(value, argnums=...))(*args)` on the generated
           `value` (the expression as typed), i.e. what jax.grad does with the same
           function. Goal: generated / jax.grad <= 1.2.
  * NumPy: the generated `value_and_grad(*args)` against the generated `value(*args)`
           alone. Goal: gradient / value <= 4 (the cheap-gradient bound of reverse mode).

Families (the same as benches/families.rs), at depth N = 10 and 100, and the variables
differentiated by. All layer matrices would give up to 100 gradients per case; the
representative set is the first-layer matrix and the input, whose gradients need the
whole backward pass:
  affine chain     h'*h, h = AN*(...(A2*(A1*x + b1) + b2)...) + bN   by A1, x
  tanh network     c'*tanh(AN*...tanh(A1*x))                          by A1, x
  relu loss        norm2(relu(AN*...relu(A1*x)) - y)^2                by A1, x
  nested inverses  tr(inv(A1 + inv(A2 + ... inv(AN + X))))            by X
  quadratic forms  x'*A1*x + ... + x'*AN*x                            by x

Inputs: every size name in the generated module's docstring ("NAME: shape (n, m)")
gets the same number (--size, default 20), float64 throughout (jax_enable_x64).
Layer matrices are scaled so that values stay finite and gradients non-trivial at
depth 100: affine chain A_i orthogonal (QR of a Gaussian), b_i ~ 0.1 N(0, 1);
tanh network A_i ~ N(0, 1/n) (gain 1); relu loss A_i ~ N(0, 2/n) (He); nested
inverses A_i, X = I + 0.1 N(0, 1/n) (inv stays well conditioned); quadratic forms
A_i ~ N(0, 1/n). Vectors ~ N(0, 1). Seeded (numpy default_rng(0)).

Correctness is checked before timing, so that a wrong fast number is never reported:
the generated JAX and NumPy values and gradients must agree with jax.value_and_grad
of the generated JAX `value` to rtol 1e-6 (assert_allclose; atol = 1e-12 times the
largest entry of the reference, for entries that are zero up to rounding).

Timing: each callable is called once first (compilation for JAX; reported separately),
then timeit-style: the loop count is raised until one measurement takes >= 0.2 s, and
the median over --repeat measurements (7; 3 with --quick) is reported per call. The
measurements of the two sides of a ratio alternate, so that load from other processes
on a shared machine affects both alike. JAX results are waited for with
jax.block_until_ready on all leaves; inputs live on the device (jnp arrays) for JAX
and are numpy arrays for NumPy. BLAS and XLA run single threaded (OPENBLAS_NUM_THREADS=1, OMP_NUM_THREADS=1, MKL_NUM_THREADS=1, XLA_FLAGS=
--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1) unless those
variables are already set: on a small shared machine, threads only add noise.

Usage (a venv with numpy and jax):
    python3 bench/codegen.py [--jacob PATH] [--quick] [--size 20] [--depths 10,100]
        [--only FAMILY,...]
--jacob defaults to target/release/jacob relative to the repository root.
"""

import argparse
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

# One thread per BLAS call and per XLA kernel, unless the caller chose otherwise: on a
# small shared machine, multithreaded OpenBLAS/Eigen on 20x20..100x100 matrices only
# adds contention noise (spin-waiting threads), and it must hit both sides alike.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import numpy as np  # noqa: E402

import jax  # noqa: E402

# Before any module is imported or any array is made: full float64 precision.
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- expressions


def affine_chain(n):
    h = "x"
    for i in range(1, n + 1):
        h = f"A{i}*{h} + b{i}" if i == 1 else f"A{i}*({h}) + b{i}"
    return f"({h})'*({h})"


def tanh_network(n):
    h = "x"
    for i in range(1, n + 1):
        h = f"tanh(A{i}*{h})"
    return f"c'*{h}"


def relu_loss(n):
    h = "x"
    for i in range(1, n + 1):
        h = f"relu(A{i}*{h})"
    return f"norm2({h} - y)^2"


def nested_inverses(n):
    h = f"A{n} + X"
    for i in range(n - 1, 0, -1):
        h = f"A{i} + inv({h})"
    return f"tr(inv({h}))"


def quadratic_forms(n):
    return " + ".join(f"x'*A{i}*x" for i in range(1, n + 1))


# (name, expression builder, variables, how the square matrices are drawn)
FAMILIES = [
    ("affine_chain", affine_chain, ["A1", "x"], "orthogonal"),
    ("tanh_network", tanh_network, ["A1", "x"], "gain1"),
    ("relu_loss", relu_loss, ["A1", "x"], "he"),
    ("nested_inverses", nested_inverses, ["X"], "near_identity"),
    ("quadratic_forms", quadratic_forms, ["x"], "gain1"),
]


# ---------------------------------------------------------------- generated code


def generate(jacob, expr, wrt, fmt):
    """The module text `jacob diff EXPR --wrt WRT --format FMT` prints."""
    proc = subprocess.run(
        [jacob, "diff", expr, "--wrt", ",".join(wrt), "--format", fmt],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"jacob failed (exit {proc.returncode}) on --format {fmt} --wrt "
            f"{','.join(wrt)}:\n{proc.stderr}"
        )
    return proc.stdout


_counter = [0]


def load(source, tmpdir):
    """Imports module text from a temporary file."""
    _counter[0] += 1
    name = f"jacob_generated_{_counter[0]}"
    path = os.path.join(tmpdir, name + ".py")
    with open(path, "w") as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


SHAPE_LINE = re.compile(r"^\s+(\w+): shape \(([^)]*)\)\s*$")
SCALAR_LINE = re.compile(r"^\s+(\w+): (?:a scalar|scalar|a float|float)\b")


def argument_shapes(source):
    """[(name, shape tuple of size names or ints)] from the docstring's Arguments."""
    doc = source.split('"""')[1]
    args = []
    in_args = False
    for line in doc.splitlines():
        if line.startswith("Arguments"):
            in_args = True
            continue
        if in_args:
            m = SHAPE_LINE.match(line)
            if m:
                dims = tuple(d.strip() for d in m.group(2).split(",") if d.strip())
                args.append((m.group(1), dims))
                continue
            m = SCALAR_LINE.match(line)
            if m:
                args.append((m.group(1), ()))
                continue
            if line.strip():
                break
    if not args:
        raise SystemExit("cannot find the argument shapes in the generated docstring")
    return args


def make_args(shapes, kind, size, rng):
    """Numpy arrays for the arguments, in the module's parameter order."""
    out = []
    for name, dims in shapes:
        shape = tuple(int(d) if d.isdigit() else size for d in dims)
        if shape == ():
            out.append(float(rng.standard_normal()))
            continue
        rows, cols = shape
        if cols == 1 and not re.fullmatch(r"[A-Z]\w*", name):
            v = rng.standard_normal((rows, 1))
            out.append(0.1 * v if name.startswith("b") else v)
            continue
        g = rng.standard_normal(shape)
        if kind == "near_identity" and rows == cols:
            m = np.eye(rows) + 0.1 * g / np.sqrt(rows)
        elif kind == "orthogonal" and rows == cols:
            q, r = np.linalg.qr(g)
            m = q * np.sign(np.diag(r))
        elif kind == "he":
            m = g * np.sqrt(2.0 / cols)
        else:
            m = g / np.sqrt(cols)
        out.append(m)
    return out


# ---------------------------------------------------------------- timing


def calibrate(fn, target=0.2):
    """The loop count (doubled or scaled up) for which one measurement takes >= target."""
    loops = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        dt = time.perf_counter() - t0
        if dt >= target:
            return loops
        loops *= 2 if dt <= 0 else max(2, min(10, int(target / dt * 1.2) + 1))


def measure_pair(f, g, repeat, target=0.2):
    """Median seconds per call of f and of g, timeit-style; the measurements of f and g
    alternate, so that load on a shared machine hits both alike."""
    loops = [calibrate(f, target), calibrate(g, target)]
    times = ([], [])
    for _ in range(repeat):
        for k, fn in enumerate((f, g)):
            t0 = time.perf_counter()
            for _ in range(loops[k]):
                fn()
            times[k].append((time.perf_counter() - t0) / loops[k])
    return statistics.median(times[0]), statistics.median(times[1])


def first_call(fn):
    """Seconds for the first call (compilation included for JAX)."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def check_close(what, got, ref):
    ref = np.asarray(ref)
    got = np.asarray(got)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}"
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    np.testing.assert_allclose(
        got, ref, rtol=1e-6, atol=1e-12 * scale, err_msg=what
    )


# ---------------------------------------------------------------- one case


def run_case(jacob, name, build, wrt, kind, depth, size, repeat, tmpdir):
    expr = build(depth)
    jax_src = generate(jacob, expr, wrt, "jax")
    np_src = generate(jacob, expr, wrt, "numpy")
    jmod = load(jax_src, tmpdir)
    nmod = load(np_src, tmpdir)

    shapes = argument_shapes(jax_src)
    assert [a for a, _ in shapes] == [a for a, _ in argument_shapes(np_src)]
    assert [a for a, _ in shapes[: len(wrt)]] == wrt, (shapes, wrt)
    rng = np.random.default_rng(0)
    np_args = make_args(shapes, kind, size, rng)
    jx_args = [jnp.asarray(a) if isinstance(a, np.ndarray) else a for a in np_args]
    argnums = tuple(range(len(wrt)))

    gen = jmod.value_and_grad
    ref = jax.jit(jax.value_and_grad(jmod.value, argnums=argnums))

    def run_gen():
        return jax.block_until_ready(gen(*jx_args))

    def run_ref():
        return jax.block_until_ready(ref(*jx_args))

    compile_gen = first_call(run_gen)
    compile_ref = first_call(run_ref)

    # Correctness before any timing.
    ref_val, ref_grads = run_ref()
    gen_val, gen_grads = run_gen()
    np_val, np_grads = nmod.value_and_grad(*np_args)
    np_only = nmod.value(*np_args)
    label = f"{name} N={depth}"
    assert np.all(np.isfinite(np.asarray(ref_val))), f"{label}: non-finite value"
    check_close(f"{label}: JAX value", gen_val, ref_val)
    check_close(f"{label}: NumPy value", np_val, ref_val)
    check_close(f"{label}: NumPy value()", np_only, ref_val)
    assert len(gen_grads) == len(wrt) and len(np_grads) == len(wrt)
    for v, g, n, r in zip(wrt, gen_grads, np_grads, ref_grads):
        assert np.all(np.isfinite(np.asarray(r))), f"{label}: non-finite grad {v}"
        assert np.max(np.abs(np.asarray(r))) > 0, f"{label}: zero gradient by {v}"
        check_close(f"{label}: JAX grad by {v}", g, r)
        check_close(f"{label}: NumPy grad by {v}", n, r)

    t_gen, t_ref = measure_pair(run_gen, run_ref, repeat)
    t_npg, t_npv = measure_pair(
        lambda: nmod.value_and_grad(*np_args), lambda: nmod.value(*np_args), repeat
    )
    return {
        "family": name,
        "N": depth,
        "wrt": ",".join(wrt),
        "jax_gen": t_gen,
        "jax_ref": t_ref,
        "np_grad": t_npg,
        "np_val": t_npv,
        "compile_gen": compile_gen,
        "compile_ref": compile_ref,
    }


# ---------------------------------------------------------------- main


def main():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--jacob",
        default=os.path.join(REPO, "target", "release", "jacob"),
        help="the jacob binary (default: target/release/jacob in the repository)",
    )
    p.add_argument("--quick", action="store_true", help="3 repeats instead of 7")
    p.add_argument("--repeat", type=int, default=None, help="repeats per measurement")
    p.add_argument("--size", type=int, default=20, help="every dimension (default 20)")
    p.add_argument("--depths", default="10,100", help="depths N (default 10,100)")
    p.add_argument("--only", default="", help="comma-separated family names")
    a = p.parse_args()
    if not os.access(a.jacob, os.X_OK):
        raise SystemExit(f"no jacob binary at {a.jacob} (cargo build --release)")
    repeat = a.repeat or (3 if a.quick else 7)
    depths = [int(d) for d in a.depths.split(",")]
    only = set(filter(None, a.only.split(",")))

    rows = []
    with tempfile.TemporaryDirectory() as tmpdir:
        for name, build, wrt, kind in FAMILIES:
            if only and name not in only:
                continue
            for depth in depths:
                print(f"# {name} N={depth} ...", file=sys.stderr, flush=True)
                rows.append(
                    run_case(a.jacob, name, build, wrt, kind, depth, a.size, repeat, tmpdir)
                )

    ms = lambda s: f"{s * 1e3:.3f}"  # noqa: E731
    print(
        f"All dimensions {a.size}, float64; median of {repeat} measurements of >= 0.2 s; "
        f"jax {jax.__version__} (backend {jax.default_backend()}), numpy {np.__version__}, "
        f"{os.cpu_count()} cores (shared), OPENBLAS_NUM_THREADS="
        f"{os.environ.get('OPENBLAS_NUM_THREADS')}, XLA_FLAGS={os.environ.get('XLA_FLAGS')!r}.\n"
    )
    print(
        "| family | N | by | JAX generated (ms) | jax.grad (ms) | ratio (goal <= 1.2) "
        "| NumPy grad (ms) | NumPy value (ms) | ratio (goal <= 4) |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        jr = r["jax_gen"] / r["jax_ref"]
        nr = r["np_grad"] / r["np_val"]
        print(
            f"| {r['family']} | {r['N']} | {r['wrt']} | {ms(r['jax_gen'])} | "
            f"{ms(r['jax_ref'])} | {jr:.2f}{'' if jr <= 1.2 else ' ✗'} | "
            f"{ms(r['np_grad'])} | {ms(r['np_val'])} | {nr:.2f}{'' if nr <= 4 else ' ✗'} |"
        )
    print("\nFirst call (JAX compilation included), seconds:\n")
    print("| family | N | generated value_and_grad | jit(jax.value_and_grad) |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['family']} | {r['N']} | {r['compile_gen']:.2f} | {r['compile_ref']:.2f} |"
        )


if __name__ == "__main__":
    main()

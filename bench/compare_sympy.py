#!/usr/bin/env python3
"""Times jacob and SymPy side by side on the scale families and prints a table.

Families (the same as benches/families.rs):
  affine chain     h'*h, h = AN*(...(A2*(A1*x + b1) + b2)...) + bN   by x and by A1
  tanh network     c'*tanh(AN*...tanh(A1*x))                          by x
  relu loss        norm2(relu(AN*...relu(A1*x)) - y)^2                by A1
  nested inverses  tr(inv(A1 + inv(A2 + ... inv(AN + X))))            by X
  quadratic forms  x'*A1*x + ... + x'*AN*x                            by x

jacob is timed as a whole process (`jacob diff - --wrt V`, expression on stdin),
best of 3 (of 20 for N <= 64), wall time and the child's CPU time. SymPy (1.14 was used when this was written) is timed in a fresh Python
process per case, building the MatrixSymbol expression and calling .diff(V) (import
not included), once, cut off after a timeout. SymPy's dimensions are symbolic
(n = Symbol('n')): every A_i is n x n, every vector n x 1.

Growth exponents from N = 256 to 1024 are given from wall time, CPU time, output size,
and instructions counted by valgrind's callgrind (when valgrind is installed), which a
busy machine does not disturb.

Usage: pip install sympy; python3 bench/compare_sympy.py [--jacob PATH] [--quick]
"""

import argparse
import math
import os
import resource
import subprocess
import sys
import time

FAMILIES = [
    # (label, family key, variable)
    ("affine chain", "affine", "x"),
    ("affine chain", "affine", "A1"),
    ("tanh network", "tanh", "x"),
    ("relu loss", "relu", "A1"),
    ("nested inverses", "inv", "X"),
    ("quadratic forms", "quad", "x"),
]


# ---------------------------------------------------------------- jacob side


def jacob_expr(family, n):
    """The expression text jacob reads."""
    if family == "affine":
        h = "x"
        for i in range(1, n + 1):
            h = f"A{i}*{h} + b{i}" if i == 1 else f"A{i}*({h}) + b{i}"
        return f"({h})'*({h})"
    if family == "tanh":
        h = "x"
        for i in range(1, n + 1):
            h = f"tanh(A{i}*{h})"
        return f"c'*{h}"
    if family == "relu":
        h = "x"
        for i in range(1, n + 1):
            h = f"relu(A{i}*{h})"
        return f"norm2({h} - y)^2"
    if family == "inv":
        h = f"A{n} + X"
        for i in range(n - 1, 0, -1):
            h = f"A{i} + inv({h})"
        return f"tr(inv({h}))"
    if family == "quad":
        return " + ".join(f"x'*A{i}*x" for i in range(1, n + 1))
    raise ValueError(family)


def time_jacob(jacob, expr, var, reps, timeout):
    """Best of `reps` whole-process runs: (wall seconds, CPU seconds, output chars,
    error). CPU time (user + system of the child) is less disturbed by a busy machine."""
    best = best_cpu = math.inf
    chars = 0
    for _ in range(reps):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        try:
            p = subprocess.run(
                [jacob, "diff", "-", "--wrt", var],
                input=expr + "\n",
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return None, None, 0, f"> {timeout:g} s"
        dt = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if p.returncode != 0:
            msg = (p.stderr.strip().splitlines() or ["?"])[0]
            return None, None, 0, f"exit {p.returncode}: {msg[:80]}"
        best = min(best, dt)
        best_cpu = min(best_cpu, cpu)
        chars = len(p.stdout.strip())
    return best, best_cpu, chars, None


def instructions(jacob, expr, var):
    """Instructions jacob executes on one case, counted by valgrind's callgrind: the
    same count on a busy machine as on an idle one. None without valgrind."""
    try:
        p = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
             jacob, "diff", "-", "--wrt", var],
            input=expr + "\n", capture_output=True, text=True, timeout=600,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in p.stderr.splitlines():
        if "Collected :" in line:
            return int(line.split(":")[-1])
    return None


# ---------------------------------------------------------------- SymPy side


def sympy_case(family, n, var):
    """Runs in a child process: builds and differentiates one case with SymPy and
    prints the elapsed seconds (or `fails: ...`)."""
    import sympy as sp
    from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

    t0 = time.perf_counter()
    d = sp.Symbol("n")
    vec = lambda name: sp.MatrixSymbol(name, d, 1)  # noqa: E731
    mat = lambda name: sp.MatrixSymbol(name, d, d)  # noqa: E731
    syms = {"x": vec("x"), "A1": mat("A1"), "X": mat("X")}
    A = [None, syms["A1"]] + [mat(f"A{i}") for i in range(2, n + 1)]
    x = syms["x"]
    try:
        if family == "affine":
            h = x
            for i in range(1, n + 1):
                h = A[i] * h + vec(f"b{i}")
            expr = h.T * h
        elif family == "tanh":
            h = x
            for i in range(1, n + 1):
                h = ElementwiseApplyFunction(sp.tanh, A[i] * h)
            expr = vec("c").T * h
        elif family == "relu":
            t = sp.Dummy("t")
            relu = sp.Lambda(t, sp.Max(t, 0))
            h = x
            for i in range(1, n + 1):
                h = ElementwiseApplyFunction(relu, A[i] * h)
            r = h - vec("y")
            expr = r.T * r
        elif family == "inv":
            h = A[n] + syms["X"]
            for i in range(n - 1, 0, -1):
                h = A[i] + sp.Inverse(h)
            expr = sp.Trace(sp.Inverse(h))
        elif family == "quad":
            expr = sp.Add(*[x.T * A[i] * x for i in range(1, n + 1)])
        else:
            raise ValueError(family)
        expr.diff(syms[var])
    except Exception as e:  # SymPy cannot do some families; report it
        print(f"fails: {type(e).__name__}: {str(e)[:60]}")
        return
    print(f"{time.perf_counter() - t0:.6f}")


def time_sympy(family, n, var, timeout):
    """(seconds or None, note). A fresh interpreter per case, so no cache is shared."""
    try:
        p = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--sympy-case", family, str(n), var],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return None, f"> {timeout:g} s"
    out = p.stdout.strip()
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["?"])[-1]
        return None, f"fails ({last[:60]})"
    if out.startswith("fails"):
        return None, out
    return float(out), None


# ---------------------------------------------------------------- report


def fmt_time(t):
    if t is None:
        return "—"
    if t < 1e-3:
        return f"{t * 1e6:.0f} µs"
    if t < 1:
        return f"{t * 1e3:.1f} ms"
    return f"{t:.2f} s"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jacob", default="target/release/jacob", help="path to the jacob binary")
    ap.add_argument("--quick", action="store_true", help="fewer sizes, shorter SymPy timeout")
    ap.add_argument("--sympy-case", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.sympy_case:
        family, n, var = args.sympy_case
        sympy_case(family, int(n), var)
        return

    if args.quick:
        sympy_ns, jacob_ns, timeout, reps = [8, 16], [8, 16, 32, 256, 1024], 20, 1
    else:
        sympy_ns, jacob_ns, timeout, reps = [8, 16, 32], [8, 16, 32, 64, 128, 256, 512, 1024], 60, 3
    jacob = args.jacob
    if not os.path.exists(jacob):
        sys.exit(f"no jacob binary at {jacob}: run `cargo build --release` or pass --jacob PATH")
    try:
        import sympy

        sympy_version = sympy.__version__
    except ImportError:
        sys.exit("SymPy is not installed: pip install sympy")

    print(f"jacob: {jacob}, whole process, expression on stdin, best of {reps} (of 20 for N <= 64).")
    print(
        f"SymPy {sympy_version}: MatrixSymbol with symbolic dimension n (A_i n×n, vectors n×1), "
        f"build + .diff() in a fresh process, one run, timeout {timeout} s."
    )
    print()
    print("| family | by | N | jacob time | jacob CPU | jacob output chars | SymPy time | SymPy / jacob |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    growth = []
    for label, family, var in FAMILIES:
        results = {}
        sympy_dead = None  # once SymPy times out, larger N would too
        for n in sorted(set(jacob_ns) | set(sympy_ns)):
            jt = jcpu = jc = jerr = None
            if n in jacob_ns:
                # Small cases take milliseconds, where a busy machine's noise is largest.
                n_reps = max(reps, 20) if n <= 64 else reps
                jt, jcpu, jc, jerr = time_jacob(jacob, jacob_expr(family, n), var, n_reps, timeout)
                results[n] = (jt, jcpu, jc)
            st, snote = None, "—"
            if n in sympy_ns:
                if sympy_dead:
                    snote = sympy_dead
                else:
                    st, snote = time_sympy(family, n, var, timeout)
                    if snote and snote.startswith(">"):
                        sympy_dead = snote
            if st is not None and jt is not None:
                ratio = f"{st / jt:,.0f}×"
            elif snote and snote.startswith(">") and jt is not None:
                ratio = f"> {timeout / jt:,.0f}×"
            else:
                ratio = "—"
            print(
                f"| {label} | {var} | {n} | {jerr or fmt_time(jt)} | {fmt_time(jcpu)} | {jc if jc else '—'} | "
                f"{fmt_time(st) if st is not None else snote} | {ratio} |",
                flush=True,
            )
        growth.append((label, var, results))

    print()
    print("Growth exponents of jacob from N = 256 to N = 1024, log(v1024/v256)/log(4) (target ≤ 1.2):")
    print()
    print("| family | by | wall-time exponent | CPU-time exponent | output-size exponent | instructions exponent |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for (label, var, results), (_, family, _) in zip(growth, FAMILIES):
        a, b = results.get(256, (None, None, 0)), results.get(1024, (None, None, 0))
        # Instruction counts do not depend on the machine's load: the steadiest exponent.
        i1, i4 = (instructions(jacob, jacob_expr(family, n), var) for n in (256, 1024))
        exps = [f"{math.log(v4 / v1) / math.log(4):.2f}" if v1 and v4 else "—"
                for v1, v4 in zip(a + (i1,), b + (i4,))]
        print(f"| {label} | {var} | {' | '.join(exps)} |", flush=True)

    print()
    best = math.inf
    for _ in range(10):
        t0 = time.perf_counter()
        p = subprocess.run([jacob, "diff", "x'*A*x", "--wrt", "x"], capture_output=True, text=True)
        best = min(best, time.perf_counter() - t0)
    status = "" if p.returncode == 0 else f" (exit {p.returncode})"
    print(f"`jacob diff \"x'*A*x\" --wrt x` (whole process, best of 10): {fmt_time(best)}{status}")


if __name__ == "__main__":
    main()

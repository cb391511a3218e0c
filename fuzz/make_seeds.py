#!/usr/bin/env python3
"""Writes fuzz/seeds/ from the public examples and tests/inputs/ok (see README.md)."""
import glob, os, re, shlex, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "seeds")
FUNCS = ("exp log sin cos tan tanh sqrt abs arcsin arccos arctan relu step sign sigmoid "
         "softplus sum norm2 norm1 softmax logsumexp tr det logdet inv diag vec").split()
RESERVED = ["I", "eye", "ones", "where", "vector", "matrix", "kron"]
LAYOUTS = {"mixed": 0, "numerator": 1, "denominator": 2}
DECLS = {"--scalar": 4, "--vector": 5, "--matrix": 6, "--symmetric": 7}


def names(expr):
    """Mirrors `names` in fuzz_targets/pipeline.rs."""
    found, i = [], 0
    while i < len(expr):
        c = expr[i]
        if c.isdigit() or (c == "." and expr[i + 1:i + 2].isdigit()):
            while i < len(expr) and (expr[i].isalnum() or expr[i] == "."):
                i += 1
        elif c.isascii() and c.isalpha():
            m = re.match(r"[A-Za-z][A-Za-z0-9_]*", expr[i:])
            n = m.group(0)
            i += len(n)
            if n not in FUNCS and n not in RESERVED and n not in found:
                found.append(n)
        else:
            i += 1
    return found


def seed(expr, wrt="x", layout="mixed", flags=()):
    ids = names(expr)
    pick = ids.index(wrt) if wrt in ids else 0
    opts = LAYOUTS.get(layout, 0)
    for i, f in enumerate(flags):
        if f in DECLS and i + 1 < len(flags) and flags[i + 1] == wrt:
            opts |= DECLS[f] << 2
    return bytes([opts, pick]) + expr.encode()


seeds = {}
tsv = os.environ.get("EXAMPLES", "/work/shared/examples/derivatives.tsv")
if os.path.exists(tsv):
    for line in open(tsv):
        if line.startswith("#") or line.startswith("command\t"):
            continue
        cols = line.rstrip("\n").split("\t")
        if len(cols) < 5:
            continue
        cmd, expr, wrt, flags, layout = cols[:5]
        flags = [] if flags == "-" else flags.split()
        seeds[seed(expr, wrt, layout, flags)] = None
for path in sorted(glob.glob(os.path.join(ROOT, "tests", "inputs", "ok", "*.txt"))):
    lines = open(path).read().split("\n")
    args, expr = shlex.split(lines[0]), lines[1]
    wrt = args[args.index("--wrt") + 1] if "--wrt" in args else "x"
    layout = args[args.index("--layout") + 1] if "--layout" in args else "mixed"
    seeds[seed(expr, wrt, layout, args)] = None
os.makedirs(OUT, exist_ok=True)
for i, s in enumerate(seeds):
    with open(os.path.join(OUT, f"seed{i:03}"), "wb") as f:
        f.write(s)
print(f"{len(seeds)} seeds in {OUT}", file=sys.stderr)

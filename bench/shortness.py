#!/usr/bin/env python3
"""How short jacob's answers are: for the fixed corpus in bench/shortness.tsv, the size
of jacob's answer against a compact form written by hand (each reference is checked
with `jacob check --claim` first, so the comparison is between right answers).

Size is the number of tokens as printed: names, numbers and operators (`where`
bindings included, parentheses not). Run from the repository root after
`cargo build --release`:  python3 bench/shortness.py
"""
import re
import statistics
import subprocess
import sys

JACOB = "target/release/jacob"
TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+\.?\d*(?:[eE][-+]?\d+)?|\.\*|\./|\.\^|[-+*/^'=,]")


def size(text):
    return len(TOKEN.findall(text))


def jacob(args):
    p = subprocess.run([JACOB] + args, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout.strip(), p.stderr.strip()


def main():
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(__doc__)
        return 0
    rows = []
    failures = 0
    for line in open("bench/shortness.tsv"):
        if line.startswith("#") or not line.strip():
            continue
        command, expr, wrt, flags, reference = line.rstrip("\n").split("\t")
        flags = flags.split()
        code, answer, err = jacob([command, expr, "--wrt", wrt] + flags)
        if code != 0:
            print(f"jacob {command} {expr!r} --wrt {wrt} failed: {err}", file=sys.stderr)
            failures += 1
            continue
        # The reference must be right: a Hessian is the Jacobian of the gradient.
        of = expr
        if command == "hess":
            _, of, _ = jacob(["diff", expr, "--wrt", wrt] + flags)
        code, out, err = jacob(["check", of, "--wrt", wrt, "--claim", reference] + flags)
        if code != 0:
            print(f"the reference {reference!r} for {expr!r} is wrong:\n{out}{err}", file=sys.stderr)
            failures += 1
            continue
        rows.append((command, expr, wrt, answer, reference, size(answer) / size(reference)))
    print(f"| command | expression | by | jacob | reference | size ratio |")
    print(f"| --- | --- | --- | --- | --- | ---: |")
    for command, expr, wrt, answer, reference, ratio in rows:
        print(f"| {command} | `{expr}` | {wrt} | `{answer}` | `{reference}` | {ratio:.2f} |")
    for command in ("diff", "hess"):
        ratios = [r[5] for r in rows if r[0] == command]
        if ratios:
            longer = sum(1 for r in ratios if r > 1.0)
            print(
                f"\n{command}: {len(ratios)} cases, size ratio median {statistics.median(ratios):.2f}, "
                f"max {max(ratios):.2f}, {longer} longer than the reference"
            )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Lists the longest function bodies in C++ sources (lines from the opening to the closing brace
of each top-level or class-member function), for the "no function longer than about 120 lines"
rule. A function whose body is mostly a table (an option table) can be exempted by name with
--allow. Exit 1 when any function is longer than --max (default: report only).

Usage: scripts/function-lengths.py [--top N] [--max LINES] [--allow NAME ...] PATH..."""
import argparse
import pathlib
import re
import sys

# A line that opens a function definition: ends with '{' after a ')' (and maybe const/override/
# noexcept or a constructor's initialiser list), and is not a control statement or a lambda.
CONTROL = re.compile(r"^\s*(if|for|while|switch|catch|else|do|return|try)\b")


def strip(line):
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])*'", "''", line)
    return line.split("//")[0]


def functions(path):
    lines = path.read_text(errors="replace").splitlines()
    depth = 0
    out = []
    stack = []  # (depth at open, name, start line)
    pending = ""  # signature text since the last ; { or }
    for no, raw in enumerate(lines, 1):
        line = strip(raw)
        for ch in line:
            if ch == "{":
                sig = pending.strip()
                m = re.search(r"([A-Za-z_~][A-Za-z_0-9:<>~]*)\s*\([^;]*\)[^;()]*$", sig)
                is_fn = (m is not None and not CONTROL.match(sig.split("\n")[-1])
                         and "=" not in sig.split("(")[0] and "[" not in sig.split("(")[0]
                         and not re.search(r"\b(namespace|class|struct|enum|union)\b", sig))
                if is_fn and not any(s[1] for s in stack):
                    stack.append((depth, m.group(1), no))
                else:
                    stack.append((depth, None, no))
                depth += 1
                pending = ""
            elif ch == "}":
                depth -= 1
                if stack:
                    d, name, start = stack.pop()
                    if name:
                        out.append((no - start + 1, name, f"{path}:{start}"))
                pending = ""
            elif ch == ";":
                pending = ""
            else:
                pending += ch
        pending += "\n"
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--max", type=int, default=0)
    ap.add_argument("--allow", nargs="*", default=[])
    args = ap.parse_args()
    found = []
    for p in args.paths:
        for f in sorted(pathlib.Path(p).rglob("*")) if pathlib.Path(p).is_dir() else [pathlib.Path(p)]:
            if f.suffix in (".cpp", ".cu", ".h"):
                found += functions(f)
    found.sort(reverse=True)
    for length, name, where in found[: args.top]:
        print(f"{length:5d}  {name}  {where}")
    if args.max:
        bad = [f for f in found if f[0] > args.max and f[1] not in args.allow]
        if bad:
            print(f"{len(bad)} function(s) longer than {args.max} lines", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

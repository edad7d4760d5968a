#!/usr/bin/env python3
"""The architecture checks itself (DESIGN "Code map"): every module is a folder in src/ with its
public headers in include/hetrain/<module>/, and data flows forward, so some modules must never
include others. Fails (exit 1), naming file, line and rule, when a source or header breaks one:

  schedule, aggregate, data, checkpoint  never use comm   (decisions and data stay apart from MPI)
  aggregate                              never uses train
  cluster                                never uses schedule
  config                                 never uses train
  <mpi.h> (and <mpi-ext.h>) stays out of public headers outside include/hetrain/comm/
  CHECK_MPI is defined in include/hetrain/comm/check_mpi.h only

Usage: check_layering.py REPO_ROOT"""
import pathlib
import re
import sys

FORBIDDEN = {
    "schedule": {"comm"},
    "aggregate": {"comm", "train"},
    "data": {"comm"},
    "checkpoint": {"comm"},
    "cluster": {"schedule"},
    "config": {"train"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]')


def module_of(path, root):
    rel = path.relative_to(root).parts
    if rel[0] == "src" and len(rel) > 2:
        return rel[1]
    if rel[:2] == ("include", "hetrain") and len(rel) > 3:
        return rel[2]
    return None


def main(root):
    root = pathlib.Path(root).resolve()
    files = [p for d in ("src", "include") for p in (root / d).rglob("*")
             if p.suffix in (".h", ".cpp", ".cu")]
    problems = []
    checked = 0
    for path in files:
        module = module_of(path, root)
        public_header = path.relative_to(root).parts[0] == "include"
        for no, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            where = f"{path.relative_to(root)}:{no}"
            if re.match(r"^\s*#\s*define\s+CHECK_MPI\b", line) and not str(path).endswith(
                    "include/hetrain/comm/check_mpi.h"):
                problems.append(f"{where}: CHECK_MPI is defined outside comm/check_mpi.h")
            m = INCLUDE.match(line)
            if not m:
                continue
            checked += 1
            target = m.group(1)
            if target in ("mpi.h", "mpi-ext.h") and public_header and module != "comm":
                problems.append(f"{where}: <{target}> in a public header outside comm/")
            t = re.match(r"hetrain/([a-z_]+)/", target)
            if module and t and t.group(1) in FORBIDDEN.get(module, ()):
                problems.append(f"{where}: {module}/ must not use {t.group(1)}/ ({target})")
    for p in problems:
        print(p)
    print(f"layering: {len(files)} files, {checked} includes, {len(problems)} violations")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))

#!/usr/bin/env python3
"""The architecture checks itself (DESIGN §2 and "Code map"): every module is a folder in src/ with
its public headers in include/hetrain/<module>/, and the modules are layered: each includes only
itself and the modules before it in ORDER below (the order of the Code map, which
tests/arch/check_code_map.py checks). Fails (exit 1), naming file, line and rule, when a source or
header breaks one of these:

  a module includes hetrain/<later module>/      (the layers; a new folder must be placed in ORDER)
  cluster never uses schedule                     (the one rule the order does not imply)
  <mpi.h> (and <mpi-ext.h>) stays out of public headers outside include/hetrain/comm/
  CHECK_MPI is defined in include/hetrain/comm/check_mpi.h only

Usage: check_layering.py REPO_ROOT"""
import pathlib
import re
import sys

# The modules, each after every module it includes. It follows the data flow of DESIGN §2 where the
# includes allow and puts the pieces before what assembles them where they do not:
ORDER = [
    "common",      # errors, checks, logging, HDF5 helpers: used by all
    "data",        # dataset files and the epoch permutation
    "schedule",    # the plan, pure: before config, whose --balance check uses its policies
    "config",      # the options; validating them needs data's formats and schedule's policies
    "model",
    "aggregate",   # the weighted sums: before train and comm, so it never uses either
    "train",       # flat buffers, optimizer, compute, loss (uses config's choices)
    "checkpoint",  # saves train's and model's state
    "cluster",     # probe and benchmarks: the training probe runs train's steps, so after train
    "observe",
    "comm",        # MPI: after every module above, so none of them sends a message
    "run",         # wires the stages together
    "cli",
]
# Rules the order does not imply: (module, what it must not include, why).
FORBIDDEN = [
    ("cluster", "schedule", "the probe measures; planning from its report is schedule's job"),
]
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
    forbidden = {(m, t) for m, t, _ in FORBIDDEN}
    for path in sorted(files):
        module = module_of(path, root)
        public_header = path.relative_to(root).parts[0] == "include"
        if module and module not in ORDER:
            problems.append(f"{path.relative_to(root)}: module {module}/ is not placed in ORDER "
                            "(tests/arch/check_layering.py)")
            module = None
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
            if not (module and t):
                continue
            used = t.group(1)
            if used not in ORDER:
                problems.append(f"{where}: {target} is in no module of ORDER")
            elif ORDER.index(used) > ORDER.index(module):
                problems.append(f"{where}: {module}/ must not use {used}/, a later module "
                                f"({target})")
            elif (module, used) in forbidden:
                problems.append(f"{where}: {module}/ must not use {used}/ ({target})")
    for p in problems:
        print(p)
    print(f"layering: {len(files)} files, {checked} includes, {len(problems)} violations")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))

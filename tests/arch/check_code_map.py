#!/usr/bin/env python3
"""docs/DESIGN.md's "Code map" says the truth about the tree. Checks, in the map's fenced block
(its format is written at the top of that section):

  every file and folder it names exists (entries, file lines, and file names in descriptions);
  every .h, .cpp and .cu under src/ and include/hetrain/ is covered: named by a file line of its
    folder (a name covers its header and source alike), or in a folder whose entry has no file
    lines (for src/<module>/, include/hetrain/<module>/ too);
  the src/ modules are listed in the layer order of tests/arch/check_layering.py.

Fails (exit 1) naming each problem. Usage: check_code_map.py REPO_ROOT"""
import pathlib
import re
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from check_layering import ORDER  # noqa: E402

SOURCE = (".h", ".cpp", ".cu")
# A file name in a description: a word ending in one of these, with or without folders before it.
MENTION = re.compile(r"(?<![\w./-])((?:[\w-]+/)*[\w.-]+\.(?:h|cpp|cu|md|sh|py|txt))(?![\w/])")


def code_map(design):
    """The lines of the fenced block in the "## Code map" section."""
    text = design.read_text()
    m = re.search(r"^## Code map\n(.*?)(?=^## )", text, re.S | re.M)
    if not m:
        return None
    block = re.search(r"^```\n(.*?)^```", m.group(1), re.S | re.M)
    return block.group(1).splitlines() if block else None


def parse(lines):
    """[(path, [(file, line text)], description text)] in the map's order."""
    entries = []
    for line in lines:
        if not line.strip():
            continue
        if not line[0].isspace():
            path, _, rest = line.partition(" ")
            entries.append((path, [], rest))
        elif not entries:
            raise ValueError(f"an indented line before any entry: {line!r}")
        elif re.match(r"^  \S", line):
            name, _, rest = line.strip().partition(" ")
            entries[-1][1].append((name, rest))
        else:
            path, files, text = entries[-1]
            if files:
                files[-1] = (files[-1][0], files[-1][1] + " " + line.strip())
            else:
                entries[-1] = (path, files, text + " " + line.strip())
    return entries


def folders_of(root, path):
    """The folders an entry's bare file names live in: the folder itself, and for src/<module>/
    the module's public headers too."""
    folders = [root / path]
    parts = pathlib.PurePosixPath(path).parts
    if len(parts) == 2 and parts[0] == "src" and path.endswith("/"):
        folders.append(root / "include" / "hetrain" / parts[1])
    return folders


def exists_mention(root, folders, name):
    if "/" in name:
        return any((base / name).exists()
                   for base in (root, root / "src", root / "include" / "hetrain"))
    return any((f / name).exists() for f in folders)


def main(root):
    root = pathlib.Path(root).resolve()
    lines = code_map(root / "docs" / "DESIGN.md")
    if lines is None:
        print("code map: no fenced block under '## Code map' in docs/DESIGN.md")
        return 1
    problems = []
    covered = set()
    modules = []
    for path, files, text in parse(lines):
        target = root / path
        if not target.exists() or path.endswith("/") != target.is_dir():
            problems.append(f"{path}: no such {'folder' if path.endswith('/') else 'file'}")
            continue
        folders = folders_of(root, path)
        parts = pathlib.PurePosixPath(path).parts
        if len(parts) == 2 and parts[0] == "src" and path.endswith("/"):
            modules.append(parts[1])
        for name in MENTION.findall(text):
            if not exists_mention(root, folders, name):
                problems.append(f"{path}: names {name}, which does not exist")
        if target.is_file():
            covered.add(target)
            continue
        if not files:  # the whole folder
            covered.update(p for f in folders if f.is_dir() for p in f.rglob("*") if p.is_file())
            continue
        for name, description in files:
            if not any((f / name).is_file() for f in folders):
                problems.append(f"{path}: names {name}, which is not a file of it")
            stem = pathlib.PurePosixPath(name).stem
            covered.update(p for f in folders if f.is_dir() for p in f.iterdir()
                           if p.is_file() and p.stem == stem)
            for mention in MENTION.findall(description):
                if not exists_mention(root, folders, mention):
                    problems.append(f"{path}{name}: names {mention}, which does not exist")
    sources = sorted(p for d in (root / "src", root / "include" / "hetrain") if d.is_dir()
                     for p in d.rglob("*") if p.is_file() and p.suffix in SOURCE)
    for p in sources:
        if p not in covered:
            problems.append(f"{p.relative_to(root)}: not in the code map (name it under its "
                            "folder's entry, see the format at the top of the section)")
    placed = [m for m in modules if m in ORDER]
    if placed != sorted(placed, key=ORDER.index):
        problems.append(f"the src/ modules are listed as {', '.join(modules)}; the layer order "
                        f"(tests/arch/check_layering.py) is {', '.join(ORDER)}")
    for p in problems:
        print(p)
    print(f"code map: {len(sources)} source files, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))

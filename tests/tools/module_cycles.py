#!/usr/bin/env python3
"""Fails when two files of one crate import each other, directly or round a loop.

A file's imports are its `use crate::…`, `use super::…` and `use self::…` paths and the
`mod x;` lines that declare its children (a parent re-exporting a child and the child
importing from the parent is a loop too: the parent's items belong in a file of their own).
Each path is resolved to the file that defines its module. `#[cfg(test)]` blocks are not
read: tests may use their parent. Usage: module_cycles.py [CRATE_DIR ...] (default: crates/*).
"""
import pathlib
import re
import sys

USE = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?use\s+((?:crate|super|self)(?:::\w+)*)(?:::\{([^;]*)\}|::\w+|::\*)?\s*;", re.S | re.M)
MOD = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", re.M)


def strip_tests(text):
    """Drops `#[cfg(test)] mod … { … }` blocks and comments."""
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    while True:
        j = text.find("#[cfg(test)]", i)
        if j < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:j])
        k = text.find("{", j)
        semi = text.find(";", j)
        if semi != -1 and (k == -1 or semi < k):
            i = semi + 1
            continue
        depth, p = 0, k
        while p < len(text):
            if text[p] == "{":
                depth += 1
            elif text[p] == "}":
                depth -= 1
                if depth == 0:
                    break
            p += 1
        i = p + 1


def module_path(src, f):
    rel = f.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


def file_of(src, parts):
    """The file defining module `parts` (or the deepest existing prefix)."""
    while True:
        base = src.joinpath(*parts) if parts else src
        for cand in ([base.with_suffix(".rs"), base / "mod.rs"] if parts else [src / "lib.rs", src / "main.rs"]):
            if cand.is_file():
                return cand
        if not parts:
            return None
        parts = parts[:-1]


INLINE = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*\{", re.M)


def blocks(text, here):
    """The text of the file itself and of each inline `mod x { … }`, with its module path."""
    m = INLINE.search(text)
    if not m:
        return [(text, here)]
    depth, p = 0, m.end() - 1
    while p < len(text):
        depth += {"{": 1, "}": -1}.get(text[p], 0)
        if depth == 0:
            break
        p += 1
    inner = text[m.end():p]
    return blocks(inner, here + [m.group(1)]) + blocks(text[:m.start()] + text[p + 1:], here)


def graph(src):
    files = sorted(src.rglob("*.rs"))
    edges = {f: set() for f in files}
    for f in files:
        for text, here in blocks(strip_tests(f.read_text()), module_path(src, f)):
            imports(src, f, text, here, edges)
    return edges


def imports(src, f, text, here, edges):
    for m in MOD.finditer(text):
        t = file_of(src, here + [m.group(1)])
        if t and t != f:
            edges[f].add(t)
    for m in USE.finditer(text):
        head = m.group(1).split("::")
        names = [n.strip().split("::")[0].split(" ")[0] for n in (m.group(2) or "").split(",") if n.strip()]
        # `super` is the parent of this file's module, `self` the module itself.
        base = [] if head[0] == "crate" else list(here)
        for h in head:
            if h == "super":
                base = base[:-1]
            elif h not in ("crate", "self"):
                base.append(h)
        targets = [base + [n] for n in names if n not in ("self", "*")] or [base]
        if "self" in names:
            targets.append(base)
        for t in targets:
            tf = file_of(src, t)
            if tf and tf != f:
                edges[f].add(tf)


def cycles(edges):
    found, state, stack = [], {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                found.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n)
    return found


def main():
    root = pathlib.Path(__file__).resolve().parents[2]
    crates = [pathlib.Path(a) for a in sys.argv[1:]] or sorted((root / "crates").iterdir())
    bad = 0
    for c in crates:
        src = c / "src"
        if not src.is_dir():
            continue
        for cyc in cycles(graph(src)):
            bad += 1
            print("import cycle in", c.name + ":", " -> ".join(str(p.relative_to(src)) for p in cyc))
    if bad:
        sys.exit(1)
    print(f"no import cycles between files ({len(crates)} crates)")


if __name__ == "__main__":
    main()

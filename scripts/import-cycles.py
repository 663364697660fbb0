#!/usr/bin/env python3
"""Import circles between the top-level modules of src/.

What for: showing which top-level modules (`jobs`, `web`, `metrics`, ... in the library;
`cli`, `check`, ... in the binary) depend on each other through `crate::...` and `super::...`
paths, and printing every circle among them, with the file and line of each edge in it.
Exits 1 when there is a circle, 0 otherwise. Not for: edges inside one top-level module
(a `mod.rs` and its children naturally use each other), nor between the two crates
(`paperboy::...` from the binary can only point one way).

Usage: scripts/import-cycles.py [--edges] [SRC_DIR]   (default: src next to this script)
"""

import re
import sys
from collections import defaultdict, deque
from pathlib import Path


def strip_comments_and_strings(text):
    """The source with comments, string and char literals blanked out, newlines kept."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    out.append("\n" if text[i] == "\n" else "")
                    i += 1
        elif re.match(r'(b?r)(#*)"', text[i:i + 40]) and (i == 0 or not text[i - 1].isalnum()):
            m = re.match(r'(b?r)(#*)"', text[i:])
            end = '"' + m.group(2)
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append("\n" * text.count("\n", i, j) + '""')
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append("\n" * text.count("\n", i, j + 1) + '""')
            i = j + 1
        elif c == "'":
            # A char literal ('x', '\n', '\u{1F600}'), or else a lifetime.
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:])
            if m:
                out.append("' '")
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def top_modules(root_file):
    """The modules a crate root declares: `mod x;` / `pub mod x;`."""
    text = strip_comments_and_strings(root_file.read_text())
    return set(re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text, re.M))


def module_path(src, file):
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    return parts


def first_segments(rest):
    """The first path segment of `a::b` or of each item of a `{a::b, c}` group."""
    rest = rest.lstrip()
    if not rest.startswith("{"):
        m = re.match(r"(\w+|\*)", rest)
        return [m.group(1)] if m else []
    depth, item, items = 0, "", []
    for ch in rest[1:]:
        if ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                break
            depth -= 1
        if ch == "," and depth == 0:
            items.append(item)
            item = ""
        else:
            item += ch
    items.append(item)
    segs = []
    for it in items:
        m = re.match(r"\s*(\w+|\*)", it)
        if m:
            segs.append(m.group(1))
    return segs


PATH = re.compile(r"\b(crate|(?:super\s*::\s*)+)\s*::\s*")
INLINE_MOD = re.compile(r"\bmod\s+(\w+)\s*\{")


def edges_of(src, file, tops):
    """(target top-level module, line) for every path in `file` that leaves its module."""
    text = strip_comments_and_strings(file.read_text())
    base = module_path(src, file)
    # Inline modules (`mod tests { ... }`): where each starts and ends, to resolve `super::`.
    inline = []
    for m in INLINE_MOD.finditer(text):
        depth, j = 0, m.end() - 1
        while j < len(text):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        inline.append((m.end(), j))
    out = []
    for m in PATH.finditer(text):
        pos = m.start()
        here = base + ["<inline>"] * sum(1 for s, e in inline if s <= pos <= e)
        if m.group(1) == "crate":
            target = []
        else:
            ups = m.group(1).count("super")
            if ups > len(here):
                continue
            target = here[: len(here) - ups]
        for seg in first_segments(text[m.end():m.end() + 400]):
            full = [p for p in target if p != "<inline>"] + ([seg] if seg not in ("*", "self") else [])
            # A path into an inline module stays in this file; `self`/globs name `target` itself.
            if "<inline>" in target[len(base):] or not full:
                continue
            top = full[0]
            if top in tops and top != base[0]:
                out.append((top, text.count("\n", 0, pos) + 1))
    return out


def graph(src):
    crates = {}
    for root in ("lib.rs", "main.rs"):
        if (src / root).exists():
            crates[root] = top_modules(src / root)
    edges = defaultdict(dict)  # (crate, from) -> {to: "file:line"}
    for file in sorted(src.rglob("*.rs")):
        parts = module_path(src, file)
        if parts in (["lib"], ["main"]):
            continue
        crate = next((c for c, mods in crates.items() if parts[0] in mods), None)
        if crate is None:
            continue
        for top, line in edges_of(src, file, crates[crate]):
            edges[(crate, parts[0])].setdefault(top, f"{file.relative_to(src.parent)}:{line}")
    return crates, edges


def shortest_cycle(start, succ):
    prev = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(succ.get(node, ())):
            if nxt == start:
                path = [node]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if nxt not in prev:
                prev[nxt] = node
                queue.append(nxt)
    return None


def main():
    args = [a for a in sys.argv[1:] if a != "--edges"]
    src = Path(args[0]) if args else Path(__file__).resolve().parent.parent / "src"
    crates, edges = graph(src)
    found = 0
    for crate in crates:
        succ = {frm: set(tos) for (c, frm), tos in edges.items() if c == crate}
        name = "library" if crate == "lib.rs" else "binary"
        if "--edges" in sys.argv:
            for frm in sorted(succ):
                print(f"{name}: {frm} -> {', '.join(sorted(succ[frm]))}")
        seen = set()
        for node in sorted(succ):
            cycle = shortest_cycle(node, succ)
            if not cycle:
                continue
            ring = cycle[:-1]
            key = min(tuple(ring[i:] + ring[:i]) for i in range(len(ring)))
            if key in seen:
                continue
            seen.add(key)
            found += 1
            print(f"{name}: circle " + " -> ".join(cycle))
            for a, b in zip(cycle, cycle[1:]):
                print(f"    {a} -> {b}  ({edges[(crate, a)][b]})")
    if not found:
        print("no import circles between top-level modules")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Fails on an import cycle between the modules of a crate, and on a pure module that imports
what it must not.

A module is one source file. An edge A -> B is A naming B in a path: `use crate::b::...`,
`crate::b::x` in code, `super::b`, or a child module by its bare name. Test code (files named
tests.rs or *_tests.rs, and everything from `#[cfg(test)]` followed by `mod`) is left out:
tests may use anything. Usage: check-imports.py [CRATE_SRC ...]; with none, every crate of
the workspace.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = ["proxy/api/src", "proxy/io/src", "proxy/src", "controller/src", "loadtest/src", "tests/src"]
# module folder -> what it must not import (module prefixes, or external crates)
PURE = {
    "proxy/src": {
        "route": {"modules": ["upstream", "downstream", "forward", "state", "control", "app"],
                  "crates": ["tokio", "hyper", "hyper_util", "axum"]},
    },
}
ROOT_FILES = {"lib.rs", "main.rs"}


def modules(src):
    """Module path (tuple) -> file, for every non-test file under src."""
    out = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs") or f == "tests.rs" or f.endswith("_tests.rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)
            parts = rel[:-3].split(os.sep)
            if parts[-1] == "mod" or (len(parts) == 1 and f in ROOT_FILES):
                parts = parts[:-1]
            out.setdefault(tuple(parts), os.path.join(dirpath, f))
    return out


def strip_tests(text):
    m = re.search(r"^\s*#\[cfg\(test\)\]\s*\n\s*(pub(\(crate\))?\s+)?mod\s", text, re.M)
    text = text[: m.start()] if m else text
    # comments (and doc comments) name modules without importing them
    return re.sub(r"//[^\n]*", "", text)


def expand_use(body):
    """`a::{b, c::d}` -> ["a::b", "a::c::d"] (one level of braces is enough here)."""
    m = re.match(r"^([\w:]*)\{(.*)\}$", body.strip(), re.S)
    if not m:
        return [body.strip()]
    prefix, inner = m.groups()
    items, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    items.append(cur)
    return [prefix + i.strip() for i in items if i.strip()]


def resolve(path, here, mods):
    """The module a path names, from module `here`: the longest known module prefix."""
    parts = path.split("::")
    if parts[0] == "crate":
        base, rest = (), parts[1:]
    elif parts[0] == "super":
        base, rest = here[:-1], parts[1:]
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
    elif parts[0] == "self":
        base, rest = here, parts[1:]
    elif here + (parts[0],) in mods:
        base, rest = here, parts
    else:
        return None
    best = base if base in mods else None
    for i in range(1, len(rest) + 1):
        cand = base + tuple(rest[:i])
        if cand in mods:
            best = cand
    return best


def edges(src):
    mods = modules(src)
    graph = {m: set() for m in mods}
    externals = {m: set() for m in mods}
    for mod, path in mods.items():
        text = strip_tests(open(path, encoding="utf-8").read())
        paths = []
        for u in re.finditer(r"\buse\s+([^;]+);", text):
            paths += expand_use(u.group(1))
        paths += re.findall(r"\b((?:crate|super)(?:::\w+)+)", text)
        # a child module named by its bare name (`mirror::spawn_copy(…)`)
        children = [m[-1] for m in mods if m[:-1] == mod and len(m) == len(mod) + 1]
        for c in children:
            if re.search(r"(?<![:\w])" + c + r"::", text):
                paths.append(c)
        for p in paths:
            p = p.split(" as ")[0].strip()
            first = p.split("::")[0]
            if first not in ("crate", "super", "self") and mod + (first,) not in mods:
                externals[mod].add(first.lstrip(":"))
            target = resolve(p, mod, mods)
            if target is not None and target != mod and target != ():
                # a module declaring its child is not an import of it
                graph[mod].add(target)
    return mods, graph, externals


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def name(m):
    return "::".join(m) or "crate"


def main():
    failed = False
    for crate in sys.argv[1:] or CRATES:
        src = os.path.join(ROOT, crate)
        if not os.path.isdir(src):
            continue
        mods, graph, externals = edges(src)
        for comp in cycles(graph):
            failed = True
            links = [f"{name(a)} -> {name(b)}" for a in comp for b in sorted(graph[a]) if b in comp]
            print(f"{crate}: import cycle between {', '.join(map(name, comp))}: {'; '.join(links)}")
        for folder, rule in PURE.get(crate, {}).items():
            for m in mods:
                if m[:1] != (folder,):
                    continue
                for t in graph[m]:
                    if t[:1] and t[0] in rule["modules"]:
                        failed = True
                        print(f"{crate}: {name(m)} is pure and imports {name(t)}")
                for c in externals[m] & set(rule["crates"]):
                    failed = True
                    print(f"{crate}: {name(m)} is pure and uses the {c} crate")
        print(f"{crate}: {len(mods)} modules, {sum(map(len, graph.values()))} imports")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

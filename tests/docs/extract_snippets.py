#!/usr/bin/env python3
"""Writes every fenced C++ block of the given Markdown files to its own translation unit.

    extract_snippets.py <source root> <output dir> <file.md>...

Each ```cpp (or ```c++) block becomes <output dir>/<file stem>_<n>.cpp, n counting the file's C++ blocks
from 1, with a #line directive so compiler errors name the Markdown file and line. A manifest
<output dir>/manifest.txt lists one block per line: `name|markdown file|first line|kind|target`, where
kind is `run` (the block defines main: compiled, linked and run) or `compile` (compiled only), and target
is the narrowest kaizen target its includes need (core, reward, tokenizers or kaizen). Files are rewritten
only when their content changes, so an unchanged snippet is not recompiled.

Every block must be a complete translation unit: its own #includes, declarations at namespace scope,
statements inside functions. That is the point: a reader can paste any block into a file and compile it.
A block fenced ```cpp-fragment is shown as C++ but not compiled (an excerpt that names a surrounding program's
variables); use it sparingly, and point to the example it comes from.
"""
import os
import re
import sys

FENCE = re.compile(r"^(\s*)```(cpp|c\+\+)(?![\w-])(.*)$")
TORCH = re.compile(r"#include\s*<(torch/|ATen/|kaizen/(torch|loop|models|policy_gradient|preference|tasks|"
                   r"kaizen\.hpp|core\.hpp|core/(policy|token_batch|collate|concepts)))")
TOKENIZERS = re.compile(r"#include\s*<kaizen/tokenizers")
REWARD = re.compile(r"#include\s*<kaizen/reward")
REMOTE = re.compile(r"#include\s*<kaizen/remote")
MAIN = re.compile(r"\bint\s+main\s*\(")


def write_if_changed(path, text):
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    except FileNotFoundError:
        pass
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def blocks(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent = len(m.group(1))
        start = i + 2  # 1-based line of the block's first code line
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith("```"):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        if i == len(lines):
            sys.exit(f"{path}:{start - 1}: unterminated ```cpp block")
        yield start, "\n".join(body) + "\n"
        i += 1


def main():
    root, out_dir, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    os.makedirs(out_dir, exist_ok=True)
    manifest = []
    for md in files:
        rel = os.path.relpath(md, root)
        stem = re.sub(r"[^A-Za-z0-9]+", "_", os.path.splitext(rel)[0]).strip("_")
        for n, (line, code) in enumerate(blocks(md), start=1):
            name = f"{stem}_{n}"
            if TORCH.search(code):
                target = "kaizen"
            elif REMOTE.search(code):
                target = "remote"
            elif TOKENIZERS.search(code):
                target = "tokenizers"
            elif REWARD.search(code):
                target = "reward"
            else:
                target = "core"
            kind = "run" if MAIN.search(code) else "compile"
            text = f'#line {line} "{rel}"\n{code}'
            write_if_changed(os.path.join(out_dir, name + ".cpp"), text)
            manifest.append(f"{name}|{rel}|{line}|{kind}|{target}")
    write_if_changed(os.path.join(out_dir, "manifest.txt"), "\n".join(manifest) + "\n")


if __name__ == "__main__":
    main()

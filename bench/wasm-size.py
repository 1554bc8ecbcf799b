#!/usr/bin/env python3
"""What the edge's WASM bytes are: per section (raw and gzip), then per crate (twiggy).

Run: KEYWARD_EDGE_NAMES=1 cargo xtask build-edge   (keeps the name section, so items are named)
     python3 bench/wasm-size.py edge/build/index_bg.wasm
Needs `twiggy` on PATH for the per-crate part (`cargo install twiggy`); without it, sections only.
"""
import collections, csv, gzip, io, re, shutil, subprocess, sys

SECTIONS = {0: "custom", 1: "type", 2: "import", 3: "function", 4: "table", 5: "memory",
            6: "global", 7: "export", 8: "start", 9: "element", 10: "code", 11: "data",
            12: "datacount", 13: "tag"}


def leb(b, i):
    value = shift = 0
    while True:
        x = b[i]
        i += 1
        value |= (x & 0x7F) << shift
        shift += 7
        if x < 0x80:
            return value, i


def sections(module):
    i = 8
    while i < len(module):
        sid = module[i]
        size, i = leb(module, i + 1)
        body = module[i:i + size]
        name = SECTIONS.get(sid, str(sid))
        if sid == 0:
            n, j = leb(body, 0)
            name = "custom:" + body[j:j + n].decode()
        yield name, size, len(gzip.compress(body, 9))
        i += size


def crate_of(item):
    if item.startswith('"') and "names" in item:
        return "(name section)"
    if item.startswith("data segment"):
        return "(data: strings, tables, vtables)"
    m = re.match(r"^[<&\s]*(?:mut\s+|dyn\s+)?([A-Za-z_]\w*)(?:\[[0-9a-f]+\])?::", item)
    return m.group(1) if m else "(glue: shims, imports, other)"


def main(path):
    module = open(path, "rb").read()
    print(f"{path}: {len(module)} bytes raw, {len(gzip.compress(module, 9))} gzip -9\n")
    print("| section | raw bytes | gzip bytes |\n|---|---:|---:|")
    for name, raw, gz in sorted(sections(module), key=lambda s: -s[1])[:6]:
        print(f"| {name} | {raw} | {gz} |")
    if not shutil.which("twiggy"):
        return
    out = subprocess.run(["twiggy", "top", "-n", "1000000", "-f", "csv", path],
                         check=True, capture_output=True, text=True).stdout
    by_crate = collections.Counter()
    for row in csv.DictReader(io.StringIO(out)):
        by_crate[crate_of(row["Name"])] += int(row["ShallowSize"])
    total = sum(by_crate.values())
    print("\n| crate (twiggy top, shallow) | raw bytes | share |\n|---|---:|---:|")
    for crate, size in by_crate.most_common(14):
        print(f"| {crate} | {size} | {100 * size / total:.1f} % |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "edge/build/index_bg.wasm")

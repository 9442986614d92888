"""Checks that Cargo.toml's rust-version is at least every dependency's.

Walks the resolved dependency graph from wsloop through normal and build dependencies (with the
default features; dev-dependencies do not count: a user of the crate never builds them) and
takes the highest `rust-version` any of them declares. Exits 1, saying which crate needs more,
when Cargo.toml claims less. Run by .ci/run.
"""
import json
import subprocess
import sys


def version(text):
    """'1.88' -> (1, 88, 0): three parts, so 1.88 and 1.88.0 compare equal."""
    parts = [int(part) for part in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


metadata = json.loads(subprocess.run(
    ["cargo", "metadata", "--format-version", "1", "--locked"],
    check=True, capture_output=True, text=True).stdout)
packages = {p["id"]: p for p in metadata["packages"]}
nodes = {n["id"]: n for n in metadata["resolve"]["nodes"]}
root = metadata["resolve"]["root"]

seen, todo = set(), [root]
while todo:
    node = nodes[todo.pop()]
    for dep in node["deps"]:
        kinds = {k["kind"] for k in dep["dep_kinds"]}
        if kinds & {None, "build"} and dep["pkg"] not in seen:
            seen.add(dep["pkg"])
            todo.append(dep["pkg"])

needs = max(((version(packages[p]["rust_version"]), packages[p]["name"])
             for p in seen if packages[p].get("rust_version")), default=((0,), "-"))
claimed = version(packages[root]["rust_version"])
shown = ".".join(map(str, needs[0]))
print(f"msrv: Cargo.toml says {packages[root]['rust_version']}; "
      f"the dependencies need {shown} ({needs[1]})")
sys.exit(1 if claimed < needs[0] else 0)

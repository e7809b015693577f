#!/usr/bin/env python3
"""Checks that each workspace crate's rust-version is the true minimum its locked dependencies
need: the highest rust-version over its normal and build dependency closure with every feature on (what a user's build
compiles). Fails, naming the crate and the dependency, when the declared value differs."""
import json, subprocess, sys

meta = json.loads(subprocess.check_output(
    ["cargo", "metadata", "--format-version", "1", "--locked", "--all-features"]))
pkgs = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}


def key(v):
    parts = [int(x) for x in (v or "0").split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def closure(root):
    seen, stack = set(), [root]
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        for dep in nodes[pid]["deps"]:
            if any(k["kind"] in (None, "build") for k in dep["dep_kinds"]):
                stack.append(dep["pkg"])
    return seen


bad = 0
for member in meta["workspace_members"]:
    pkg = pkgs[member]
    if pkg.get("publish") == []:
        continue
    needed = max(closure(member) - {member}, key=lambda p: key(pkgs[p].get("rust_version")))
    need = pkgs[needed].get("rust_version") or "0"
    declared = pkg.get("rust_version")
    print(f"{pkg['name']}: rust-version {declared}; its dependencies need {need} ({pkgs[needed]['name']})")
    if key(declared) != key(need):
        print(f"  {pkg['name']} must declare rust-version = \"{need}\"", file=sys.stderr)
        bad += 1
sys.exit(1 if bad else 0)

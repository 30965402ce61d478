#!/usr/bin/env python3
"""Check that every crate each library builds with (normal and build dependencies, all features on,
this platform) declares a rust-version no newer than the library's own. This machine cannot fetch an older
toolchain, so the MSRV is checked here from the crates' declarations, and on our own code by
clippy's `incompatible_msrv` lint (which reads the same `rust-version`)."""
import json
import subprocess
import sys

LIBRARIES = ["yatagarasu-core", "yatagarasu-s3", "yatagarasu-coalesce", "yatagarasu-cache", "yatagarasu"]


def version_tuple(v):
    parts = [int(x) for x in v.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


host = next(
    line.split()[1]
    for line in subprocess.check_output(["rustc", "-vV"], text=True).splitlines()
    if line.startswith("host:")
)
meta = json.loads(
    subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--all-features",
         "--filter-platform", host]
    )
)
packages = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
by_name = {p["name"]: p for p in meta["packages"] if p["id"] in meta["workspace_members"]}
failed = False
for library in LIBRARIES:
    msrv = by_name[library]["rust_version"]
    seen = set()
    stack = [by_name[library]["id"]]
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        for dep in nodes[pid]["deps"]:
            if any(k["kind"] in (None, "build") for k in dep["dep_kinds"]):
                stack.append(dep["pkg"])
    too_new = sorted(
        f"{packages[pid]['name']} {packages[pid]['version']} needs Rust {packages[pid]['rust_version']}"
        for pid in seen
        if packages[pid].get("rust_version")
        and version_tuple(packages[pid]["rust_version"]) > version_tuple(msrv)
    )
    if too_new:
        failed = True
        print(f"{library} declares rust-version {msrv}, but these dependencies need newer:")
        print("\n".join("  " + t for t in too_new))
    else:
        print(f"{library}: {len(seen) - 1} dependencies, all buildable with Rust {msrv} by their declarations")
sys.exit(1 if failed else 0)

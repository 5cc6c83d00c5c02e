#!/usr/bin/env bash
# Dependencies no source file uses (what `cargo machete` finds, without installing it on every CI
# machine): for each workspace crate, every name in [dependencies], [dev-dependencies] and
# [build-dependencies] must appear as a Rust path (`name::`, `use name`, `name!`) in the crate's own
# .rs files. A dependency kept for another reason (a feature it switches on in a shared crate, a
# runtime-only plug-in) is listed with its reason in the crate's Cargo.toml:
#   [package.metadata.unused-deps]
#   ignored = ["name"]   # and a comment saying why
set -euo pipefail
cd "$(dirname "$0")/../.."
metadata="$(mktemp)"
trap 'rm -f "$metadata"' EXIT
cargo metadata --format-version 1 --filter-platform "$(rustc -vV | sed -n 's/^host: //p')" >"$metadata"
python3 - "$metadata" <<'PY'
import json, pathlib, re, sys

metadata = json.load(open(sys.argv[1]))
# A dependency's Rust name is its library target's (async-stripe's is `stripe`), unless renamed.
lib_name = {}
for package in metadata["packages"]:
    for target in package["targets"]:
        if "lib" in target["kind"] or "proc-macro" in target["kind"] or "rlib" in target["kind"]:
            lib_name.setdefault(package["name"], target["name"].replace("-", "_"))
members = [p for p in metadata["packages"] if p["id"] in metadata["workspace_members"]]
unused = []
for package in members:
    crate_dir = pathlib.Path(package["manifest_path"]).parent
    ignored = set(((package.get("metadata") or {}).get("unused-deps") or {}).get("ignored", []))
    sources = "\n".join(p.read_text() for p in crate_dir.rglob("*.rs") if "target" not in p.parts)
    for dep in package["dependencies"]:
        key = dep.get("rename") or dep["name"]
        if key in ignored:
            continue
        ident = (dep.get("rename") or lib_name.get(dep["name"], dep["name"])).replace("-", "_")
        used = re.search(rf"\b{re.escape(ident)}\b\s*(::|!|;|\s+as\b)|\buse\s+{re.escape(ident)}\b", sources)
        if not used:
            unused.append(f"{package['name']} ({dep.get('kind') or 'normal'}): {key}")
for line in unused:
    print(f"unused dependency: {line}", file=sys.stderr)
if unused:
    sys.exit("remove them, or list them under [package.metadata.unused-deps] ignored with the reason")
print(f"unused-deps: every dependency of the {len(members)} workspace crates is used")
PY

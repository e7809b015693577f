#!/usr/bin/env python3
"""Cross-checks the catalogue against the official Go SDK's generated models.

    python3 crates/catalog-gen/crosscheck/go_models.py /work/.mirror/wechatpay-apiv3+wechatpay-go/repo

Reads `services/**/api_*.go` (method, path, request and answer model of each call) and
`services/**/models.go` (each model's fields: JSON name, required = no `omitempty`, Go type,
enumerations) of a local clone of github.com/wechatpay-apiv3/wechatpay-go (read with `git
show`, nothing copied), finds the catalogue's operation of each call, and compares field by
field: required or optional, enumerated values, JSON type (integers above all). Writes
catalog/crosscheck-go.tsv (one line per comparison that disagrees, with its resolution) and
prints the counts; crates/catalog-gen puts them in catalog/report.md.
"""

import json
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def git(repo, *args):
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, text=True).stdout


def load_go(repo):
    commit = git(repo, "rev-parse", "HEAD").strip()
    files = [f for f in git(repo, "ls-tree", "-r", "--name-only", "HEAD", "services").splitlines() if f.endswith(".go") and not f.endswith("_test.go")]
    pkgs = {}
    for f in files:
        pkg = os.path.dirname(f)
        pkgs.setdefault(pkg, {"api": [], "models": []})
        kind = "models" if os.path.basename(f) == "models.go" else "api" if os.path.basename(f).startswith("api_") else None
        if kind:
            pkgs[pkg][kind].append(git(repo, "show", f"HEAD:{f}"))
    return commit, pkgs


STRUCT = re.compile(r"^type (\w+) struct \{\n(.*?)^\}", re.M | re.S)
FIELD = re.compile(r"^\t(\w+) (\S+) `json:\"([^\"]*)\"`", re.M)
ENUM = re.compile(r"^\t\w+\s+(\w+) = \"([^\"]*)\"", re.M)
CALL = re.compile(r"func \(a \*\w+\) (\w+)\(ctx context\.Context, req (\w+)\) \(resp \*(\w+|\[\]byte|interface\{\})?", re.M)


def models(texts):
    structs, enums = {}, {}
    for t in texts:
        for name, body in STRUCT.findall(t):
            fields = []
            for fname, ty, tag in FIELD.findall(body):
                parts = tag.split(",")
                if parts[0] in ("", "-"):
                    continue
                fields.append((parts[0], ty, "omitempty" not in parts[1:]))
            structs[name] = fields
        for ty, v in ENUM.findall(t):
            enums.setdefault(ty, []).append(v)
    return structs, enums


def calls(texts):
    out = []
    for t in texts:
        for m in CALL.finditer(t):
            body = t[m.end():]
            end = body.find("\nfunc ")
            body = body[: end if end > 0 else len(body)]
            method = re.search(r"nethttp\.Method(\w+)", body)
            path = re.search(r'localVarPath := consts\.WechatPayAPIServer \+ "([^"]+)"', body)
            if not (method and path):
                continue
            query = re.findall(r'localVarQueryParams\.Add\("(\w+)"', body)
            out.append({
                "name": m.group(1),
                "method": method.group(1).upper(),
                "path": path.group(1).lstrip("/"),
                "req": m.group(2),
                "resp": m.group(3),
                "query": query,
                "body": "localVarPostBody = req" in body,
            })
    return out


def go_json_type(ty, structs, enums):
    t = ty.lstrip("*")
    if t.startswith("[]"):
        inner = go_json_type(t[2:], structs, enums)
        return inner + "[]" if inner in ("string", "integer", "number", "object") else "array"
    if t in ("string", "time.Time"):
        return "string"
    if t in ("int64", "int32", "int", "uint64", "int8", "int16"):
        return "integer"
    if t in ("float64", "float32"):
        return "number"
    if t == "bool":
        return "boolean"
    if t in enums:
        return "string"
    if t in structs:
        return "object"
    if t.startswith("map["):
        return "object"
    return "any"


def catalogue():
    ops = {}
    with open(os.path.join(ROOT, "src/catalog/operations.jsonl"), encoding="utf-8") as f:
        for line in f:
            o = json.loads(line)
            shape = re.sub(r"\{[^}]*\}", "{}", o["p"])
            ops[(o["m"], shape)] = o
    return ops


def cat_field(a):
    ty = a[1] if len(a) > 1 else ""
    ty = {"": "string", "any": "any"}.get(ty, ty)
    return {
        "name": a[0],
        "type": ty,
        "required": len(a) > 2 and a[2] == 1,
        "enum": a[4] if len(a) > 4 and isinstance(a[4], list) else [],
        "children": [cat_field(c) for c in a[6]] if len(a) > 6 and a[6] else [],
        "groups": [g[1:] for g in a[7]] if len(a) > 7 else [],
    }


def corrected():
    """The fields catalog/corrections.tsv types: (operation, where, pointer)."""
    out = set()
    path = os.path.join(ROOT, "catalog/corrections.tsv")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("#") or not line.strip():
                    continue
                c = line.rstrip("\n").split("\t")
                out.add((f"{c[0]} {c[1]}", c[2], c[3], "enum" if c[4].startswith("enum=") else "type"))
    return out


CORRECTED = corrected()


def compare(op, where, gofields, catfields, groups, structs, enums, at, rows, counts, seen):
    by = {c["name"]: c for c in catfields}
    in_group = {m for g in groups for m in g}
    for name, ty, required in gofields:
        c = by.get(name)
        here = f"{at}/{name}"
        if c is None:
            counts["sdk_only"] += 1
            continue
        base = ty.lstrip("*").lstrip("[]").lstrip("*")
        gtype = go_json_type(ty, structs, enums)
        # required
        counts["compared"] += 1
        if required == c["required"]:
            counts["agree_required"] += 1
        elif name in in_group and not required:
            counts["agree_required"] += 1
        else:
            rows.append((op, where, here, "required", "required" if c["required"] else "optional", "required" if required else "optional"))
        # type
        ctype = c["type"]
        if gtype == "any" or ctype == "any" or gtype == ctype or (gtype == "array" and ctype.endswith("[]")):
            counts["agree_type"] += 1
            if (op, where, here, "type") in CORRECTED:
                counts["type_by_correction"] += 1
        else:
            rows.append((op, where, here, "type", ctype, gtype))
        # enumeration
        if base in enums:
            if sorted(enums[base]) == sorted(c["enum"]):
                counts["agree_enum"] += 1
            else:
                rows.append((op, where, here, "enum", "|".join(c["enum"]) or "-", "|".join(enums[base])))
        elif c["enum"]:
            counts["page_only_enum"] += 1
        if base in structs and c["children"] and (base, here) not in seen:
            seen.add((base, here))
            compare(op, where, structs[base], c["children"], c["groups"], structs, enums, here, rows, counts, seen)
    for c in catfields:
        if c["name"] not in {g[0] for g in gofields}:
            counts["page_only"] += 1


def resolve(row, op_groups):
    """The recorded resolution of a disagreement: (who is followed, why)."""
    op, where, at, aspect, page, sdk = row
    if (op, where, at, aspect) in CORRECTED:
        return ("both", "the page's and the SDK's values are accepted (catalog/corrections.tsv): strict validation refuses neither official source's value")
    if aspect == "required" and where == "answer":
        return ("page", "answer fields: the page's required marks stay; the SDK's answer models decode any field absent or present, their tags are no check")
    if aspect == "required" and page == "required":
        return ("page", "the page marks it required; the SDK's request model leaves the check to the platform (omitempty)")
    if aspect == "required":
        return ("page", "the page marks it optional (often inside an optional object the SDK requires it in): strict validation does not refuse what the page allows; the platform's answer says more")
    if aspect == "type" and sdk == "integer" and page == "number":
        return ("note", "the SDK's model says int64; the page writes number without a unit: kept number (the catalogue types by the page's wording, docs/catalog.md); the validator takes an integer for a number")
    if aspect == "type" and page == "integer" and sdk == "number":
        return ("page", "the page says integer (in fen); the SDK's float64 is wider")
    if aspect == "type":
        return ("page", "the page's type; the SDK's model types it otherwise")
    if aspect == "enum" and page == "-":
        return ("note", "the SDK enumerates values the page leaves open: not enforced (an unknown value would be refused wrongly if the platform adds one)")
    if aspect == "enum":
        return ("page", "the page's enumeration (the newer source); the SDK's differs")
    return ("note", "")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    repo = sys.argv[1]
    commit, pkgs = load_go(repo)
    ops = catalogue()
    rows, counts = [], {k: 0 for k in ("compared", "agree_required", "agree_type", "type_by_correction", "agree_enum", "page_only_enum", "sdk_only", "page_only")}
    covered, missing = set(), []
    for pkg, texts in sorted(pkgs.items()):
        structs, enums = models(texts["models"])
        for c in calls(texts["api"]):
            shape = re.sub(r"\{[^}]*\}", "{}", c["path"])
            op = ops.get((c["method"], shape))
            if op is None:
                missing.append(f"{c['method']} {c['path']}")
                continue
            key = f"{op['m']} {op['p']}"
            covered.add(key)
            req = [cat_field(f) for f in op["req"]]
            placeholders = re.findall(r"\{(\w+)\}", c["path"])
            gofields = [f for f in structs.get(c["req"], []) if f[0] not in placeholders]
            holder = "json" if c["body"] else "query"
            top = next((f for f in req if f["name"] == holder), None)
            if top is not None:
                compare(key, "request", gofields, top["children"], top["groups"], structs, enums, "/" + holder, rows, counts, set())
            if c["resp"] in structs:
                res = [cat_field(f) for f in op["res"]]
                compare(key, "answer", structs[c["resp"]], res, [], structs, enums, "", rows, counts, set())
    rows = sorted(set(rows))
    out = os.path.join(ROOT, "catalog/crosscheck-go.tsv")
    with open(out, "w", encoding="utf-8") as f:
        f.write(f"# wechatpay-go {commit}: {len(covered)} operations compared; written by crates/catalog-gen/crosscheck/go_models.py\n")
        f.write("# " + " ".join(f"{k}={v}" for k, v in counts.items()) + f" disagreements={len(rows)} sdk_calls_not_in_catalogue={len(missing)}\n")
        f.write("# operation\twhere\tpointer\taspect\tpage\tsdk\tfollowed\twhy\n")
        for r in rows:
            who, why = resolve(r, None)
            f.write("\t".join(r) + f"\t{who}\t{why}\n")
        for m in sorted(set(missing)):
            f.write(f"# not in the catalogue: {m}\n")
    print(f"{len(covered)} operations, {counts}, {len(rows)} disagreements, {len(set(missing))} SDK calls not in the catalogue")


if __name__ == "__main__":
    main()

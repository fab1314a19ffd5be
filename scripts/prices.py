#!/usr/bin/env python3
"""Generates the filter's built-in price table from a pinned release of pydantic's
genai-prices catalog (`make prices`).

The catalog is the PyPI package `genai-prices` (MIT). Its wheel carries the data as
Python source (`genai_prices/data.py`); this script reads that file with `ast` (nothing
from the package is imported or run), keeps the providers the gateway routes to
(OpenAI, Anthropic, Google/Gemini, AWS Bedrock), and writes them in genai-prices' own
published JSON schema (`prices/new_data/v2/data_slim.json` upstream):

  [{"id": "anthropic", "name": ..., "models": [{"id", "match", "prices", "deprecated"?}, ...]}, ...]

so the filter parses the built-in file, a copy of this output served on a cluster, and
upstream's own data_slim.json with one parser (`src/pricing/catalog.rs`). Per model it
keeps the match rule and the token, cache and web-search prices (tiers and dated price
changes included); request variants (batch, fast) and prices the gateway never bills
(audio, images, per-character) are left out. One model per line, so a regeneration's
diff shows exactly which prices changed.

Usage:
  scripts/prices.py                  download the pinned wheel with pip and regenerate
  scripts/prices.py --wheel FILE     use a wheel already downloaded (checked against the pin)
  scripts/prices.py --version X --sha256 H   try another release (then update PINNED below)
"""
import argparse
import ast
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pinned_wheel import pinned_wheel  # noqa: E402

# The catalog release in the build. To update: bump both, run `make prices`, review the diff
# of src/pricing/catalog.json, and update the pinned prices in src/pricing/tests.rs.
PINNED_VERSION = "0.2.5"
PINNED_SHA256 = "864883e3b52031840b8240283c0a3b4ba22315b588e7fe2876025e38194179fc"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "src/pricing/catalog.json")
VERSION_OUT = os.path.join(ROOT, "src/pricing/catalog.version")
# genai-prices is MIT-licensed: its notice ships beside the data.
LICENSE_OUT = os.path.join(ROOT, "src/pricing/catalog.LICENSE")
# genai-prices provider ids, in the order the filter's `Provider` enum maps onto them.
PROVIDERS = ["openai", "anthropic", "google", "aws"]
# Price keys the gateway bills (USD per 1M tokens, or per 1000 web searches).
PRICE_KEYS = ["input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "cache_write_1h_mtok",
              "web_searches_kcount"]


class Unsupported(Exception):
    pass


def evaluate(node):
    """A literal Python expression of data.py as plain data; calls become {"$t": name, ...}."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [evaluate(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        return {evaluate(k): evaluate(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -evaluate(node.operand)
    if isinstance(node, ast.Call):
        name = ast.unparse(node.func)
        if name == "Decimal":
            return {"$t": "Decimal", "value": evaluate(node.args[0])}
        out = {"$t": name}
        if node.args:
            out["$args"] = [evaluate(a) for a in node.args]
        for kw in node.keywords:
            out[kw.arg] = evaluate(kw.value)
        return out
    if isinstance(node, ast.Attribute):
        return {"$t": ast.unparse(node)}
    raise Unsupported(f"unexpected expression in data.py: {ast.unparse(node)[:80]}")


def load_providers(source):
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "providers":
            return evaluate(node.value)
    raise Unsupported("data.py has no `providers` list")


def number(value):
    if not (isinstance(value, dict) and value.get("$t") == "Decimal"):
        raise Unsupported(f"expected a Decimal, got {value!r}")
    f = float(value["value"])
    return int(f) if f == int(f) and abs(f) < 1e15 else f


def clause(c):
    kind = c["$t"]
    if kind == "ClauseOr":
        return {"or": [clause(x) for x in c["or_"]]}
    if kind == "ClauseAnd":
        return {"and": [clause(x) for x in c["and_"]]}
    simple = {"ClauseEquals": "equals", "ClauseStartsWith": "starts_with", "ClauseEndsWith": "ends_with",
              "ClauseContains": "contains", "ClauseRegex": "regex"}
    if kind not in simple:
        raise Unsupported(f"unknown match clause {kind}")
    key = simple[kind]
    return {key: c[key]}


def price_value(v):
    if isinstance(v, dict) and v.get("$t") == "TieredPrices":
        return {"base": number(v["base"]), "tiers": [{"start": t["start"], "price": number(t["price"])}
                                                     for t in v["tiers"]]}
    return number(v)


def model_prices(p):
    if p.get("$t") != "ModelPrice":
        raise Unsupported(f"expected ModelPrice, got {p.get('$t')}")
    return {k: price_value(p[k]) for k in PRICE_KEYS if p.get(k) is not None}


def constraint(c):
    if c is None:
        return None
    if c["$t"] != "StartDateConstraint":
        raise Unsupported(f"unsupported constraint {c['$t']}")
    y, m, d = c["start_date"]["$args"]
    return {"start_date": f"{y:04d}-{m:02d}-{d:02d}"}


def prices(p):
    if isinstance(p, list):
        out = []
        for cp in p:
            entry = {}
            if cp.get("constraint") is not None:
                entry["constraint"] = constraint(cp["constraint"])
            entry["prices"] = model_prices(cp["prices"])
            out.append(entry)
        return out
    return model_prices(p)


def billed(p):
    """Whether a model has a token price the gateway can bill."""
    rows = [e["prices"] for e in p] if isinstance(p, list) else [p]
    return any("input_mtok" in r or "output_mtok" in r for r in rows)


def convert(providers):
    by_id = {p["id"]: p for p in providers}
    out = []
    for pid in PROVIDERS:
        if pid not in by_id:
            raise Unsupported(f"the catalog has no provider {pid!r}")
        p = by_id[pid]
        models = []
        for m in p["models"]:
            ps = prices(m["prices"])
            if not billed(ps):
                continue
            model = {"id": m["id"], "match": clause(m["match"]), "prices": ps}
            if m.get("deprecated"):
                model["deprecated"] = True
            models.append(model)
        out.append({"id": pid, "name": p["name"], "models": models})
    return out


def dump(providers):
    """Valid JSON, one model per line, so review diffs are per model."""
    lines = ["["]
    for i, p in enumerate(providers):
        head = json.dumps({"id": p["id"], "name": p["name"]}, separators=(",", ":"))
        lines.append(head[:-1] + ',"models":[')
        for j, m in enumerate(p["models"]):
            comma = "," if j + 1 < len(p["models"]) else ""
            lines.append(json.dumps(m, separators=(",", ":")) + comma)
        lines.append("]}" + ("," if i + 1 < len(providers) else ""))
    lines.append("]")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", help="a downloaded genai-prices wheel")
    parser.add_argument("--version", default=PINNED_VERSION)
    parser.add_argument("--sha256", default=PINNED_SHA256)
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args()
    with pinned_wheel("genai-prices", args.version, args.sha256, args.wheel) as z:
        source = z.read("genai_prices/data.py").decode()
        licenses = [n for n in z.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
        license_text = z.read(licenses[0]).decode() if licenses else ""
    providers = convert(load_providers(source))
    with open(args.out, "w") as f:
        f.write(dump(providers))
    if args.out == OUT:
        with open(VERSION_OUT, "w") as f:
            f.write(f"genai-prices {args.version}\n")
        with open(LICENSE_OUT, "w") as f:
            f.write(f"src/pricing/catalog.json is generated from genai-prices {args.version} "
                    f"(https://github.com/pydantic/genai-prices), under this license:\n\n{license_text}")
    counts = ", ".join(f"{p['id']} {len(p['models'])}" for p in providers)
    print(f"wrote {os.path.relpath(args.out, ROOT)} from genai-prices {args.version}: {counts} models")


if __name__ == "__main__":
    main()

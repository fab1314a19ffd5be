#!/usr/bin/env python3
"""Secret hygiene over an end-to-end run (issue 9): reads what the harness
wrote under target/e2e-artifacts (Envoy logs, provider-bound requests,
capture batches, callouts) and fails if
- a client key (phx_/pha_) appears anywhere;
- a provider key appears anywhere but the provider-bound auth header;
- a callout carries a hop-by-hop header;
- a provider-bound request carries the gateway's routing header or a header
  the gateway sets for Envoy."""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CLIENT_KEY = re.compile(rb"\bph[xa]_[A-Za-z0-9_]{4,}")
AUTH_HEADERS = (b"h authorization: ", b"h x-api-key: ", b"h x-goog-api-key: ")
# Headers that are the gateway's business with Envoy, never a provider's.
GATEWAY_ONLY = (b"h x-llm-gateway-cluster:", b"h x-envoy-")
HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization", b"te", b"trailer",
              b"transfer-encoding", b"upgrade"}


def provider_keys():
    stack = (ROOT / "tests/e2e/src/stack.rs").read_text()
    keys = re.findall(r'pub const [A-Z]+_KEY: &str = "([^"]+)";', stack)
    assert len(keys) >= 4, "provider keys not found in stack.rs"
    return [k.encode() for k in keys]


def main(root):
    root = pathlib.Path(root)
    files = sorted(p for p in root.rglob("*") if p.is_file() and (p.suffix == ".log" or p.suffix == ".out"))
    envoy_logs = [p for p in files if p.name.startswith("envoy-")]
    records = [p for p in files if p.name.split("-")[0] in ("mock", "sink", "callout")]
    if not envoy_logs or not records:
        sys.exit(f"secret-scan: nothing to scan under {root} ({len(envoy_logs)} Envoy logs, {len(records)} records)")
    keys = provider_keys()
    problems = []
    lines_seen = 0
    for path in envoy_logs + records:
        kind = path.name.split("-")[0]
        for n, line in enumerate(path.read_bytes().splitlines(), 1):
            lines_seen += 1
            where = f"{path.relative_to(root)}:{n}"
            if m := CLIENT_KEY.search(line):
                problems.append(f"{where}: client key {m.group().decode()[:8]}… in {kind}")
            for key in keys:
                if key in line and not (kind == "mock" and line.startswith(AUTH_HEADERS)):
                    problems.append(f"{where}: provider key {key.decode()[:8]}… in {kind}")
            if kind == "mock" and line.startswith(GATEWAY_ONLY):
                name = line[2:].split(b":", 1)[0].decode(errors="replace")
                problems.append(f"{where}: gateway header {name} reached a provider")
            if kind == "callout" and line.startswith(b"h "):
                name = line[2:].split(b":", 1)[0]
                if name in HOP_BY_HOP:
                    problems.append(f"{where}: hop-by-hop header {name.decode()} in a callout")
    for p in problems[:50]:
        print(p)
    if problems:
        sys.exit(f"secret-scan: {len(problems)} problem(s) in {len(files)} files")
    print(f"secret-scan: clean ({len(envoy_logs)} Envoy logs, {len(records)} request records, {lines_seen} lines)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ROOT / "target/e2e-artifacts")

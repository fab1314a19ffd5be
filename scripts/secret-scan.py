#!/usr/bin/env python3
"""Secret hygiene over an end-to-end run (issue 9): reads what the harness
wrote under target/e2e-artifacts (Envoy logs, provider-bound requests,
capture batches, callouts) and fails if
- a client key (phx_/pha_) appears anywhere;
- a provider key appears anywhere but the provider-bound auth header (an AWS secret
  access key anywhere at all);
- a callout carries a hop-by-hop header;
- a provider-bound request carries the gateway's routing header or a header
  the gateway sets for Envoy."""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CLIENT_KEY = re.compile(rb"\bph[xa]_[A-Za-z0-9_]{4,}")
# A provider's credential may appear only in the header that carries it to the provider:
# Bearer keys, Anthropic's x-api-key, Azure's api-key, and for SigV4 the access key id (in
# authorization's Credential=) and the session token (x-amz-security-token). An AWS secret
# access key never leaves Envoy: it appears nowhere.
AUTH_HEADERS = (b"h authorization: ", b"h x-api-key: ", b"h x-goog-api-key: ", b"h api-key: ",
                b"h x-amz-security-token: ")
# Headers that are the gateway's business with Envoy, never a provider's. The one
# exception (README "Failover"): a request sent with a fallback chain keeps the routing
# header, which every attempt's routing reads from the one header map all attempts
# share; its x-llm-gateway-failover header says so.
GATEWAY_ONLY = (b"h x-llm-gateway-cluster:", b"h x-envoy-")
FAILOVER_KEPT = (b"h x-llm-gateway-cluster:", b"h x-llm-gateway-failover:")
HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization", b"te", b"trailer",
              b"transfer-encoding", b"upgrade"}


def secret_only():
    """Keys that must appear nowhere, not even in an auth header: the AWS secret access key."""
    stack = (ROOT / "tests/e2e/src/stack.rs").read_text()
    return {k.encode() for k in re.findall(r'pub const AWS_SECRET_KEY: &str = "([^"]+)";', stack)}


SECRET_ONLY = secret_only()


def provider_keys():
    stack = (ROOT / "tests/e2e/src/stack.rs").read_text()
    consts = re.findall(r'pub const [A-Z_]+_KEY: &str = "([^"]+)";', stack)
    keys = [k for k in consts if not CLIENT_KEY.match(k.encode())]
    assert len(keys) >= 8, "provider keys not found in stack.rs"
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
        lines = path.read_bytes().splitlines()
        # The recorded requests (each from its "=== " line) that carry a fallback chain.
        chained, start = set(), 0
        for n, line in enumerate(lines + [b"=== "]):
            if line.startswith(b"=== "):
                block = lines[start:n]
                if any(l.startswith(b"h x-llm-gateway-failover:") for l in block):
                    chained.update(range(start + 1, n + 1))
                start = n
        for n, line in enumerate(lines, 1):
            lines_seen += 1
            where = f"{path.relative_to(root)}:{n}"
            if m := CLIENT_KEY.search(line):
                problems.append(f"{where}: client key {m.group().decode()[:8]}… in {kind}")
            for key in keys:
                allowed = kind == "mock" and line.startswith(AUTH_HEADERS) and key not in SECRET_ONLY
                if key in line and not allowed:
                    problems.append(f"{where}: provider key {key.decode()[:8]}… in {kind}")
            if kind == "mock" and line.startswith(GATEWAY_ONLY) and not (n in chained and line.startswith(FAILOVER_KEPT)):
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

#!/usr/bin/env python3
"""Save Mode cost in the filter (V8): a 1 MiB Anthropic Messages body with cache
breakpoints, sent through the local stack (scripts/run.sh, mock provider, one
Envoy worker) interleaved three ways, reporting the median paired difference:
Save Mode off (product `wizard`), on with 4 breakpoints upgraded, and on with
nothing to change (every breakpoint already 1h: a full scan, no rewrite).

Usage: python3 bench/save_mode.py [ITERATIONS]   (after `make build`)
"""
import hashlib, json, os, signal, socket, statistics, subprocess, sys, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORTS = {"LLMGW_PORT": 19100, "LLMGW_ADMIN_PORT": 19101, "LLMGW_MOCK_PORT": 19102, "LLMGW_SINK_PORT": 19103,
         "LLMGW_REDIS_PORT": 19104, "LLMGW_WEBDIS_PORT": 19105}
KEY = "phx_savemode_bench_key"


def body(ttl):
    cc = {"type": "ephemeral"} if ttl is None else {"type": "ephemeral", "ttl": ttl}
    blocks = []
    for i in range(480):
        block = {"type": "text", "text": ("lorem ipsum dolor sit amet " * 80)[:2100]}
        if i % 160 == 159:
            block["cache_control"] = cc
        blocks.append(block)
    return json.dumps({"model": "claude-sonnet-4-6", "max_tokens": 5,
                       "system": [{"type": "text", "text": "s", "cache_control": cc}],
                       "messages": [{"role": "user", "content": blocks}]}).encode()


def one(path, data):
    req = urllib.request.Request(f"http://127.0.0.1:{PORTS['LLMGW_PORT']}{path}", data=data,
                                 headers={"x-api-key": KEY, "content-type": "application/json"})
    t = time.perf_counter()
    urllib.request.urlopen(req).read()
    return (time.perf_counter() - t) * 1000


def main(n):
    env = dict(os.environ, LLMGW_CONCURRENCY="1", **{k: str(v) for k, v in PORTS.items()})
    stack = subprocess.Popen([os.path.join(ROOT, "scripts/run.sh")], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", PORTS["LLMGW_PORT"]), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        digest = hashlib.sha256(KEY.encode()).hexdigest()
        principal = {"team_id": 77, "scopes": ["llm_gateway:read"], "cost_controls": True}
        subprocess.run(["redis-cli", "-p", str(PORTS["LLMGW_REDIS_PORT"]), "SET", f"llmgw:key:{digest}",
                        json.dumps(principal)], check=True, capture_output=True)
        upgradable, already = body(None), body("1h")
        for _ in range(5):
            one("/wizard/v1/messages", upgradable)
        up, same = [], []
        for _ in range(n):
            off = one("/wizard/v1/messages", upgradable)
            up.append(one("/posthog_code/v1/messages", upgradable) - off)
            same.append(one("/posthog_code/v1/messages", already) - off)
        print(f"body {len(upgradable)} bytes, {n} interleaved rounds, load average {os.getloadavg()[0]:.2f}")
        print(f"added by the upgrade (4 breakpoints rewritten): median {statistics.median(up):.2f} ms")
        print(f"added by the scan when nothing changes:         median {statistics.median(same):.2f} ms")
    finally:
        os.killpg(stack.pid, signal.SIGTERM)
        stack.wait()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 150)

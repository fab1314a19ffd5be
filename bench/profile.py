#!/usr/bin/env python3
"""Where an Envoy system's CPU goes, per request: `perf` on the Envoy process
under closed-loop load, split by binary (Envoy + V8 runtime, wasm JIT code,
kernel, libc). Uses the systems of bench/bench.py, started the same way
(pinned, same mock, same scheduling).

  bench/profile.py [--body-bytes 1024] [--seconds 5] [--perf-data DIR] SYSTEM...

e.g. `bench/profile.py no-filter wasm-body filter`. Needs `perf` (linux-perf)
and permission to profile (root, or kernel.perf_event_paranoid <= 1). The
Envoy from PyPI is stripped, so time inside Envoy and V8 is one bucket; JIT
code shows as `[JIT]`.

`bench/profile.py --timing filter` instead loads the `callback-timing` build
of the filter (`make build-timing`), which adds each callback's wall time to a
counter, and prints the time per request inside each callback: the filter's
own code and the hostcalls it makes, without the runtime's entry and exit,
with the hostcalls and heap allocations each callback makes per request.
With `--rate R` the load is an open loop at R req/s instead (500: the
latency targets' rate, where each request finds the caches colder).
With `--stream` its calls are streamed (the mock's 8 content events, 1 ms apart).
`--scenario NAME` sends a bench scenario's own requests instead (`agent-codex`:
Codex's recorded request, translated for Claude; closed loop all the same).
`--wasm PATH` loads another callback-timing build instead (another commit's,
to compare before and after in one run). A floor system (`wasm-hostcalls`)
times its own callbacks the same way (wall time only), for a comparison
callback by callback.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as b  # noqa: E402


def dso_split(data):
    out = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso", "--stdio", "-g", "none"],
                         capture_output=True, text=True).stdout
    split = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(.+?)\s*$", line)
        if m:
            name = m.group(2)
            name = "[JIT] wasm code" if name.startswith("[JIT]") else name
            split[name] = split.get(name, 0) + float(m.group(1))
    return split


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("systems", nargs="+")
    ap.add_argument("--body-bytes", type=int, default=1024)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--perf-data", default=b.RUN)
    ap.add_argument("--timing", action="store_true", help="per-callback time from the callback-timing build")
    ap.add_argument("--stream", action="store_true", help="--timing: streamed calls (8 content events 1 ms apart)")
    ap.add_argument("--wasm", default=TIMING_WASM, help="--timing: the callback-timing build to load")
    ap.add_argument("--scenario", help="--timing: a bench scenario's requests instead (agent-codex, agent-claude-code)")
    ap.add_argument("--rate", type=float, help="--timing: an open loop at this many req/s instead of the closed loop "
                    "(at a low rate every request finds the caches cold, as at the latency targets' 500 req/s)")
    args = ap.parse_args()
    if args.timing:
        return timing(args)
    if not shutil.which("perf"):
        sys.exit("profile: perf not found (apt-get install linux-perf)")
    os.makedirs(b.RUN, exist_ok=True)
    signal.signal(signal.SIGTERM, b.on_signal)
    signal.signal(signal.SIGINT, b.on_signal)
    try:
        ports = b.start_shared()
        rows = []
        for name in args.systems:
            system = b.SYSTEM_BY_NAME[name]
            s = b.start_envoy(system, ports)
            b.probe(s)
            duration = args.seconds + 2
            load = subprocess.Popen(b.pinned(b.CLIENT_CORE, [
                b.TOOL, "load", "--port", str(s["port"]), "--closed", "--conns", "8", "--duration", str(duration),
                "--warmup", "1", "--body-bytes", str(args.body_bytes), "--watch-pid", str(s["pid"])]
                + sum([["--header", h] for h in s["headers"]], [])), stdout=subprocess.PIPE, text=True)
            time.sleep(1.5)
            data = os.path.join(args.perf_data, f"perf-{name}.data")
            subprocess.run(["perf", "record", "-F", "999", "-g", "-o", data, "-p", str(s["pid"]), "--", "sleep",
                            str(args.seconds)], capture_output=True, check=True)
            result = json.loads(load.communicate()[0])
            per_req = result["procs"][0]["cpu_s_per_1k"] * 1000  # µs of CPU per request
            rows.append((name, result["throughput_rps"], per_req, dso_split(data)))
            s["proc"].terminate()
            s["proc"].wait()
        print(f"\nCPU per request by binary, closed loop, {args.body_bytes}-byte chat bodies "
              f"(µs; perf runs alongside, so totals are a little above bench.py's):\n")
        keys = ["envoy", "[JIT] wasm code", "[kernel.kallsyms]", "libc.so.6"]
        print("| system | req/s | CPU µs / req | " + " | ".join(keys) + " | other |")
        print("|---|---|---|" + "---|" * (len(keys) + 1))
        for name, rps, per_req, split in rows:
            cells = [f"{per_req * split.get(k, 0) / 100:.0f}" for k in keys]
            other = per_req * (100 - sum(split.get(k, 0) for k in keys)) / 100
            print(f"| {name} | {rps:.0f} | {per_req:.0f} | " + " | ".join(cells) + f" | {other:.0f} |")
    finally:
        b.stop_all()


TIMING_WASM = os.path.join(b.ROOT, "target/wasm32-wasip1/timing/llm_gateway.wasm")


def request_args(args, port):
    """The load generator's request: a 1 KB-style chat body, or a bench scenario's
    own path, body (written to a file), streaming and expected end."""
    if not args.scenario:
        return ["--body-bytes", str(args.body_bytes)] + (["--stream"] if args.stream else [])
    scenario = next((sc for sc in b.SCENARIOS if sc["name"] == args.scenario), None)
    if scenario is None or "body_fn" not in scenario:
        sys.exit(f"profile: --scenario {args.scenario}: no bench scenario of that name with its own body")
    path = os.path.join(b.RUN, f"timing-body-{args.scenario}-{port}.json")
    with open(path, "wb") as f:
        f.write(scenario["body_fn"]())
    expect = scenario.get("expect")
    if isinstance(expect, dict):
        expect = expect.get("*")
    return (["--path", scenario.get("path", "/v1/chat/completions"), "--body-file", path]
            + (["--stream"] if scenario.get("stream") else []) + (["--expect-body", expect] if expect else []))


def timing(args):
    if not os.path.exists(args.wasm):
        sys.exit(f"profile: {args.wasm} missing (make build-timing)")
    os.makedirs(b.RUN, exist_ok=True)
    try:
        ports = b.start_shared()
        for name in args.systems:
            system = b.SYSTEM_BY_NAME[name]
            # A floor times its own callbacks; every other system loads the callback-timing build.
            system = ({**system, "plugin": {**system["plugin"], "timed": True}} if system.get("floor")
                      else {**system, "wasm": args.wasm})
            wasm = system["wasm"]
            s = b.start_envoy(system, ports)
            b.probe(s)
            loop = ["--rate", str(args.rate), "--conns", "4"] if args.rate else ["--closed", "--conns", "8"]
            load = subprocess.run(b.pinned(b.CLIENT_CORE, [
                b.TOOL, "load", "--port", str(s["port"])] + loop + ["--duration",
                str(args.seconds), "--warmup", "1", "--watch-pid", str(s["pid"])] + request_args(args, s["port"])
                + sum([["--header", h] for h in s["headers"]], [])),
                capture_output=True, text=True, check=True)
            rps = json.loads(load.stdout)["throughput_rps"]
            stats = b.admin_stats(s["admin"], "wasmcustom")
            requests = stats.get("wasmcustom.llm_gateway.requests_total", 0)
            what = f"the {args.scenario} scenario's requests" if args.scenario else f"{args.body_bytes}-byte bodies"
            how = f"open loop at {args.rate:g} req/s" if args.rate else f"closed loop at {rps:.0f} req/s"
            print(f"\n{name} ({os.path.relpath(wasm, b.ROOT)}): {requests} requests, {how}, {what}; "
                  "wall time inside each callback per request (µs):\n")
            print("| callback | µs / request | hostcalls / request | allocations / request |\n|---|---|---|---|")
            rows = {}
            for key, value in stats.items():
                if key.startswith("wasmcustom.llm_gateway.timing.") and requests:
                    callback, _, unit = key.rsplit(".", 1)[-1].rpartition("_")
                    rows.setdefault(callback, {})[unit] = value / requests
            # A floor counts its wall time only: its other columns are "–".
            counted = lambda unit, per: f"{per[unit]:.1f}" if unit in per else "–"  # noqa: E731
            for callback, per in sorted(rows.items()):
                print(f"| {callback} | {per.get('ns', 0) / 1000:.1f} | {counted('hostcalls', per)} | {counted('allocs', per)} |")
            total = {unit: sum(p[unit] for p in rows.values()) for unit in ("ns", "hostcalls", "allocs")
                     if all(unit in p for p in rows.values())}
            print(f"| all | {total.get('ns', 0) / 1000:.1f} | {counted('hostcalls', total)} | {counted('allocs', total)} |")
            s["proc"].terminate()
            s["proc"].wait()
    finally:
        b.stop_all()


if __name__ == "__main__":
    main()

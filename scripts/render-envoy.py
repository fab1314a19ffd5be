#!/usr/bin/env python3
"""Renders envoy/envoy.yaml.tmpl for the local stack (`make run`).

Usage: render-envoy.py OUT.yaml
Reads ports and paths from the environment (defaults in scripts/run.sh). A
provider whose LLM_GATEWAY_<NAME>_API_KEY is set goes to its real API; the
others go to the bundled mock. Prints one banner line saying which is which.
"""
import json
import os
import string
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROVIDERS = ["openai", "anthropic", "gemini"]


def main(out_path):
    mocked = os.environ.get("LLMGW_MOCKED", "").split()
    config = {
        "providers": {p: {"cluster": "mock"} for p in mocked},
        # Local stack: both destinations are the bundled capture sink, which prints what arrives.
        "capture": {
            "region_url": "http://localhost:8010",
            "flush_interval_ms": 500,
            "primary": {"cluster": "posthog_primary", "authority": "localhost", "api_key": "phc_local_primary"},
            "secondary": {"cluster": "posthog_secondary", "authority": "localhost", "path": "/batch/",
                          "api_key": "phc_local_mirror"},
        },
    }
    extra = os.environ.get("LLMGW_PLUGIN_CONFIG")
    if extra:
        config.update(json.loads(extra))
    env = os.environ
    values = {
        "LISTEN_PORT": env["LLMGW_PORT"],
        "ADMIN_PORT": env["LLMGW_ADMIN_PORT"],
        "WASM_PATH": os.path.join(ROOT, "target/wasm32-wasip1/release/llm_gateway.wasm"),
        "BODY_LIMIT": env.get("LLMGW_BODY_LIMIT", str(32 * 1024 * 1024 + 65536)),
        # A JSON string literal is also a valid YAML double-quoted scalar.
        "PLUGIN_CONFIG": json.dumps(json.dumps(config)),
        "MOCK_PORT": env["LLMGW_MOCK_PORT"],
        "SINK_PORT": env["LLMGW_SINK_PORT"],
        "SINK2_PORT": env["LLMGW_SINK_PORT"],
        "WEBDIS_PORT": env["LLMGW_WEBDIS_PORT"],
        "AUTH_PORT": env.get("LLMGW_AUTH_PORT", env["LLMGW_WEBDIS_PORT"]),
    }
    with open(os.path.join(ROOT, "envoy/envoy.yaml.tmpl")) as f:
        rendered = string.Template(f.read()).substitute(values)
    with open(out_path, "w") as f:
        f.write(rendered)
    banner = ", ".join(f"{p}: {'mock' if p in mocked else 'real'}" for p in PROVIDERS)
    print(f"llm-gateway on http://127.0.0.1:{values['LISTEN_PORT']} ({banner})")


if __name__ == "__main__":
    main(sys.argv[1])

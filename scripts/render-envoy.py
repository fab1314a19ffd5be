#!/usr/bin/env python3
"""Renders envoy/envoy.yaml.tmpl, the one Envoy configuration source.

Usage:
  render-envoy.py OUT                  the local stack (`make run`), from the environment
  render-envoy.py --profile NAME [--set VAR=VALUE ...] OUT
                                       a deployment profile: production, compose, compose-mock
  render-envoy.py --all                re-renders every checked-in example (see PROFILES)
  --no-failover                        leaves out the failover route (Envoy < 1.39, see the README)

OUT may be `-` for stdout. The local stack reads ports and paths from the
environment (defaults in scripts/run.sh): a provider whose
LLM_GATEWAY_<NAME>_API_KEY is set goes to its real API, the others to the
bundled mock, and one banner line says which is which. The end-to-end tests
fill the same template themselves (tests/e2e/src/stack.rs).
"""
import argparse
import json
import os
import string
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(ROOT, "envoy/envoy.yaml.tmpl")
PROVIDERS = ["openai", "anthropic", "gemini"]
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# 32 MiB, the filter's default max_request_body_bytes, plus room for headers.
BODY_LIMIT = str(32 * 1024 * 1024 + 65536)


def plaintext():
    return ("\n      name: envoy.transport_sockets.raw_buffer"
            '\n      typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}')


def tls(host):
    """TLS to `host`: SNI, the system CA bundle, and the certificate must name the host."""
    return ("\n      name: envoy.transport_sockets.tls"
            "\n      typed_config:"
            '\n        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext'
            f"\n        sni: {host}"
            "\n        common_tls_context:"
            "\n          validation_context:"
            f"\n            trusted_ca: {{filename: {CA_BUNDLE}}}"
            f"\n            match_typed_subject_alt_names: [{{san_type: DNS, matcher: {{exact: {host}}}}}]")


def service(name, host, port, use_tls=False):
    """The HOST, PORT and TRANSPORT values of one service cluster."""
    values = {f"{name}_HOST": host, f"{name}_PORT": str(port)}
    if name != "MOCK":
        values[f"{name}_TRANSPORT"] = tls(host) if use_tls else plaintext()
    return values


def local_profile():
    """`make run`: everything on loopback, ports from the environment."""
    env = os.environ
    mocked = env.get("LLMGW_MOCKED", "").split()
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
    extra = env.get("LLMGW_PLUGIN_CONFIG")
    if extra:
        config.update(json.loads(extra))
    values = {
        "LISTEN_ADDRESS": "127.0.0.1",
        "LISTEN_PORT": env["LLMGW_PORT"],
        "ADMIN_PORT": env["LLMGW_ADMIN_PORT"],
        "WASM_PATH": os.path.join(ROOT, "target/wasm32-wasip1/release/llm_gateway.wasm"),
        "BODY_LIMIT": env.get("LLMGW_BODY_LIMIT", BODY_LIMIT),
        **service("MOCK", "127.0.0.1", env["LLMGW_MOCK_PORT"]),
        **service("AUTH", "127.0.0.1", env.get("LLMGW_AUTH_PORT", env["LLMGW_WEBDIS_PORT"])),
        **service("WEBDIS", "127.0.0.1", env["LLMGW_WEBDIS_PORT"]),
        **service("SINK", "127.0.0.1", env["LLMGW_SINK_PORT"]),
        **service("SINK2", "127.0.0.1", env["LLMGW_SINK_PORT"]),
    }
    banner = ", ".join(f"{p}: {'mock' if p in mocked else 'real'}" for p in PROVIDERS)
    return values, config, f"llm-gateway on http://127.0.0.1:{values['LISTEN_PORT']} ({banner})"


# Checked-in renders: tests/e2e/tests/deploy.rs asserts each file equals a fresh render
# and passes `envoy --mode validate`. Change a profile here, then run --all.
PROFILES = {
    # An ingress-style Envoy in front of the real providers. Replace the example hosts
    # and the phc_ keys; keep BODY_LIMIT above max_request_body_bytes.
    "production": {
        "out": "envoy/examples/production.yaml",
        "about": "a production-style Envoy: real providers, an auth service, webdis, PostHog US + EU mirror",
        "values": {
            "LISTEN_ADDRESS": "0.0.0.0",
            "LISTEN_PORT": "10000",
            "ADMIN_PORT": "9901",
            "WASM_PATH": "/etc/envoy/llm_gateway.wasm",
            "BODY_LIMIT": BODY_LIMIT,
            **service("MOCK", "127.0.0.1", 18080),
            **service("AUTH", "auth.internal.example.com", 443, use_tls=True),
            **service("WEBDIS", "webdis.internal.example.com", 7379),
            **service("SINK", "us.i.posthog.com", 443, use_tls=True),
            **service("SINK2", "eu.i.posthog.com", 443, use_tls=True),
        },
        "plugin": {
            "max_request_body_bytes": 32 * 1024 * 1024,
            "providers": {
                "openai": {"cluster": "openai", "timeout_ms": 600000},
                "anthropic": {"cluster": "anthropic", "timeout_ms": 600000},
                "gemini": {"cluster": "gemini", "timeout_ms": 600000},
            },
            "auth": {"cluster": "auth", "authority": "auth.internal.example.com", "timeout_ms": 1000},
            "limits": {"cluster": "webdis", "authority": "webdis.internal.example.com"},
            "capture": {
                "region_url": "https://us.posthog.com",
                "primary": {"cluster": "posthog_primary", "authority": "us.i.posthog.com",
                            "api_key": "phc_your_project_api_key"},
                "secondary": {"cluster": "posthog_secondary", "authority": "eu.i.posthog.com",
                              "api_key": "phc_your_mirror_project_api_key"},
            },
        },
    },
    # deploy/docker-compose.yml, default: real providers (keys from the environment),
    # webdis and Redis as services, no capture until you configure it.
    "compose": {
        "out": "deploy/compose/envoy.yaml",
        "about": "docker compose: real providers, webdis/Redis services, capture off",
        "values": {
            "LISTEN_ADDRESS": "0.0.0.0",
            "LISTEN_PORT": "10000",
            "ADMIN_PORT": "9901",
            "WASM_PATH": "/etc/envoy/llm_gateway.wasm",
            "BODY_LIMIT": BODY_LIMIT,
            **service("MOCK", "127.0.0.1", 18080),
            **service("AUTH", "webdis", 7379),
            **service("WEBDIS", "webdis", 7379),
            **service("SINK", "us.i.posthog.com", 443, use_tls=True),
            **service("SINK2", "eu.i.posthog.com", 443, use_tls=True),
        },
        "plugin": {"auth": {"cluster": "auth", "authority": "webdis"}},
    },
    # docker compose --profile mock: every provider on the mock, capture to the sink. The
    # mock-stack container shares Envoy's network namespace, so both are on 127.0.0.1.
    "compose-mock": {
        "out": "deploy/compose/envoy.mock.yaml",
        "about": "docker compose --profile mock: mock providers, local capture sink",
        "values": {
            "LISTEN_ADDRESS": "0.0.0.0",
            "LISTEN_PORT": "10000",
            "ADMIN_PORT": "9901",
            "WASM_PATH": "/etc/envoy/llm_gateway.wasm",
            "BODY_LIMIT": BODY_LIMIT,
            **service("MOCK", "127.0.0.1", 18080),
            **service("AUTH", "webdis", 7379),
            **service("WEBDIS", "webdis", 7379),
            **service("SINK", "127.0.0.1", 18081),
            **service("SINK2", "127.0.0.1", 18081),
        },
        "plugin": {
            "providers": {p: {"cluster": "mock"} for p in PROVIDERS},
            "auth": {"cluster": "auth", "authority": "webdis"},
            "capture": {
                "region_url": "http://localhost:8010",
                "flush_interval_ms": 500,
                "primary": {"cluster": "posthog_primary", "authority": "localhost", "api_key": "phc_local_primary"},
                "secondary": {"cluster": "posthog_secondary", "authority": "localhost", "path": "/batch/",
                              "api_key": "phc_local_mirror"},
            },
        },
    },
}


# Clusters in the template that serve providers; the failover route may send any attempt to them.
TEMPLATE_PROVIDER_CLUSTERS = ["openai", "anthropic", "gemini", "mock"]
MATCHER_ACTION = "type.googleapis.com/envoy.extensions.router.cluster_specifiers.matcher.v3.ClusterAction"


def failover_clusters(config, extra=()):
    """The failover route's map, x-llm-gateway-cluster value -> cluster, as a YAML flow map:
    the template's provider clusters, every provider's cluster in the plugin config (its
    name by default; Envoy resolves a cluster when a request goes to it), and `extra`."""
    providers = config.get("providers", {})
    names = set(TEMPLATE_PROVIDER_CLUSTERS) | set(extra)
    names |= {providers.get(name, {}).get("cluster", name) for name in PROVIDERS + ["bedrock"]}
    entries = [f'{json.dumps(n)}: {{action: {{name: cluster, typed_config: {{"@type": {MATCHER_ACTION}, '
               f'cluster: {json.dumps(n)}}}}}}}' for n in sorted(names)]
    return "{\n" + ",\n".join(" " * 32 + e for e in entries) + "}"


def without_failover(text):
    """The template without the failover route (the lines from failover-begin to failover-end)."""
    out, skipping = [], False
    for line in text.split("\n"):
        if "# failover-begin" in line:
            skipping = True
        if not skipping:
            out.append(line)
        if "# failover-end" in line:
            skipping = False
    return "\n".join(out)


def plugin_config_block(template, config):
    """The configuration as a YAML literal block of indented, readable JSON."""
    line = next(l for l in template.split("\n") if "${PLUGIN_CONFIG}" in l)
    indent = " " * (len(line) - len(line.lstrip()) + 2)
    body = json.dumps(config, indent=2)
    return "|-\n" + "\n".join(indent + l for l in body.split("\n"))


def render(values, config, failover=True):
    with open(TEMPLATE) as f:
        template = f.read()
    if not failover:
        template = without_failover(template)
    values = {**values, "PLUGIN_CONFIG": plugin_config_block(template, config),
              "FAILOVER_CLUSTERS": failover_clusters(config)}
    rendered = string.Template(template).substitute(values)
    # Block-style values leave "key: " at a line end; keep the output free of trailing spaces.
    return "\n".join(line.rstrip() for line in rendered.split("\n"))


def profile_render(name, overrides, failover=True):
    profile = PROFILES[name]
    values = {**profile["values"], **overrides}
    header = (f"# GENERATED from envoy/envoy.yaml.tmpl by `scripts/render-envoy.py --profile {name}`:\n"
              f"# {profile['about']}.\n"
              f"# Edit the template or the profile, then run `python3 scripts/render-envoy.py --all`.\n")
    return header + render(values, profile["plugin"], failover)


def write(out, text):
    if out == "-":
        sys.stdout.write(text)
        return
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        f.write(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", help="output file, or - for stdout")
    parser.add_argument("--profile", choices=sorted(PROFILES))
    parser.add_argument("--set", action="append", default=[], metavar="VAR=VALUE",
                        help="override one placeholder of the profile (e.g. WASM_PATH=...)")
    parser.add_argument("--all", action="store_true", help="re-render every checked-in profile")
    parser.add_argument("--no-failover", action="store_true",
                        help="leave out the failover route (Envoy < 1.39 lacks refresh_cluster_on_retry)")
    args = parser.parse_args()
    overrides = {}
    for item in args.set:
        var, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set needs VAR=VALUE, got {item!r}")
        overrides[var] = value
    if args.all:
        for name, profile in PROFILES.items():
            write(os.path.join(ROOT, profile["out"]), profile_render(name, overrides))
            print(f"rendered {profile['out']}")
    elif args.profile:
        if not args.out:
            parser.error("OUT is required")
        write(args.out, profile_render(args.profile, overrides, not args.no_failover))
    else:
        if not args.out:
            parser.error("OUT is required")
        values, config, banner = local_profile()
        values.update(overrides)
        write(args.out, render(values, config, not args.no_failover))
        print(banner)


if __name__ == "__main__":
    main()

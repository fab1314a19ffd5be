#!/usr/bin/env python3
"""Renders envoy/envoy.yaml.tmpl, the one Envoy configuration source of the gateway,
and envoy/redis-bridge.yaml.tmpl, the Redis Cluster bridge's (profiles *-bridge).

Usage:
  render-envoy.py OUT                  the local stack (`make run`), from the environment
  render-envoy.py --profile NAME [--set VAR=VALUE ...] OUT
                                       a deployment profile: production, compose, compose-mock,
                                       compose-cluster, and the bridges production-bridge,
                                       compose-bridge, istio-bridge
  render-envoy.py --all                re-renders every checked-in example (see PROFILES)
  --no-failover                        leaves out the failover route (Envoy < 1.39, see the README)

OUT may be `-` for stdout. The local stack reads ports and paths from the
environment (defaults in scripts/run.sh): a provider whose
LLM_GATEWAY_<NAME>_API_KEY is set goes to its real API (Azure also needs
LLMGW_AZURE_AUTHORITY, its resource's host), the others to the bundled mock,
and one banner line says which is which. The end-to-end tests fill the same
template themselves (tests/e2e/src/stack.rs).

Bedrock with IAM credentials: `"providers": {"bedrock": {"auth": "sigv4"}}` in
a profile's plugin config renders Envoy's aws_request_signing filter on the
Bedrock cluster (BEDROCK_SIGNER), for the region of providers.bedrock.authority.
"""
import argparse
import json
import os
import string
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(ROOT, "envoy/envoy.yaml.tmpl")
BRIDGE_TEMPLATE = os.path.join(ROOT, "envoy/redis-bridge.yaml.tmpl")
PROVIDERS = ["openai", "anthropic", "gemini", "bedrock", "azure"]
BEDROCK_HOST = "bedrock-runtime.us-east-1.amazonaws.com"
# The example Azure OpenAI resource; replace it with yours (cluster and plugin config).
AZURE_HOST = "your-resource.openai.azure.com"
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


def bedrock_signer(config):
    """BEDROCK_SIGNER: Envoy's SigV4 signer for providers.bedrock.auth "sigv4", else nothing.

    An upstream filter of the Bedrock cluster only, so no other provider's request is
    signed. It signs the request the gateway's filter sends (path, host, translated body),
    hashing the body (use_unsigned_payload false: it buffers the body), with the IAM
    credentials Envoy's default chain finds: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
    (and AWS_SESSION_TOKEN) in Envoy's environment, the credentials file, the ECS/EKS
    container or pod identity, web identity (IRSA), or the instance role. The region is
    the one in providers.bedrock.authority. Envoy's and the gateway's own headers are
    left out of the signature."""
    bedrock = config.get("providers", {}).get("bedrock", {})
    if bedrock.get("auth") != "sigv4":
        return ""
    authority = bedrock.get("authority", BEDROCK_HOST)
    region = authority.split(".")[1]
    return "".join("\n        " + line for line in [
        "- name: envoy.filters.http.aws_request_signing",
        "  typed_config:",
        '    "@type": type.googleapis.com/envoy.extensions.filters.http.aws_request_signing.v3.AwsRequestSigning',
        "    service_name: bedrock",
        f"    region: {region}",
        "    use_unsigned_payload: false",
        "    match_excluded_headers:",
        "    - {prefix: x-envoy-}",
        "    - {prefix: x-forwarded-}",
        "    - {prefix: x-llm-gateway-}",
        "    - {exact: x-request-id}",
    ])


def service(name, host, port, use_tls=False):
    """The HOST, PORT and TRANSPORT values of one service cluster."""
    values = {f"{name}_HOST": host, f"{name}_PORT": str(port)}
    if name != "MOCK":
        values[f"{name}_TRANSPORT"] = tls(host) if use_tls else plaintext()
    return values


def seeds(*hosts):
    """The bridge's REDIS_SEEDS: lb_endpoints of `host:port` nodes, as a YAML flow list."""
    endpoints = []
    for h in hosts:
        host, port = h.rsplit(":", 1)
        endpoints.append(f"{{endpoint: {{address: {{socket_address: {{address: {host}, port_value: {port}}}}}}}}}")
    return "[" + ", ".join(endpoints) + "]"


def local_profile():
    """`make run`: everything on loopback, ports from the environment."""
    env = os.environ
    mocked = env.get("LLMGW_MOCKED", "").split()
    providers = {p: {"cluster": "mock"} for p in mocked}
    azure_host = env.get("LLMGW_AZURE_AUTHORITY", "mock-resource.openai.azure.com")
    providers.setdefault("azure", {})["authority"] = azure_host
    config = {
        "providers": providers,
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
        **service("BEDROCK", BEDROCK_HOST, 443, use_tls=True),
        **service("AZURE", azure_host, 443, use_tls=True),
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
            **service("BEDROCK", BEDROCK_HOST, 443, use_tls=True),
            **service("AZURE", AZURE_HOST, 443, use_tls=True),
        },
        "plugin": {
            "max_request_body_bytes": 32 * 1024 * 1024,
            "providers": {
                "openai": {"cluster": "openai", "timeout_ms": 600000},
                "anthropic": {"cluster": "anthropic", "timeout_ms": 600000},
                "gemini": {"cluster": "gemini", "timeout_ms": 600000},
                "bedrock": {"cluster": "bedrock", "authority": BEDROCK_HOST, "timeout_ms": 600000},
                "azure": {"cluster": "azure", "authority": AZURE_HOST, "timeout_ms": 600000},
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
    # docker-compose.yml, default: real providers (keys from the environment),
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
            **service("BEDROCK", BEDROCK_HOST, 443, use_tls=True),
            **service("AZURE", AZURE_HOST, 443, use_tls=True),
        },
        "plugin": {
            "providers": {"azure": {"authority": AZURE_HOST}},
            "auth": {"cluster": "auth", "authority": "webdis"},
        },
    },
    # docker compose --profile cluster: as `compose`, but auth and limits go to the Redis
    # Cluster through webdis-cluster and the redis-bridge service; one check call per slot.
    "compose-cluster": {
        "out": "deploy/compose/envoy.cluster.yaml",
        "about": "docker compose --profile cluster: real providers, Redis Cluster via webdis-cluster and redis-bridge",
        "values": {
            "LISTEN_ADDRESS": "0.0.0.0",
            "LISTEN_PORT": "10000",
            "ADMIN_PORT": "9901",
            "WASM_PATH": "/etc/envoy/llm_gateway.wasm",
            "BODY_LIMIT": BODY_LIMIT,
            **service("MOCK", "127.0.0.1", 18080),
            **service("AUTH", "webdis-cluster", 7379),
            **service("WEBDIS", "webdis-cluster", 7379),
            **service("SINK", "us.i.posthog.com", 443, use_tls=True),
            **service("SINK2", "eu.i.posthog.com", 443, use_tls=True),
            **service("BEDROCK", BEDROCK_HOST, 443, use_tls=True),
            **service("AZURE", AZURE_HOST, 443, use_tls=True),
        },
        "plugin": {
            "providers": {"azure": {"authority": AZURE_HOST}},
            "auth": {"cluster": "auth", "authority": "webdis"},
            "limits": {"redis_cluster": True},
        },
    },
    # The bridge of the compose cluster profile: its RESP listener on the compose network
    # (webdis-cluster connects to redis-bridge:6379), seeded with the first three nodes.
    "compose-bridge": {
        "template": BRIDGE_TEMPLATE,
        "out": "deploy/compose/redis-bridge.yaml",
        "about": "docker compose --profile cluster: the bridge from webdis-cluster to the Redis Cluster",
        "values": {
            "LISTEN_ADDRESS": "0.0.0.0",
            "LISTEN_PORT": "6379",
            "ADMIN_PORT": "9901",
            "OP_TIMEOUT": "0.15s",
            "REDIS_SEEDS": seeds("redis-node-1:6379", "redis-node-2:6379", "redis-node-3:6379"),
            "REDIS_TRANSPORT": plaintext(),
        },
    },
    # A bridge next to webdis (same host or pod) in front of a managed Redis Cluster
    # (cluster mode on, in-transit encryption): replace the configuration endpoint.
    "production-bridge": {
        "template": BRIDGE_TEMPLATE,
        "out": "envoy/examples/redis-bridge.yaml",
        "about": "a Redis Cluster bridge for webdis on the same host: a managed Redis Cluster over TLS",
        "values": {
            "LISTEN_ADDRESS": "127.0.0.1",
            "LISTEN_PORT": "6379",
            "ADMIN_PORT": "9902",
            "OP_TIMEOUT": "0.15s",
            "REDIS_SEEDS": seeds("redis-cluster.internal.example.com:6379"),
            "REDIS_TRANSPORT": tls("redis-cluster.internal.example.com"),
        },
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
            **service("BEDROCK", BEDROCK_HOST, 443, use_tls=True),
            **service("AZURE", AZURE_HOST, 443, use_tls=True),
        },
        "plugin": {
            "providers": {**{p: {"cluster": "mock"} for p in PROVIDERS},
                          "azure": {"cluster": "mock", "authority": "mock-resource.openai.azure.com"}},
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


# The Istio overlay's bridge (deploy/istio-cluster): the production bridge, rendered where
# kustomize's configMapGenerator can read it.
PROFILES["istio-bridge"] = {**PROFILES["production-bridge"], "out": "deploy/istio-cluster/redis-bridge.yaml",
                            "about": "the Istio cluster overlay's bridge (a container next to webdis)"}

# Bedrock on IAM credentials: the production profile with providers.bedrock.auth "sigv4".
PROFILES["production-bedrock-sigv4"] = {
    "out": "envoy/examples/production-bedrock-sigv4.yaml",
    "about": "production, with Bedrock called on IAM credentials: Envoy's aws_request_signing signs it (SigV4)",
    "values": PROFILES["production"]["values"],
    "plugin": {
        **PROFILES["production"]["plugin"],
        "providers": {
            **PROFILES["production"]["plugin"]["providers"],
            "bedrock": {"cluster": "bedrock", "authority": BEDROCK_HOST, "auth": "sigv4", "timeout_ms": 600000},
        },
    },
}

# Clusters in the template that serve providers; the failover route may send any attempt to them.
TEMPLATE_PROVIDER_CLUSTERS = ["openai", "anthropic", "gemini", "bedrock", "azure", "mock"]
MATCHER_ACTION = "type.googleapis.com/envoy.extensions.router.cluster_specifiers.matcher.v3.ClusterAction"


def failover_clusters(config, extra=()):
    """The failover route's map, x-llm-gateway-cluster value -> cluster, as a YAML flow map:
    the template's provider clusters, every provider's cluster in the plugin config (its
    name by default; Envoy resolves a cluster when a request goes to it), and `extra`."""
    providers = config.get("providers", {})
    names = set(TEMPLATE_PROVIDER_CLUSTERS) | set(extra)
    names |= {providers.get(name, {}).get("cluster", name) for name in PROVIDERS}
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


def render(values, config, template_path=TEMPLATE, failover=True):
    with open(template_path) as f:
        template = f.read()
    if not failover:
        template = without_failover(template)
    if config is not None:
        values = {"BEDROCK_SIGNER": bedrock_signer(config), **values,
                  "PLUGIN_CONFIG": plugin_config_block(template, config),
                  "FAILOVER_CLUSTERS": failover_clusters(config)}
    rendered = string.Template(template).substitute(values)
    # Block-style values leave "key: " at a line end; keep the output free of trailing spaces.
    return "\n".join(line.rstrip() for line in rendered.split("\n"))


def profile_render(name, overrides, failover=True):
    profile = PROFILES[name]
    values = {**profile["values"], **overrides}
    template = profile.get("template", TEMPLATE)
    header = (f"# GENERATED from {os.path.relpath(template, ROOT)} by `scripts/render-envoy.py --profile {name}`:\n"
              f"# {profile['about']}.\n"
              f"# Edit the template or the profile, then run `python3 scripts/render-envoy.py --all`.\n")
    return header + render(values, profile.get("plugin"), template, failover=failover)


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
        write(args.out, render(values, config, failover=not args.no_failover))
        print(banner)


if __name__ == "__main__":
    main()

//! Issue 7: the deployment artefacts are real and checked. The Envoy examples are
//! current renders of the one template and Envoy accepts them; the compose file
//! agrees with the tested stack; the Istio manifests carry a Wasm config the filter
//! accepts and name clusters Istio will create; the OCI image holds the .wasm alone.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Command;

use llm_gateway::config::Config;
use llm_gateway::failover::FAILOVER_HEADER;
use llm_gateway::providers::Provider;
use llm_gateway_e2e::stack::*;
use serde::Deserialize;
use serde_json::{json, Value};

/// Each checked-in render of the gateway and the scripts/render-envoy.py profile it comes from.
const RENDERS: [(&str, &str); 5] = [
    ("production", "envoy/examples/production.yaml"),
    ("production-bedrock-sigv4", "envoy/examples/production-bedrock-sigv4.yaml"),
    ("compose", "deploy/compose/envoy.yaml"),
    ("compose-mock", "deploy/compose/envoy.mock.yaml"),
    ("compose-cluster", "deploy/compose/envoy.cluster.yaml"),
];
/// The same for the Redis Cluster bridge (envoy/redis-bridge.yaml.tmpl).
const BRIDGE_RENDERS: [(&str, &str); 3] = [
    ("production-bridge", "envoy/examples/redis-bridge.yaml"),
    ("compose-bridge", "deploy/compose/redis-bridge.yaml"),
    ("istio-bridge", "deploy/istio-cluster/redis-bridge.yaml"),
];
const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const KEY_VARS: [&str; 5] = [
    "LLM_GATEWAY_OPENAI_API_KEY",
    "LLM_GATEWAY_ANTHROPIC_API_KEY",
    "LLM_GATEWAY_GEMINI_API_KEY",
    "LLM_GATEWAY_BEDROCK_API_KEY",
    "LLM_GATEWAY_AZURE_API_KEY",
];
const SIGNER: &str = "envoy.filters.http.aws_request_signing";
/// The clusters' upstream filter (the failover rewrite), by the name the failover route enables it by.
const UPSTREAM_FILTER: &str = "llm_gateway_upstream";

/// A route's `typed_per_filter_config` enabling one filter that is disabled by default:
/// Envoy takes a `FilterConfig` with an empty `config` as "enabled" (and refuses one without).
fn enables(filter: &str) -> Value {
    json!({filter: {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "config": {}}})
}

fn read(rel: &str) -> String {
    let path = repo_root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of a YAML file (or string), as JSON values.
fn yaml_docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("invalid YAML: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml(rel: &str) -> Value {
    let mut docs = yaml_docs(&read(rel));
    assert_eq!(docs.len(), 1, "{rel}: expected one YAML document");
    docs.remove(0)
}

/// The Kubernetes object of `kind` (and `name`, when given) among `docs`.
fn object<'a>(docs: &'a [Value], kind: &str, name: Option<&str>) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && name.is_none_or(|n| d["metadata"]["name"] == n))
        .unwrap_or_else(|| panic!("no {kind} {name:?}"))
}

fn render_profile(profile: &str, sets: &[(&str, String)]) -> String {
    let mut cmd = Command::new("python3");
    cmd.arg(repo_root().join("scripts/render-envoy.py")).args(["--profile", profile]);
    for (var, value) in sets {
        cmd.args(["--set", &format!("{var}={value}")]);
    }
    let out = cmd.arg("-").output().expect("python3");
    assert!(out.status.success(), "render {profile}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str().unwrap_or_else(|| panic!("{what}: expected a string, got {v}"))
}

/// The HTTP connection manager of an Envoy config's only listener.
fn hcm(envoy: &Value) -> &Value {
    &envoy["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
}

fn http_filter<'a>(envoy: &'a Value, name: &str) -> &'a Value {
    hcm(envoy)["http_filters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no http filter {name}"))
}

/// The wasm `PluginConfig` of an Envoy config.
fn wasm_config(envoy: &Value) -> &Value {
    &http_filter(envoy, "envoy.filters.http.wasm")["typed_config"]["config"]
}

/// The plugin configuration carried by a wasm `PluginConfig`, checked by the filter's parser.
fn plugin_config(wasm: &Value, what: &str) -> (Value, Config) {
    let configuration = &wasm["configuration"];
    assert_eq!(configuration["@type"], "type.googleapis.com/google.protobuf.StringValue", "{what}");
    let text = str_of(&configuration["value"], what);
    let config = Config::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{what}: the filter rejects it: {e}"));
    (serde_json::from_str(text).unwrap(), config)
}

fn cluster<'a>(envoy: &'a Value, name: &str) -> &'a Value {
    envoy["static_resources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no cluster {name:?}"))
}

/// (host, port) of a cluster's only endpoint.
fn endpoint(cluster: &Value) -> (String, u64) {
    let address = &cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"];
    let socket = &address["socket_address"];
    (str_of(&socket["address"], "address").to_string(), socket["port_value"].as_u64().unwrap())
}

/// Every cluster the filter may call under `config` (Azure only where it has a host).
fn named_clusters(config: &Config) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = Provider::ALL
        .into_iter()
        .filter(|p| !config.provider(*p).authority.is_empty())
        .map(|p| config.provider(p).cluster.clone())
        .collect();
    names.insert(config.auth.cluster.clone());
    if config.limits.enabled {
        names.insert(config.limits.cluster.clone());
    }
    if let Some(capture) = &config.capture {
        names.insert(capture.primary.cluster.clone());
        names.extend(capture.secondary.iter().map(|d| d.cluster.clone()));
    }
    names
}

fn is_loopback(host: &str) -> bool {
    host == "127.0.0.1" || host == "localhost"
}

#[test]
fn checked_in_renders_are_current() {
    for (profile, path) in RENDERS.into_iter().chain(BRIDGE_RENDERS) {
        assert!(
            render_profile(profile, &[]) == read(path),
            "{path} is not a fresh render of its template: run `python3 scripts/render-envoy.py --all`"
        );
    }
}

#[test]
fn envoy_validates_every_render() {
    let wasm = wasm_path();
    assert!(wasm.exists(), "{} is missing: run `make build`", wasm.display());
    let dir = std::env::temp_dir().join(format!("llmgw-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (profile, _) in RENDERS {
        let file = dir.join(format!("{profile}.yaml"));
        std::fs::write(&file, render_profile(profile, &[("WASM_PATH", wasm.display().to_string())])).unwrap();
        // Validate mode builds every listener and cluster and configures the plugin.
        let out = Command::new(envoy_bin()).args(["--mode", "validate", "-c"]).arg(&file).output().unwrap();
        let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && log.contains(" OK"), "envoy rejects the {profile} render:\n{log}");
        assert!(log.contains("configured"), "{profile}: the plugin did not configure:\n{log}");
    }
    for (profile, path) in BRIDGE_RENDERS {
        let out =
            Command::new(envoy_bin()).args(["--mode", "validate", "-c"]).arg(repo_root().join(path)).output().unwrap();
        let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && log.contains(" OK"), "envoy rejects the {profile} render:\n{log}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `make run`'s render (scripts/run.sh: `render-envoy.py OUT`, ports from the
/// environment, the providers without a key on the bundled mock) is a config Envoy takes.
#[test]
fn the_local_stack_render_validates() {
    let wasm = wasm_path();
    assert!(wasm.exists(), "{} is missing: run `make build`", wasm.display());
    let file = std::env::temp_dir().join(format!("llmgw-local-{}.yaml", std::process::id()));
    let out = Command::new("python3")
        .arg(repo_root().join("scripts/render-envoy.py"))
        .arg(&file)
        .envs([
            ("LLMGW_PORT", "10000"),
            ("LLMGW_ADMIN_PORT", "10001"),
            ("LLMGW_MOCK_PORT", "18080"),
            ("LLMGW_WEBDIS_PORT", "17379"),
            ("LLMGW_SINK_PORT", "18081"),
            ("LLMGW_MOCKED", "openai anthropic gemini bedrock azure"),
        ])
        .output()
        .expect("python3");
    assert!(out.status.success(), "render: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("llm-gateway on http://127.0.0.1:10000"));
    let out = Command::new(envoy_bin()).args(["--mode", "validate", "-c"]).arg(&file).output().unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success() && log.contains(" OK"), "envoy rejects the local render:\n{log}");
    assert!(log.contains("configured"), "the plugin did not configure:\n{log}");
}

#[test]
fn every_render_names_only_clusters_it_defines() {
    for (_, path) in RENDERS {
        let envoy = yaml(path);
        let (_, config) = plugin_config(wasm_config(&envoy), path);
        for name in named_clusters(&config) {
            cluster(&envoy, &name);
        }
        let routes = hcm(&envoy)["route_config"]["virtual_hosts"][0]["routes"].as_array().unwrap();
        let plain = routes.last().unwrap();
        assert_eq!(
            plain["route"]["cluster_header"],
            config.route_header.as_str(),
            "{path}: route reads another header"
        );
        assert_eq!(
            plain["request_headers_to_remove"],
            json!([config.route_header]),
            "{path}: the routing header must not reach the provider"
        );
        let router = hcm(&envoy)["http_filters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "envoy.filters.http.router")
            .cloned()
            .unwrap();
        assert_eq!(
            router["typed_config"]["suppress_envoy_headers"], true,
            "{path}: Envoy's own x-envoy-* request headers must not reach the provider"
        );
        assert_failover_route(path, &envoy, &config);
    }
}

/// The failover route (README "Failover"): chosen by the filter's header, its cluster
/// re-read from the route header on every retry, able to reach every provider
/// cluster, and alone enabling the clusters' upstream filter; each of those clusters
/// runs that filter in the downstream filter's VM and lets retries through its
/// circuit breaker.
fn assert_failover_route(path: &str, envoy: &Value, config: &Config) {
    let routes = hcm(envoy)["route_config"]["virtual_hosts"][0]["routes"].as_array().unwrap();
    let failover =
        routes.iter().find(|r| r["name"] == "failover").unwrap_or_else(|| panic!("{path}: no failover route"));
    assert_eq!(routes.last().unwrap()["match"], json!({"prefix": "/"}), "{path}: the plain route comes last");
    assert_eq!(failover["match"]["headers"][0], json!({"name": FAILOVER_HEADER, "present_match": true}));
    assert_eq!(failover["typed_per_filter_config"], enables(UPSTREAM_FILTER), "{path}: the upstream filter never runs");
    let mut others = routes.iter().filter(|r| r["name"] != "failover");
    assert!(others.all(|r| r["typed_per_filter_config"].is_null()), "{path}: plain calls would enter the VM");
    // The route enables it by name: a downstream filter of that name would be enabled too.
    let downstream_filters = hcm(envoy)["http_filters"].as_array().unwrap();
    assert!(downstream_filters.iter().all(|f| f["name"] != UPSTREAM_FILTER), "{path}");
    let route = &failover["route"];
    assert_eq!(route["timeout"], "0s", "{path}: streams must not be cut by a route timeout");
    assert_eq!(route["retry_policy"]["refresh_cluster_on_retry"], true, "{path}");
    let specifier =
        &route["inline_cluster_specifier_plugin"]["extension"]["typed_config"]["cluster_matcher"]["matcher_tree"];
    assert_eq!(specifier["input"]["typed_config"]["header_name"], config.route_header.as_str(), "{path}");
    let map = specifier["exact_match_map"]["map"].as_object().unwrap();
    let downstream = wasm_config(envoy);
    for p in Provider::ALL {
        let name = &config.provider(p).cluster;
        let action = map.get(name).unwrap_or_else(|| panic!("{path}: the failover route cannot reach {name}"));
        assert_eq!(action["action"]["typed_config"]["cluster"], name.as_str());
        let Some(c) = envoy["static_resources"]["clusters"].as_array().unwrap().iter().find(|c| c["name"] == *name)
        else {
            continue; // Bedrock: no cluster in this render
        };
        let options = &c["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
        let filters =
            options["http_filters"].as_array().unwrap_or_else(|| panic!("{path}: {name} has no upstream filters"));
        let names: Vec<&str> = filters.iter().map(|f| f["name"].as_str().unwrap()).collect();
        // The failover rewrite first, the codec last (Bedrock's SigV4 signer, if any, between them).
        assert_eq!(names.first(), Some(&UPSTREAM_FILTER), "{path}: {name}");
        assert_eq!(names.last(), Some(&"envoy.filters.http.upstream_codec"), "{path}: {name}");
        // Envoy leaves the rewrite out unless the route enables it: only the failover route does.
        assert_eq!(filters[0]["disabled"], true, "{path}: {name}: every plain call would enter the VM");
        let up = &filters[0]["typed_config"]["config"];
        assert_eq!(up["vm_config"], downstream["vm_config"], "{path}: {name}: another VM would not share the chain");
        assert_eq!(up["root_id"], downstream["root_id"]);
        assert_eq!(up["allow_on_headers_stop_iteration"], true, "{path}: {name}: the body swap pauses the headers");
        assert_eq!(up["configuration"]["value"], r#"{"role": "upstream"}"#);
        let breakers = &c["circuit_breakers"]["thresholds"][0];
        assert!(
            breakers["max_retries"].as_u64().unwrap_or(3) >= 1000,
            "{path}: {name}: retries past 3 would be dropped"
        );
    }
}

#[test]
fn production_example_has_what_production_needs() {
    let path = "envoy/examples/production.yaml";
    let envoy = yaml(path);
    assert_eq!(envoy["admin"]["address"]["socket_address"]["address"], "127.0.0.1", "admin must stay on loopback");
    let listener = &envoy["static_resources"]["listeners"][0];
    assert_eq!(listener["address"]["socket_address"]["address"], "0.0.0.0");

    // The filter, its config, and what it needs from Envoy.
    let wasm = wasm_config(&envoy);
    let (_, config) = plugin_config(wasm, path);
    assert_eq!(wasm["allow_on_headers_stop_iteration"], true);
    assert_eq!(wasm["failure_policy"], "FAIL_RELOAD");
    assert_eq!(wasm["vm_config"]["environment_variables"]["host_env_keys"], json!(KEY_VARS));
    let limit = listener["per_connection_buffer_limit_bytes"].as_u64().unwrap();
    assert!(limit > config.max_request_body_bytes as u64, "buffer limit {limit} must exceed the body limit");

    // The filter right before the router, and no decompressor (see the template).
    let filters: Vec<&str> =
        hcm(&envoy)["http_filters"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(filters, ["envoy.filters.http.wasm", "envoy.filters.http.router"]);

    // Every cluster the filter calls is remote; all but webdis (plain HTTP on a private
    // network) use TLS with SNI and a certificate check.
    for name in named_clusters(&config) {
        let c = cluster(&envoy, &name);
        let (host, port) = endpoint(c);
        assert!(!is_loopback(&host), "{name} points at {host}");
        if name == config.limits.cluster {
            continue;
        }
        assert_eq!(port, 443, "{name} should be a remote TLS service, is {host}:{port}");
        let tls = &c["transport_socket"];
        assert_eq!(tls["name"], "envoy.transport_sockets.tls", "{name}");
        assert_eq!(tls["typed_config"]["sni"], host.as_str(), "{name}: SNI");
        let validation = &tls["typed_config"]["common_tls_context"]["validation_context"];
        assert!(validation["trusted_ca"]["filename"].is_string(), "{name}: no CA bundle");
        assert_eq!(validation["match_typed_subject_alt_names"][0]["matcher"]["exact"], host.as_str(), "{name}: SAN");
    }
    for c in envoy["static_resources"]["clusters"].as_array().unwrap() {
        assert!(c["connect_timeout"].is_string(), "{}: no connect_timeout", c["name"]);
    }
    assert!(hcm(&envoy)["stream_idle_timeout"].is_string());
    // Each provider's Host header is its cluster's TLS host (Bedrock's region, Azure's resource).
    for p in Provider::ALL {
        let settings = config.provider(p);
        assert_eq!(endpoint(cluster(&envoy, &settings.cluster)).0, settings.authority, "{p}: host and authority");
    }
    // API keys for Bedrock here: no signer anywhere.
    assert!(upstream_filters(&envoy).iter().all(|(_, f)| f["name"] != SIGNER));
}

/// Every cluster's upstream HTTP filters, as (cluster, filter).
fn upstream_filters(envoy: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for c in envoy["static_resources"]["clusters"].as_array().unwrap() {
        let options = &c["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
        for f in options["http_filters"].as_array().into_iter().flatten() {
            out.push((str_of(&c["name"], "name").to_string(), f.clone()));
        }
    }
    out
}

/// Bedrock on IAM credentials: the filter sends no key (providers.bedrock.auth "sigv4"), and
/// Envoy's signer runs on the Bedrock cluster only, for its region, hashing the body,
/// leaving internal headers out; the tests' signer (tests/e2e/src/stack.rs) and the Istio
/// overlay's are the same filter (the tests take credentials from the environment only).
#[test]
fn the_sigv4_example_signs_bedrock_and_nothing_else() {
    let path = "envoy/examples/production-bedrock-sigv4.yaml";
    let envoy = yaml(path);
    let (plugin, config) = plugin_config(wasm_config(&envoy), path);
    let bedrock = config.provider(Provider::Bedrock);
    assert_eq!(bedrock.auth, llm_gateway::config::ProviderAuth::SigV4);
    let filters = upstream_filters(&envoy);
    // The signer is on the Bedrock cluster only, after the failover rewrite, before the codec.
    let signers: Vec<&str> = filters.iter().filter(|(_, f)| f["name"] == SIGNER).map(|(c, _)| c.as_str()).collect();
    assert_eq!(signers, [bedrock.cluster.as_str()]);
    let on_bedrock: Vec<&str> =
        filters.iter().filter(|(c, _)| *c == bedrock.cluster).map(|(_, f)| f["name"].as_str().unwrap()).collect();
    assert_eq!(on_bedrock, [UPSTREAM_FILTER, SIGNER, "envoy.filters.http.upstream_codec"]);
    let signer = &filters.iter().find(|(_, f)| f["name"] == SIGNER).unwrap().1["typed_config"];
    let region = bedrock.authority.split('.').nth(1).unwrap();
    assert_eq!((signer["service_name"].as_str(), signer["region"].as_str()), (Some("bedrock"), Some(region)));
    assert_eq!(signer["use_unsigned_payload"], false, "Bedrock needs the body's hash signed");
    assert!(signer.get("credential_provider").is_none(), "production uses Envoy's default credential chain");

    // The tests run the same signer, with credentials from the environment only.
    let tested = yaml_docs(&format!("signer:{}", bedrock_signer(&plugin)))[0]["signer"][0].clone();
    let mut tested_config = tested["typed_config"].clone();
    let credentials = tested_config.as_object_mut().unwrap().remove("credential_provider").unwrap();
    assert_eq!(credentials, json!({"custom_credential_provider_chain": true, "environment_credential_provider": {}}));
    assert_eq!((&tested["name"], &tested_config), (&json!(SIGNER), signer), "the e2e signer drifted from the render");

    // The Istio overlay signs with the same filter, on Bedrock's Istio cluster.
    let docs = yaml_docs(&read("deploy/istio-bedrock-sigv4/signer.yaml"));
    let patch = &object(&docs, "EnvoyFilter", Some("llm-gateway-bedrock-sigv4"))["spec"]["configPatches"][0];
    assert_eq!(patch["applyTo"], "CLUSTER");
    assert_eq!(patch["match"]["cluster"]["service"], bedrock.authority.as_str());
    let options = &patch["patch"]["value"]["typed_extension_protocol_options"]
        ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    assert_eq!(options["http_filters"][0]["name"], SIGNER);
    assert_eq!(&options["http_filters"][0]["typed_config"], signer, "Istio's signer drifted from the render");
    assert_eq!(options["http_filters"][1]["name"], "envoy.filters.http.upstream_codec");
}

/// The Istio EnvoyFilter's patches, by `applyTo`.
/// The first patch of each `applyTo`.
fn patches(filter: &Value) -> HashMap<String, &Value> {
    let mut first = HashMap::new();
    for p in filter["spec"]["configPatches"].as_array().unwrap() {
        first.entry(str_of(&p["applyTo"], "applyTo").to_string()).or_insert(p);
    }
    first
}

fn istio(file: &str) -> Vec<Value> {
    yaml_docs(&read(&format!("deploy/istio/{file}")))
}

#[test]
fn istio_envoyfilter_adds_the_complete_wasm_config_through_ecds() {
    let docs = istio("envoyfilter.yaml");
    let filter = object(&docs, "EnvoyFilter", Some("llm-gateway"));
    let p = patches(filter);

    let ext = p["EXTENSION_CONFIG"];
    assert_eq!(ext["patch"]["operation"], "ADD");
    let name = str_of(&ext["patch"]["value"]["name"], "extension name");
    let typed = &ext["patch"]["value"]["typed_config"];
    assert_eq!(typed["@type"], WASM_TYPE);
    let wasm = &typed["config"];
    assert_eq!(wasm["allow_on_headers_stop_iteration"], true, "the reason for the EnvoyFilter");
    assert!(str_of(&wasm["vm_config"]["code"]["remote"]["http_uri"]["uri"], "uri").starts_with("oci://"));
    let (_, config) = plugin_config(wasm, "envoyfilter.yaml");
    // The same filter settings as the tested Envoy template.
    let tested = yaml("envoy/examples/production.yaml");
    let tested = wasm_config(&tested);
    for field in ["name", "root_id", "allow_on_headers_stop_iteration", "failure_policy", "reload_config"] {
        assert_eq!(wasm[field], tested[field], "{field} differs from envoy/envoy.yaml.tmpl");
    }
    for field in ["vm_id", "runtime", "environment_variables"] {
        assert_eq!(wasm["vm_config"][field], tested["vm_config"][field], "vm_config.{field} differs");
    }

    let http = p["HTTP_FILTER"];
    assert_eq!(http["patch"]["operation"], "INSERT_BEFORE");
    assert_eq!(http["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"], "envoy.filters.http.router");
    let discovery = &http["patch"]["value"];
    assert_eq!(discovery["name"], name, "HTTP_FILTER must reference the EXTENSION_CONFIG by name");
    assert_eq!(discovery["config_discovery"]["type_urls"], json!([WASM_TYPE]));
    assert!(discovery["config_discovery"]["config_source"]["ads"].is_object());

    // The route reads the filter's header; the listener buffers the filter's body limit.
    let route = p["HTTP_ROUTE"];
    assert_eq!(route["patch"]["value"]["route"]["cluster_header"], config.route_header.as_str());
    assert_eq!(
        route["patch"]["value"]["request_headers_to_remove"],
        json!([config.route_header, "x-envoy-expected-rq-timeout-ms"]),
        "the routing header must not reach the provider"
    );
    let gateway = istio("gateway.yaml");
    let vs = object(&gateway, "VirtualService", Some("llm-gateway"));
    let route_name = &route["match"]["routeConfiguration"]["vhost"]["route"]["name"];
    assert_eq!(&vs["spec"]["http"][0]["name"], route_name, "HTTP_ROUTE must match the VirtualService route");
    assert_eq!(vs["spec"]["hosts"], json!(["*"]), "the filter rewrites :authority; any host must match");
    let listener = p["LISTENER"];
    let limit = listener["patch"]["value"]["per_connection_buffer_limit_bytes"].as_u64().unwrap();
    assert!(limit > config.max_request_body_bytes as u64);
    let gw = object(&gateway, "Gateway", Some("llm-gateway"));
    assert_eq!(listener["match"]["listener"]["portNumber"], gw["spec"]["servers"][0]["port"]["number"]);

    // All of it lands on the gateway pods.
    let pods = &object(&gateway, "Deployment", Some("llm-gateway"))["spec"]["template"]["metadata"];
    assert_eq!(filter["spec"]["workloadSelector"]["labels"]["istio"], pods["labels"]["istio"]);
    assert_eq!(gw["spec"]["selector"]["istio"], pods["labels"]["istio"]);
    assert_eq!(pods["annotations"]["inject.istio.io/templates"], "gateway");
}

/// Every patch of one `applyTo`, in order.
fn patches_of<'a>(filter: &'a Value, apply_to: &str) -> Vec<&'a Value> {
    filter["spec"]["configPatches"].as_array().unwrap().iter().filter(|p| p["applyTo"] == apply_to).collect()
}

#[test]
fn istio_failover_is_the_tested_mechanism() {
    let docs = istio("envoyfilter.yaml");
    let filter = object(&docs, "EnvoyFilter", Some("llm-gateway"));
    let extensions = patches_of(filter, "EXTENSION_CONFIG");
    let [gateway, upstream] = extensions.as_slice() else { panic!("two EXTENSION_CONFIG patches expected") };
    let (down, up) = (&gateway["patch"]["value"], &upstream["patch"]["value"]);
    let (_, config) = plugin_config(&down["typed_config"]["config"], "envoyfilter.yaml");
    let (down_wasm, up_wasm) = (&down["typed_config"]["config"], &up["typed_config"]["config"]);
    assert_eq!(up_wasm["vm_config"], down_wasm["vm_config"], "another vm_config is another VM: no shared chain");
    assert_eq!(up_wasm["root_id"], down_wasm["root_id"]);
    assert_eq!(up_wasm["allow_on_headers_stop_iteration"], true);
    let role = str_of(&up_wasm["configuration"]["value"], "upstream configuration");
    assert!(llm_gateway::failover::is_upstream_role(role.as_bytes()), "{role}");
    // The upstream filter, by ECDS name, then the codec, on every provider cluster.
    let clusters = patches_of(filter, "CLUSTER");
    for p in [Provider::OpenAi, Provider::Anthropic, Provider::Gemini] {
        let name = &config.provider(p).cluster;
        let host = name.rsplit('|').next().unwrap();
        let patch = clusters
            .iter()
            .find(|c| c["match"]["cluster"]["service"] == host)
            .unwrap_or_else(|| panic!("no upstream filter on {name}"));
        assert_eq!(patch["match"]["cluster"]["portNumber"], 443);
        let options = &patch["patch"]["value"]["typed_extension_protocol_options"]
            ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
        let filters = options["http_filters"].as_array().unwrap();
        assert_eq!(filters[0]["name"], up["name"]);
        assert_eq!(filters[0]["disabled"], true, "{name}: every plain call would enter the VM");
        assert_eq!(filters[0]["config_discovery"]["type_urls"], json!([WASM_TYPE]));
        assert_eq!(filters[1]["name"], "envoy.filters.http.upstream_codec");
        // Retries get through the provider's circuit breaker.
        let egress = istio("egress.yaml");
        let rule = egress.iter().find(|d| d["kind"] == "DestinationRule" && d["spec"]["host"] == host).unwrap();
        assert!(rule["spec"]["trafficPolicy"]["connectionPool"]["http"]["maxRetries"].as_u64().unwrap_or(0) >= 1000);
    }
    // The failover route, before the VirtualService's: as in the tested template.
    let routes = patches_of(filter, "HTTP_ROUTE");
    let failover = routes.iter().find(|r| r["patch"]["operation"] == "INSERT_BEFORE").expect("a failover route");
    let tested = yaml("envoy/examples/production.yaml");
    let tested_routes = hcm(&tested)["route_config"]["virtual_hosts"][0]["routes"].as_array().unwrap();
    let tested = tested_routes.iter().find(|r| r["name"] == "failover").unwrap();
    let value = &failover["patch"]["value"];
    assert_eq!(value["match"], tested["match"]);
    let up_name = str_of(&up["name"], "upstream filter name");
    assert_eq!(value["typed_per_filter_config"], enables(up_name), "the upstream filter never runs");
    for field in ["timeout", "retry_policy"] {
        assert_eq!(value["route"][field], tested["route"][field], "{field} differs from envoy/envoy.yaml.tmpl");
    }
    let tree = &value["route"]["inline_cluster_specifier_plugin"]["extension"]["typed_config"]["cluster_matcher"]
        ["matcher_tree"];
    assert_eq!(tree["input"]["typed_config"]["header_name"], config.route_header.as_str());
    for p in [Provider::OpenAi, Provider::Anthropic, Provider::Gemini] {
        let name = &config.provider(p).cluster;
        assert_eq!(tree["exact_match_map"]["map"][name.as_str()]["action"]["typed_config"]["cluster"], name.as_str());
    }
}

#[test]
fn istio_clusters_the_filter_calls_exist() {
    let docs = istio("envoyfilter.yaml");
    let p = patches(object(&docs, "EnvoyFilter", None));
    let (_, config) = plugin_config(&p["EXTENSION_CONFIG"]["patch"]["value"]["typed_config"]["config"], "envoyfilter");
    let egress = istio("egress.yaml");
    let store = istio("store.yaml");
    let mut authorities: HashMap<String, String> =
        [(config.auth.cluster.clone(), config.auth.authority.clone())].into_iter().collect();
    for p in [Provider::Bedrock, Provider::Azure] {
        authorities.insert(config.provider(p).cluster.clone(), config.provider(p).authority.clone());
    }
    if let Some(capture) = &config.capture {
        for d in [Some(&capture.primary), capture.secondary.as_ref()].into_iter().flatten() {
            authorities.insert(d.cluster.clone(), d.authority.clone());
        }
    }
    for name in named_clusters(&config) {
        // Istio's naming: outbound|<port>|<subset>|<host>.
        let parts: Vec<&str> = name.split('|').collect();
        assert!(parts.len() == 4 && parts[0] == "outbound" && parts[2].is_empty(), "{name}: not an Istio cluster");
        let (port, host) = (parts[1].parse::<u64>().unwrap(), parts[3]);
        if let Some((service, namespace)) = host.strip_suffix(".svc.cluster.local").and_then(|h| h.split_once('.')) {
            let svc = object(&store, "Service", Some(service));
            assert_eq!(svc["metadata"]["namespace"], namespace, "{name}");
            assert!(svc["spec"]["ports"].as_array().unwrap().iter().any(|p| p["port"] == port), "{name}: no port");
        } else {
            let entry = egress
                .iter()
                .find(|d| {
                    d["kind"] == "ServiceEntry" && d["spec"]["hosts"].as_array().unwrap().iter().any(|h| h == host)
                })
                .unwrap_or_else(|| panic!("{name}: no ServiceEntry for {host}"));
            let entry_port = entry["spec"]["ports"].as_array().unwrap().iter().find(|p| p["number"] == port);
            assert_eq!(entry_port.unwrap_or_else(|| panic!("{name}: no port"))["protocol"], "HTTP", "{name}");
            let rule = egress
                .iter()
                .find(|d| d["kind"] == "DestinationRule" && d["spec"]["host"] == host)
                .unwrap_or_else(|| panic!("{name}: no DestinationRule originating TLS"));
            let tls = &rule["spec"]["trafficPolicy"]["tls"];
            assert_eq!(tls["mode"], "SIMPLE", "{name}");
            assert_eq!(tls["sni"], host, "{name}");
            if let Some(authority) = authorities.get(&name) {
                assert_eq!(authority, host, "{name}: Host header must be the TLS host");
            }
        }
    }
}

#[test]
fn istio_wasmplugin_is_the_same_plugin() {
    let docs = istio("envoyfilter.yaml");
    let p = patches(object(&docs, "EnvoyFilter", None));
    let ext = &p["EXTENSION_CONFIG"]["patch"]["value"]["typed_config"]["config"];
    let (filter_json, _) = plugin_config(ext, "envoyfilter.yaml");

    let plugin_docs = istio("wasmplugin.yaml");
    let plugin = &object(&plugin_docs, "WasmPlugin", Some("llm-gateway"))["spec"];
    let url = str_of(&plugin["url"], "url");
    assert!(url.starts_with("oci://"));
    assert_eq!(url, ext["vm_config"]["code"]["remote"]["http_uri"]["uri"]);
    assert_eq!(plugin["pluginName"], ext["root_id"]);
    assert!(["UNSPECIFIED_PHASE", "AUTHN", "AUTHZ", "STATS"].contains(&str_of(&plugin["phase"], "phase")));
    assert!(["FAIL_CLOSE", "FAIL_RELOAD"].contains(&str_of(&plugin["failStrategy"], "failStrategy")));
    let env: Vec<&Value> = plugin["vmConfig"]["env"].as_array().unwrap().iter().collect();
    assert!(env.iter().all(|e| e["valueFrom"] == "HOST"), "keys come from the proxy's environment");
    let names: Vec<&Value> = env.iter().map(|e| &e["name"]).collect();
    assert_eq!(json!(names), ext["vm_config"]["environment_variables"]["host_env_keys"]);
    // Istio hands pluginConfig to the filter as JSON: it must be valid and the same.
    let text = plugin["pluginConfig"].to_string();
    Config::parse(text.as_bytes()).unwrap_or_else(|e| panic!("wasmplugin.yaml pluginConfig: {e}"));
    assert_eq!(plugin["pluginConfig"], filter_json, "WasmPlugin and EnvoyFilter configs drifted apart");

    // `kubectl apply -k deploy/istio` applies everything but the WasmPlugin.
    let kustomization = yaml("deploy/istio/kustomization.yaml");
    let listed: BTreeSet<&str> =
        kustomization["resources"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(repo_root().join("deploy/istio"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml" && f != "wasmplugin.yaml")
        .collect();
    assert_eq!(listed, on_disk.iter().map(String::as_str).collect(), "kustomization.yaml resources");
}

#[test]
fn istio_provider_keys_come_from_a_secret() {
    let gateway = istio("gateway.yaml");
    let deployment = object(&gateway, "Deployment", Some("llm-gateway"));
    let proxy = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "istio-proxy")
        .expect("an istio-proxy container");
    for var in KEY_VARS {
        let env = proxy["env"].as_array().unwrap().iter().find(|e| e["name"] == var);
        let env = env.unwrap_or_else(|| panic!("{var} not in the proxy's environment"));
        assert!(env["valueFrom"]["secretKeyRef"]["name"].is_string(), "{var} must come from a Secret");
    }
}

/// A broken configuration must fail these checks, not slip through.
#[test]
fn an_invalid_plugin_config_fails_the_check() {
    let docs = istio("envoyfilter.yaml");
    let p = patches(object(&docs, "EnvoyFilter", None));
    let mut wasm = p["EXTENSION_CONFIG"]["patch"]["value"]["typed_config"]["config"].clone();
    let mut config: Value = serde_json::from_str(wasm["configuration"]["value"].as_str().unwrap()).unwrap();
    config["providers"]["openai"]["clusterr"] = json!("typo");
    wasm["configuration"]["value"] = json!(config.to_string());
    let text = wasm["configuration"]["value"].as_str().unwrap();
    let err = Config::parse(text.as_bytes()).expect_err("a typo must be rejected");
    assert!(err.contains("clusterr"), "{err}");
    let checked = std::panic::catch_unwind(|| plugin_config(&wasm, "broken"));
    assert!(checked.is_err(), "plugin_config must refuse what the filter refuses");
}

#[test]
fn oci_image_holds_only_the_wasm() {
    let dockerfile = read("Dockerfile");
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let last_from = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    assert_eq!(lines[last_from], "FROM scratch");
    let final_stage = &lines[last_from + 1..];
    assert_eq!(final_stage.len(), 1, "the image holds the .wasm and nothing else: {final_stage:?}");
    let copy: Vec<&str> = final_stage[0].split_whitespace().collect();
    assert_eq!(copy[0], "COPY");
    assert!(copy[copy.len() - 2].ends_with("target/wasm32-wasip1/release/llm_gateway.wasm"));
    assert_eq!(copy[copy.len() - 1], "/plugin.wasm", "Istio looks for /plugin.wasm");
    let build = lines[..last_from].iter().find(|l| l.contains("cargo build")).expect("a cargo build");
    for flag in ["--release", "--target wasm32-wasip1", "-p llm-gateway"] {
        assert!(build.contains(flag), "{build}: missing {flag}");
    }
    assert!(read(".dockerignore").lines().any(|l| l.trim() == "target/"), "keep target/ out of the context");
}

/// The Envoy version the tests run by default (scripts/setup.sh).
fn tested_envoy_version() -> String {
    let setup = read("scripts/setup.sh");
    let line = setup.lines().find(|l| l.starts_with("ENVOY_VERSION=")).expect("ENVOY_VERSION in setup.sh");
    line.split(":-").nth(1).and_then(|v| v.split('}').next()).unwrap().to_string()
}

/// `./a/b` relative to the repository root (where docker-compose.yml is), as a path.
fn from_root(rel: &str) -> PathBuf {
    let mut path = repo_root();
    for part in rel.split('/') {
        match part {
            "." => {}
            ".." => path = path.parent().unwrap().to_path_buf(),
            p => path.push(p),
        }
    }
    path
}

/// A compose service's mounts: target → source.
fn mounts(service: &Value) -> HashMap<&str, &str> {
    service["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            // source:target[:mode]; the source may hold ${VAR:-default}.
            let v = v.as_str().unwrap();
            let v = v.strip_suffix(":ro").or_else(|| v.strip_suffix(":rw")).unwrap_or(v);
            let (source, target) = v.rsplit_once(':').unwrap();
            (target, source)
        })
        .collect()
}

const CLUSTER_SERVICES: [&str; 9] = [
    "redis-node-1",
    "redis-node-2",
    "redis-node-3",
    "redis-node-4",
    "redis-node-5",
    "redis-node-6",
    "redis-cluster-init",
    "redis-bridge",
    "webdis-cluster",
];

#[test]
fn compose_file_agrees_with_the_tested_stack() {
    let compose = yaml("docker-compose.yml");
    let services = &compose["services"];
    let names: BTreeSet<&str> = services.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = BTreeSet::from(["envoy", "redis", "webdis", "mock-stack"]);
    expected.extend(CLUSTER_SERVICES);
    assert_eq!(names, expected);
    assert_eq!(services["mock-stack"]["profiles"], json!(["mock"]));
    for cluster in CLUSTER_SERVICES {
        assert_eq!(services[cluster]["profiles"], json!(["cluster"]), "{cluster}");
    }
    for always in ["envoy", "redis", "webdis"] {
        assert!(services[always]["profiles"].is_null(), "{always} must run without a profile");
    }
    let envoy = &services["envoy"];
    assert_eq!(envoy["image"], format!("envoyproxy/envoy:v{}", tested_envoy_version()), "pin the tested Envoy");

    // Mounts: one of the checked renders, the built filter where the renders expect it.
    let mounts = mounts(envoy);
    let config_source = mounts["/etc/envoy/envoy.yaml"];
    assert_eq!(config_source, "./deploy/compose/${LLMGW_ENVOY_CONFIG:-envoy.yaml}");
    assert!(from_root(mounts["/etc/envoy/entrypoint.sh"]).exists());
    assert_eq!(from_root(mounts["/etc/envoy/llm_gateway.wasm"]), wasm_path());
    let renders = [
        ("deploy/compose/envoy.yaml", false, "webdis", "deploy/compose/webdis.json"),
        ("deploy/compose/envoy.mock.yaml", true, "webdis", "deploy/compose/webdis.json"),
        ("deploy/compose/envoy.cluster.yaml", false, "webdis-cluster", "deploy/compose/webdis.cluster.json"),
    ];
    for (path, mocked, webdis_service, webdis_config) in renders {
        assert!(RENDERS.iter().any(|(_, p)| *p == path), "{path} is not a checked render");
        let rendered = yaml(path);
        let wasm = wasm_config(&rendered);
        assert_eq!(wasm["vm_config"]["code"]["local"]["filename"], "/etc/envoy/llm_gateway.wasm", "{path}");
        assert_eq!(wasm["vm_config"]["environment_variables"]["host_env_keys"], json!(KEY_VARS));
        for var in KEY_VARS {
            assert!(envoy["environment"][var].is_string(), "compose does not pass {var} to Envoy");
        }
        // The published port is the listener's; the admin endpoint is not published.
        let listen = &rendered["static_resources"]["listeners"][0]["address"]["socket_address"];
        assert_eq!(listen["address"], "0.0.0.0");
        let published = format!(":{}", listen["port_value"]);
        assert!(envoy["ports"].as_array().unwrap().iter().all(|p| p.as_str().unwrap().ends_with(&published)));
        assert_eq!(rendered["admin"]["address"]["socket_address"]["address"], "127.0.0.1");
        // webdis (auth and limits) is the compose service, on the port its config serves.
        let webdis = yaml(webdis_config);
        let mounted = services[webdis_service]["volumes"][0].as_str().unwrap();
        assert!(mounted.starts_with(&format!("./{webdis_config}:")), "{webdis_service} mounts {mounted}");
        for name in ["auth", "webdis"] {
            let at = endpoint(cluster(&rendered, name));
            assert_eq!(at, (webdis_service.into(), webdis["http_port"].as_u64().unwrap()), "{path}: {name}");
        }
        let (_, config) = plugin_config(wasm, path);
        assert_eq!(config.limits.redis_cluster, webdis_service == "webdis-cluster", "{path}: limits.redis_cluster");
        let provider_clusters: BTreeSet<&str> = Provider::ALL.map(|p| config.provider(p).cluster.as_str()).into();
        if mocked {
            // Mock and sink listen on 127.0.0.1 of Envoy's network namespace, on the ports mock-stack gets.
            let mock = &services["mock-stack"];
            assert_eq!(mock["network_mode"], "service:envoy");
            let args: Vec<&str> = mock["command"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
            let arg = |flag: &str| args[args.iter().position(|a| *a == flag).unwrap() + 1].parse::<u64>().unwrap();
            assert_eq!(endpoint(cluster(&rendered, "mock")), ("127.0.0.1".into(), arg("--provider-port")));
            for sink in ["posthog_primary", "posthog_secondary"] {
                assert_eq!(endpoint(cluster(&rendered, sink)), ("127.0.0.1".into(), arg("--sink-port")));
            }
            assert_eq!(provider_clusters, BTreeSet::from(["mock"]));
            assert!(config.capture.is_some());
        } else {
            assert_eq!(provider_clusters, BTreeSet::from(["openai", "anthropic", "gemini", "bedrock", "azure"]));
        }
    }
    let webdis = yaml("deploy/compose/webdis.json");
    assert_eq!(webdis["redis_host"], "redis");
    let redis_ports: Vec<&str> =
        services["redis"]["ports"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(redis_ports.iter().any(|p| p.ends_with(&format!(":{}", webdis["redis_port"]))), "{redis_ports:?}");
}

/// The `cluster` profile is what tests/e2e/tests/fleet.rs runs: six nodes made one
/// cluster of 3 masters with a replica each, the bridge seeded with them, and webdis in
/// front of the bridge with database 0 and no password (so it sends nothing on connect).
#[test]
fn compose_cluster_profile_is_the_fleet_tests_layout() {
    let compose = yaml("docker-compose.yml");
    let services = &compose["services"];
    let nodes: Vec<String> = (1..=6).map(|n| format!("redis-node-{n}")).collect();
    for node in &nodes {
        let args: Vec<&str> =
            services[node]["command"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        let arg = |flag: &str| args.get(args.iter().position(|a| *a == flag).unwrap_or(usize::MAX) + 1).copied();
        assert_eq!(arg("--cluster-enabled"), Some("yes"), "{node}");
        assert_eq!(
            arg("--cluster-require-full-coverage"),
            Some("no"),
            "{node}: one failing shard must not stop the others"
        );
        assert_eq!(arg("--appendonly"), Some("yes"), "{node}: budgets are money");
    }
    let init = services["redis-cluster-init"]["command"][0].as_str().unwrap();
    assert!(init.contains("--cluster create") && init.contains("--cluster-replicas 1"), "{init}");
    assert!(init.contains("for n in 1 2 3 4 5 6"), "{init}");
    // The bridge: a checked render, seeded with cluster nodes, listening where webdis-cluster connects.
    let bridge_mounts = mounts(&services["redis-bridge"]);
    assert_eq!(bridge_mounts["/etc/envoy/envoy.yaml"], "./deploy/compose/redis-bridge.yaml");
    assert_eq!(services["redis-bridge"]["image"], services["envoy"]["image"]);
    let bridge = yaml("deploy/compose/redis-bridge.yaml");
    let seeds = bridge["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let a = &e["endpoint"]["address"]["socket_address"];
            (a["address"].as_str().unwrap().to_string(), a["port_value"].as_u64().unwrap())
        })
        .collect::<Vec<_>>();
    assert!(!seeds.is_empty());
    for (host, port) in &seeds {
        assert!(nodes.contains(host) && *port == 6379, "seed {host}:{port} is no cluster node");
    }
    let listen = &bridge["static_resources"]["listeners"][0]["address"]["socket_address"];
    let webdis = yaml("deploy/compose/webdis.cluster.json");
    assert_eq!(webdis["redis_host"], "redis-bridge");
    assert_eq!(webdis["redis_port"], listen["port_value"]);
    assert_eq!(webdis["database"], 0, "another database makes webdis send SELECT, which a cluster refuses");
    assert!(webdis.get("redis_auth").is_none(), "the bridge has no password: webdis must not send AUTH");
}

/// What makes a failover short and keeps a hung node from stalling the others, in every
/// bridge render (README, "Fleet: Redis Cluster").
#[test]
fn bridge_renders_keep_what_failover_needs() {
    let limits_timeout_ms = Config::parse(b"{}").unwrap().limits.timeout_ms;
    for (_, path) in BRIDGE_RENDERS {
        let bridge = yaml(path);
        assert_eq!(bridge["admin"]["address"]["socket_address"]["address"], "127.0.0.1", "{path}");
        let proxy = &bridge["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0];
        assert_eq!(proxy["name"], "envoy.filters.network.redis_proxy", "{path}");
        let settings = &proxy["typed_config"]["settings"];
        assert_eq!(settings["enable_hashtagging"], true, "{path}");
        assert_eq!(settings["enable_redirection"], true, "{path}");
        let op_timeout = str_of(&settings["op_timeout"], "op_timeout");
        let op_ms = (op_timeout.trim_end_matches('s').parse::<f64>().unwrap() * 1000.0) as u64;
        assert!(op_ms < limits_timeout_ms, "{path}: op_timeout {op_timeout} must stay below limits.timeout_ms");
        let cluster = &bridge["static_resources"]["clusters"][0];
        assert_eq!(cluster["lb_policy"], "CLUSTER_PROVIDED", "{path}");
        assert_eq!(cluster["cluster_type"]["name"], "envoy.clusters.redis", "{path}");
        assert_eq!(cluster["cluster_type"]["typed_config"]["failure_refresh_threshold"], 1, "{path}");
    }
}

/// deploy/istio-cluster: the base manifests with the single Redis replaced by the
/// bridge next to each webdis, and the same plugin config plus `limits.redis_cluster`.
#[test]
fn istio_cluster_overlay_changes_only_the_store() {
    let kustomization = yaml("deploy/istio-cluster/kustomization.yaml");
    assert_eq!(kustomization["resources"], json!(["../istio"]));
    assert_eq!(kustomization["configMapGenerator"][0]["files"], json!(["envoy.yaml=redis-bridge.yaml"]));
    assert!(BRIDGE_RENDERS.iter().any(|(_, p)| *p == "deploy/istio-cluster/redis-bridge.yaml"));
    // The plugin config: the base's, plus redis_cluster, nothing else.
    let patch = yaml_docs(&read("deploy/istio-cluster/envoyfilter-cluster.yaml"));
    let op = &patch[0][0];
    assert_eq!(op["op"], "replace");
    assert_eq!(op["path"], "/spec/configPatches/0/patch/value/typed_config/config/configuration/value");
    let text = str_of(&op["value"], "patched plugin config");
    let cluster_config = Config::parse(text.as_bytes()).unwrap_or_else(|e| panic!("the filter rejects it: {e}"));
    assert!(cluster_config.limits.redis_cluster);
    let docs = istio("envoyfilter.yaml");
    let p = patches(object(&docs, "EnvoyFilter", None));
    let (mut base, _) =
        plugin_config(&p["EXTENSION_CONFIG"]["patch"]["value"]["typed_config"]["config"], "envoyfilter");
    base["limits"]["redis_cluster"] = json!(true);
    assert_eq!(serde_json::from_str::<Value>(text).unwrap(), base, "the overlay's plugin config drifted from the base");
    // webdis → the bridge in its pod, database 0, no password.
    let bridge = yaml("deploy/istio-cluster/redis-bridge.yaml");
    let listen = &bridge["static_resources"]["listeners"][0]["address"]["socket_address"];
    let webdis_patch = kustomization["patches"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["patch"].as_str())
        .flat_map(yaml_docs)
        .find(|d| d["kind"] == "ConfigMap")
        .expect("the webdis ConfigMap patch");
    let webdis: Value = serde_json::from_str(str_of(&webdis_patch["data"]["webdis.json"], "webdis.json")).unwrap();
    assert_eq!(
        (webdis["redis_host"].clone(), webdis["redis_port"].clone()),
        (listen["address"].clone(), listen["port_value"].clone())
    );
    assert_eq!(webdis["database"], 0);
    assert!(webdis.get("redis_auth").is_none());
    // Rendered as kubectl would apply it, when kubectl is here.
    let Ok(out) = Command::new("kubectl").args(["kustomize"]).arg(repo_root().join("deploy/istio-cluster")).output()
    else {
        eprintln!("note: kubectl is not installed; skipped `kubectl kustomize deploy/istio-cluster`");
        return;
    };
    assert!(out.status.success(), "kubectl kustomize: {}", String::from_utf8_lossy(&out.stderr));
    let docs = yaml_docs(&String::from_utf8(out.stdout).unwrap());
    assert!(!docs.iter().any(|d| d["metadata"]["name"] == "redis"), "the single Redis is gone");
    let pod = &object(&docs, "Deployment", Some("webdis"))["spec"]["template"]["spec"];
    let containers: BTreeSet<&str> =
        pod["containers"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(containers, BTreeSet::from(["webdis", "redis-bridge"]));
    let generated = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["data"]["envoy.yaml"].is_string())
        .expect("the bridge's ConfigMap");
    assert_eq!(generated["data"]["envoy.yaml"], read("deploy/istio-cluster/redis-bridge.yaml"));
    let filter = object(&docs, "EnvoyFilter", Some("llm-gateway"));
    let (_, config) =
        plugin_config(&patches(filter)["EXTENSION_CONFIG"]["patch"]["value"]["typed_config"]["config"], "kustomized");
    assert!(config.limits.redis_cluster);
}

/// `docker compose config` (or Debian's docker-compose) where one is installed.
fn compose_cli() -> Option<Vec<&'static str>> {
    let works = |cmd: &[&str]| {
        Command::new(cmd[0]).args(&cmd[1..]).arg("version").output().map(|o| o.status.success()).unwrap_or(false)
    };
    [vec!["docker", "compose"], vec!["docker-compose"]].into_iter().find(|c| works(c))
}

#[test]
fn compose_cli_accepts_the_file() {
    // scripts/setup.sh installs Debian's docker-compose: without it this check cannot run, so it fails.
    let cli =
        compose_cli().expect("neither `docker compose` nor `docker-compose` is installed (make setup installs it)");
    let cases = [
        ("envoy.yaml", vec![]),
        ("envoy.mock.yaml", vec!["mock"]),
        ("envoy.cluster.yaml", vec!["cluster"]),
        ("envoy.mock.yaml", vec!["mock", "cluster"]),
    ];
    for (config, profiles) in cases {
        let mut cmd = Command::new(cli[0]);
        cmd.args(&cli[1..]).current_dir(repo_root()).env("LLMGW_ENVOY_CONFIG", config);
        cmd.args(["-f", "docker-compose.yml"]);
        for p in profiles {
            cmd.args(["--profile", p]);
        }
        let out = cmd.args(["config", "-q"]).output().unwrap();
        assert!(out.status.success(), "{cli:?} config rejects the file: {}", String::from_utf8_lossy(&out.stderr));
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    child.stdin.take().unwrap().write_all(data).unwrap();
    child.wait_with_output().unwrap().stdout
}

/// The deployed config has no request decompressor (see envoy/envoy.yaml.tmpl): a gzip
/// body is refused with a clear 400 and never reaches a provider.
#[test]
fn compressed_request_bodies_get_a_clear_400() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "compressed"}]}).to_string();
    let result = ureq::post(&stack.url("/v1/chat/completions"))
        .set("authorization", &format!("Bearer {TEST_KEY}"))
        .set("content-type", "application/json")
        .set("content-encoding", "gzip")
        .set("x-test-marker", "gzip-request")
        .send_bytes(&gzip(body.as_bytes()));
    let (status, text) = match result {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(status, 400, "{text}");
    let error: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error", "{text}");
    assert!(stack.mock.requests().iter().all(|r| r.header("x-test-marker") != Some("gzip-request")));
}

/// The Istio overlay for Bedrock on IAM credentials is the base with the plugin's Bedrock
/// auth switched to "sigv4" (nothing else), the signer on Bedrock's cluster, and the IRSA
/// role on the gateway's ServiceAccount; `kubectl kustomize` builds it where installed.
#[test]
fn istio_bedrock_sigv4_overlay_is_the_base_with_the_signer() {
    let kustomization = yaml("deploy/istio-bedrock-sigv4/kustomization.yaml");
    let resources: Vec<&str> =
        kustomization["resources"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert_eq!(resources, ["../istio", "signer.yaml"]);
    let overlay_patches = kustomization["patches"].as_array().unwrap();
    let filter_patch =
        overlay_patches.iter().find(|p| p["target"]["kind"] == "EnvoyFilter").expect("the plugin config patch");
    assert_eq!(filter_patch["target"]["name"], "llm-gateway");
    let ops = yaml_docs(str_of(&filter_patch["patch"], "patch"));
    let op = &ops[0][0];
    assert_eq!(op["op"], "replace");
    assert_eq!(op["path"], "/spec/configPatches/0/patch/value/typed_config/config/configuration/value");
    let overlay: Value = serde_json::from_str(str_of(&op["value"], "value")).unwrap();
    let config = Config::parse(overlay.to_string().as_bytes()).unwrap_or_else(|e| panic!("overlay config: {e}"));
    assert_eq!(config.provider(Provider::Bedrock).auth, llm_gateway::config::ProviderAuth::SigV4);

    let docs = istio("envoyfilter.yaml");
    let p = patches(object(&docs, "EnvoyFilter", Some("llm-gateway")));
    let base_wasm = &p["EXTENSION_CONFIG"]["patch"]["value"]["typed_config"]["config"];
    let (mut base, _) = plugin_config(base_wasm, "envoyfilter.yaml");
    base["providers"]["bedrock"]["auth"] = json!("sigv4");
    assert_eq!(overlay, base, "the overlay's plugin config drifted from the base's");

    let sa_patch = overlay_patches.iter().find(|p| p["target"]["kind"] == "ServiceAccount").expect("the IRSA patch");
    let gateway = istio("gateway.yaml");
    assert_eq!(sa_patch["target"]["name"], object(&gateway, "ServiceAccount", None)["metadata"]["name"]);
    let deployment = object(&gateway, "Deployment", Some("llm-gateway"));
    assert_eq!(deployment["spec"]["template"]["spec"]["serviceAccountName"], sa_patch["target"]["name"]);

    // The real build, where kubectl is installed.
    let Ok(out) =
        Command::new("kubectl").args(["kustomize"]).arg(repo_root().join("deploy/istio-bedrock-sigv4")).output()
    else {
        eprintln!("note: kubectl is not installed; skipped `kubectl kustomize deploy/istio-bedrock-sigv4`");
        return;
    };
    assert!(out.status.success(), "kubectl kustomize: {}", String::from_utf8_lossy(&out.stderr));
    let built = yaml_docs(&String::from_utf8(out.stdout).unwrap());
    let filter = object(&built, "EnvoyFilter", Some("llm-gateway"));
    let value = &patches(filter)["EXTENSION_CONFIG"]["patch"]["value"]["typed_config"]["config"];
    assert_eq!(plugin_config(value, "built overlay").0, overlay);
    object(&built, "EnvoyFilter", Some("llm-gateway-bedrock-sigv4"));
    let sa = object(&built, "ServiceAccount", Some("llm-gateway"));
    assert!(sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].is_string());
}

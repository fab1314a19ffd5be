//! Starts the local stack for a test: Envoy with the built filter, Redis,
//! webdis, the mock provider and the capture sink, on ports picked at run
//! time. Every child process dies with the test process (PR_SET_PDEATHSIG)
//! and on `Drop`, so nothing outlives a failed test.

use std::collections::HashMap;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::mock::{MockProvider, ProviderKeys};
use crate::sigv4::AwsCredentials;
use crate::sink::CaptureSink;

pub const OPENAI_KEY: &str = "sk-test-openai-provider-key";
/// A second OpenAI key the mock accepts, for key pools (`OPENAI_KEY,OPENAI_SECOND_KEY`).
pub const OPENAI_SECOND_KEY: &str = "sk-test-openai-second-provider-key";
pub const ANTHROPIC_KEY: &str = "sk-ant-test-provider-key";
pub const GEMINI_KEY: &str = "gemini-test-provider-key";
pub const BEDROCK_KEY: &str = "bedrock-test-provider-key";
pub const AZURE_KEY: &str = "azure-test-provider-key";
/// The IAM credentials Envoy signs Bedrock requests with (SigV4 tests): the key id
/// goes in the signature's scope, the session token in `x-amz-security-token`, and
/// the secret nowhere (scripts/secret-scan.py checks all three).
pub const AWS_ACCESS_KEY: &str = "AKIDLLMGATEWAYTEST01";
pub const AWS_SECRET_KEY: &str = "llmgw/test+secret/access/key/0123456789";
pub const AWS_SESSION_KEY: &str = "llmgw-test-session-token-0123456789";

/// The credentials of `AWS_*_KEY`.
pub fn aws_credentials() -> AwsCredentials {
    AwsCredentials {
        access_key_id: AWS_ACCESS_KEY.into(),
        secret_access_key: AWS_SECRET_KEY.into(),
        session_token: Some(AWS_SESSION_KEY.into()),
    }
}

/// Envoy's environment for SigV4: the credentials Envoy's signer reads.
pub fn aws_env(credentials: &AwsCredentials) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("AWS_ACCESS_KEY_ID", credentials.access_key_id.clone()),
        ("AWS_SECRET_ACCESS_KEY", credentials.secret_access_key.clone()),
    ];
    env.extend(credentials.session_token.clone().map(|t| ("AWS_SESSION_TOKEN", t)));
    env
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The key every `Stack` provisions; `Stack::post` sends it unless a test sends its own.
pub const TEST_KEY: &str = "phx_e2e_default_test_key_0001";

pub fn sha256_hex(s: &str) -> String {
    let out = Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().and_then(|mut c| {
        use std::io::Write;
        c.stdin.take().unwrap().write_all(s.as_bytes())?;
        c.wait_with_output()
    });
    String::from_utf8(out.unwrap().stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

pub fn envoy_bin() -> PathBuf {
    std::env::var_os("ENVOY_BIN").map(PathBuf::from).unwrap_or_else(|| repo_root().join(".venv/bin/envoy"))
}

pub fn wasm_path() -> PathBuf {
    repo_root().join("target/wasm32-wasip1/release/llm_gateway.wasm")
}

/// A plaintext transport socket, for a template's `<X>_TRANSPORT` placeholder.
pub const PLAINTEXT: &str = concat!(
    "{name: envoy.transport_sockets.raw_buffer, typed_config: ",
    r#"{"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}}"#
);

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A loopback port that refuses every connection and that no other process can
/// take while this lives: a socket bound to it that never listens.
pub struct DeadPort {
    /// Held only to keep the port: closing it frees the port.
    _fd: std::os::fd::OwnedFd,
    port: u16,
}

impl DeadPort {
    pub fn new() -> DeadPort {
        use std::os::fd::{AsRawFd, FromRawFd};
        // SAFETY: plain socket calls on a descriptor this function owns from creation.
        unsafe {
            let raw = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(raw >= 0, "socket: {}", std::io::Error::last_os_error());
            let fd = std::os::fd::OwnedFd::from_raw_fd(raw);
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let bound = libc::bind(fd.as_raw_fd(), (&addr as *const libc::sockaddr_in).cast(), len);
            assert!(bound == 0, "bind: {}", std::io::Error::last_os_error());
            let mut len = len;
            let named = libc::getsockname(fd.as_raw_fd(), (&mut addr as *mut libc::sockaddr_in).cast(), &mut len);
            assert!(named == 0, "getsockname: {}", std::io::Error::last_os_error());
            DeadPort { port: u16::from_be(addr.sin_port), _fd: fd }
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Default for DeadPort {
    fn default() -> Self {
        Self::new()
    }
}

/// The end of a startup log, without the list of compiled-in extensions that fills its head.
pub fn log_tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.contains("server.cc:467]")).collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Fills `${NAME}` placeholders; every placeholder must have a value.
pub fn render(template: &str, vars: &HashMap<&str, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("unclosed placeholder") + start;
        let name = &rest[start + 2..end];
        out.push_str(vars.get(name).unwrap_or_else(|| panic!("no value for ${{{name}}}")));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The Azure resource host the tests' plugin config names.
pub const AZURE_AUTHORITY: &str = "test-resource.openai.azure.com";

/// Clusters of the template that serve providers (as in scripts/render-envoy.py).
const TEMPLATE_PROVIDER_CLUSTERS: [&str; 6] = ["openai", "anthropic", "gemini", "bedrock", "azure", "mock"];

/// The failover route's map from `x-llm-gateway-cluster` to cluster, as a YAML flow
/// map (the FAILOVER_CLUSTERS placeholder): the template's provider clusters, those
/// the plugin config names, and the clusters `extra_clusters` defines.
pub fn failover_clusters(plugin_config: &Value, extra_clusters: &str) -> String {
    let mut names: std::collections::BTreeSet<String> =
        TEMPLATE_PROVIDER_CLUSTERS.iter().map(|s| s.to_string()).collect();
    for name in ["openai", "anthropic", "gemini", "bedrock", "azure"] {
        names.insert(plugin_config["providers"][name]["cluster"].as_str().unwrap_or(name).to_string());
    }
    for line in extra_clusters.lines() {
        if let Some(name) = line.strip_prefix("  - name: ") {
            names.insert(name.trim().to_string());
        }
    }
    let action = "type.googleapis.com/envoy.extensions.router.cluster_specifiers.matcher.v3.ClusterAction";
    let entries: Vec<String> = names
        .iter()
        .map(|n| {
            let q = serde_json::to_string(n).unwrap();
            format!(r#"{q}: {{action: {{name: cluster, typed_config: {{"@type": {action}, cluster: {q}}}}}}}"#)
        })
        .collect();
    format!("{{{}}}", entries.join(", "))
}

/// A change to a rendered Envoy config, given the directory of the Envoy it is for.
pub type Edit = dyn Fn(String, &Path) -> String;

/// A provider cluster on a loopback port for `extra_clusters`, as the template's are:
/// the upstream (failover) filter and raised circuit breakers.
pub fn provider_cluster(name: &str, port: u16) -> String {
    format!(
        "  - name: {name}\n    type: STATIC\n    connect_timeout: 1s\n    \
         circuit_breakers: {{thresholds: [{{max_connections: 10000, max_pending_requests: 10000, max_requests: 10000, max_retries: 10000}}]}}\n    \
         typed_extension_protocol_options: *upstream_filter\n    load_assignment:\n      cluster_name: {name}\n      \
         endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}}}]}}]\n"
    )
}

/// The minor version of the Envoy the tests run (`ENVOY_BIN`), e.g. 40 for 1.40.0.
pub fn envoy_minor() -> u32 {
    static MINOR: OnceLock<u32> = OnceLock::new();
    *MINOR.get_or_init(|| {
        let out = Command::new(envoy_bin()).arg("--version").output().map(|o| o.stdout).unwrap_or_default();
        let text = String::from_utf8_lossy(&out);
        // ".../1.40.0/Clean/RELEASE/BoringSSL"
        text.split('/')
            .find_map(|part| part.strip_prefix("1.").and_then(|rest| rest.split('.').next()?.parse().ok()))
            .unwrap_or(40)
    })
}

/// Envoy 1.39 added `refresh_cluster_on_retry`: older ones run the template without
/// its failover route (the lines from `failover-begin` to `failover-end`).
pub fn template_for(minor: u32, template: &str) -> String {
    if minor >= 39 {
        return template.to_string();
    }
    let mut out = Vec::new();
    let mut skipping = false;
    for line in template.lines() {
        skipping |= line.contains("# failover-begin");
        if !skipping {
            out.push(line);
        }
        if line.contains("# failover-end") {
            skipping = false;
        }
    }
    out.join("\n") + "\n"
}

/// The plugin configuration the tests run with: every provider on the mock.
pub fn test_plugin_config() -> Value {
    let mock = json!({"cluster": "mock", "timeout_ms": 5000});
    let azure = json!({"cluster": "mock", "timeout_ms": 5000, "authority": AZURE_AUTHORITY});
    json!({
        "providers": {"openai": mock, "anthropic": mock, "gemini": mock, "bedrock": mock, "azure": azure},
        "max_request_body_bytes": 1_048_576,
        "capture": {
            "region_url": "https://us.posthog.com",
            "flush_interval_ms": 200,
            "primary": {"cluster": "posthog_primary", "api_key": "phc_primary_test"},
            "secondary": {"cluster": "posthog_secondary", "api_key": "phc_mirror_test", "path": "/batch/"},
        },
    })
}

/// The template's BEDROCK_SIGNER for a plugin config: scripts/render-envoy.py's
/// `bedrock_signer`, but with the credentials from Envoy's environment only, so a
/// test never reaches for a credentials file or the instance role
/// (tests/deploy.rs keeps the two alike).
pub fn bedrock_signer(plugin_config: &Value) -> String {
    let bedrock = &plugin_config["providers"]["bedrock"];
    if bedrock["auth"] != "sigv4" {
        return String::new();
    }
    let authority = bedrock["authority"].as_str().unwrap_or("bedrock-runtime.us-east-1.amazonaws.com");
    let region = authority.split('.').nth(1).unwrap_or("us-east-1");
    [
        "- name: envoy.filters.http.aws_request_signing",
        "  typed_config:",
        "    \"@type\": type.googleapis.com/envoy.extensions.filters.http.aws_request_signing.v3.AwsRequestSigning",
        "    service_name: bedrock",
        &format!("    region: {region}"),
        "    use_unsigned_payload: false",
        "    match_excluded_headers:",
        "    - {prefix: x-envoy-}",
        "    - {prefix: x-forwarded-}",
        "    - {prefix: x-llm-gateway-}",
        "    - {exact: x-request-id}",
        "    credential_provider:",
        "      custom_credential_provider_chain: true",
        "      environment_credential_provider: {}",
    ]
    .iter()
    .map(|line| format!("\n        {line}"))
    .collect()
}

/// Merges `overlay` into `base`, objects recursively.
pub fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o,
    }
}

/// Starts `cmd` with its output in `log`; it dies with the thread that started it.
pub fn spawn(cmd: &mut Command, log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill the child with us.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"))
}

/// Starts a server that takes its port on the command line, on a fresh port each try: a
/// port picked by `free_port` can be taken by another process before the server binds it.
pub fn start_on_free_port(what: &str, log: &Path, mut command: impl FnMut(u16) -> Command) -> (u16, Child) {
    let mut last_log = String::new();
    for _ in 0..5 {
        let port = free_port();
        let mut child = spawn(&mut command(port), log);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let listening = TcpStream::connect(("127.0.0.1", port)).is_ok();
            if listening {
                // Whoever answered, a server that lost the port exits at once.
                std::thread::sleep(Duration::from_millis(50));
            }
            if let Ok(Some(_)) = child.try_wait() {
                last_log = std::fs::read_to_string(log).unwrap_or_default();
                break;
            }
            if listening {
                return (port, child);
            }
            assert!(Instant::now() < deadline, "{what} did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("{what} did not start in 5 tries:\n{}", log_tail(&last_log));
}

/// Redis and webdis, for auth lookups and limits.
pub struct Store {
    pub redis_port: u16,
    pub webdis_port: u16,
    children: Vec<Child>,
}

impl Store {
    pub fn start(dir: &Path) -> Store {
        let (redis_port, redis) = start_on_free_port("redis-server", &dir.join("redis.log"), |port| {
            let mut cmd = Command::new("redis-server");
            cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
            cmd
        });
        let (webdis_port, webdis) = start_on_free_port("webdis", &dir.join("webdis.out"), |port| {
            let conf = dir.join("webdis.json");
            let webdis_conf = json!({
                "redis_host": "127.0.0.1", "redis_port": redis_port,
                "http_host": "127.0.0.1", "http_port": port,
                "threads": 2, "daemonize": false, "database": 0, "verbosity": 1,
                "logfile": dir.join("webdis.log"),
            });
            std::fs::write(&conf, webdis_conf.to_string()).unwrap();
            let mut cmd = Command::new("webdis");
            cmd.arg(conf);
            cmd
        });
        Store { redis_port, webdis_port, children: vec![redis, webdis] }
    }

    /// Stores a principal for `key` where the local auth contract looks it up.
    pub fn put_key(&self, key: &str, principal: &Value) {
        self.command(&["SET", &format!("llmgw:key:{}", sha256_hex(key)), &principal.to_string()]);
    }

    pub fn delete_key(&self, key: &str) {
        self.command(&["DEL", &format!("llmgw:key:{}", sha256_hex(key))]);
    }

    /// Runs a Redis command through webdis, e.g. `["SET", "k", "v"]`.
    pub fn command(&self, args: &[&str]) -> Value {
        let path: Vec<String> = args.iter().map(|a| percent_encode(a)).collect();
        let url = format!("http://127.0.0.1:{}/{}", self.webdis_port, path.join("/"));
        ureq::get(&url).call().unwrap().into_json().unwrap()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What a client saw.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub struct Envoy {
    pub port: u16,
    pub admin_port: u16,
    pub log: PathBuf,
    child: Child,
}

/// Where Envoy's clusters point.
#[derive(Clone, Copy)]
pub struct Ports {
    pub mock: u16,
    pub sink: u16,
    pub sink2: u16,
    pub webdis: u16,
    pub auth: u16,
}

impl Envoy {
    /// Renders the shared template and starts Envoy; panics with its log if it does not come up.
    pub fn start(dir: &Path, plugin_config: &Value, ports: Ports) -> Envoy {
        Envoy::start_with(dir, plugin_config, ports, 2)
    }

    pub fn start_with(dir: &Path, plugin_config: &Value, ports: Ports, workers: u32) -> Envoy {
        match Envoy::try_start(dir, plugin_config, ports, workers) {
            Ok(e) => e,
            Err(log) => panic!("envoy did not start:\n{}", log_tail(&log)),
        }
    }

    /// Starts Envoy; `Err` carries its log when it exits instead of serving.
    pub fn try_start(dir: &Path, plugin_config: &Value, ports: Ports, workers: u32) -> Result<Envoy, String> {
        Envoy::try_start_with_wasm(dir, plugin_config, ports, workers, &wasm_path())
    }

    /// As `try_start`, loading another build of the filter (e.g. the fault-injection one).
    pub fn try_start_with_wasm(
        dir: &Path,
        plugin_config: &Value,
        ports: Ports,
        workers: u32,
        wasm: &Path,
    ) -> Result<Envoy, String> {
        Envoy::try_start_with_clusters(dir, plugin_config, ports, workers, wasm, "")
    }

    /// As `try_start_with_wasm`, with the provider key variables in `omit` left out
    /// of Envoy's environment (a gateway with no key for that provider).
    pub fn try_start_without_keys(
        dir: &Path,
        plugin_config: &Value,
        ports: Ports,
        workers: u32,
        wasm: &Path,
        omit: &[&str],
    ) -> Result<Envoy, String> {
        Envoy::try_start_configured(dir, plugin_config, ports, workers, wasm, "", omit, &[], None)
    }

    /// As `try_start_with_wasm`, with more clusters (YAML list items, two-space indented)
    /// appended to the template's `clusters`, e.g. one serving a price catalog.
    pub fn try_start_with_clusters(
        dir: &Path,
        plugin_config: &Value,
        ports: Ports,
        workers: u32,
        wasm: &Path,
        extra_clusters: &str,
    ) -> Result<Envoy, String> {
        Envoy::try_start_configured(dir, plugin_config, ports, workers, wasm, extra_clusters, &[], &[], None)
    }

    /// As `try_start_with_clusters`, with more variables in Envoy's environment (e.g.
    /// the AWS credentials its SigV4 signer reads, or a provider's key pool).
    pub fn try_start_full(
        dir: &Path,
        plugin_config: &Value,
        ports: Ports,
        workers: u32,
        wasm: &Path,
        extra_clusters: &str,
        env: &[(&str, String)],
    ) -> Result<Envoy, String> {
        Envoy::try_start_configured(dir, plugin_config, ports, workers, wasm, extra_clusters, &[], env, None)
    }

    /// As `try_start_with_wasm`, with the rendered config passed through `edit` (given
    /// this Envoy's directory for any file the edit adds) before Envoy reads it.
    pub fn try_start_edited(
        dir: &Path,
        plugin_config: &Value,
        ports: Ports,
        workers: u32,
        edit: &Edit,
    ) -> Result<Envoy, String> {
        Envoy::try_start_configured(dir, plugin_config, ports, workers, &wasm_path(), "", &[], &[], Some(edit))
    }

    #[allow(clippy::too_many_arguments)]
    fn try_start_configured(
        dir: &Path,
        plugin_config: &Value,
        ports: Ports,
        workers: u32,
        wasm: &Path,
        extra_clusters: &str,
        omit: &[&str],
        env: &[(&str, String)],
        edit: Option<&Edit>,
    ) -> Result<Envoy, String> {
        // Port 0 everywhere: Envoy binds what the kernel gives it and reports it, so no
        // other process can take a port between our picking it and Envoy binding it.
        static STARTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = format!("{}-{}", std::process::id(), STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let template =
            template_for(envoy_minor(), &std::fs::read_to_string(repo_root().join("envoy/envoy.yaml.tmpl")).unwrap());
        // Every service cluster on loopback, in plaintext; deployments set hosts and TLS
        // through the same placeholders (scripts/render-envoy.py).
        let loopback = || "127.0.0.1".to_string();
        let vars: HashMap<&str, String> = [
            ("LISTEN_ADDRESS", loopback()),
            ("MOCK_HOST", loopback()),
            ("AUTH_HOST", loopback()),
            ("WEBDIS_HOST", loopback()),
            ("SINK_HOST", loopback()),
            ("SINK2_HOST", loopback()),
            ("AUTH_TRANSPORT", PLAINTEXT.into()),
            ("WEBDIS_TRANSPORT", PLAINTEXT.into()),
            ("SINK_TRANSPORT", PLAINTEXT.into()),
            ("SINK2_TRANSPORT", PLAINTEXT.into()),
            ("LISTEN_PORT", "0".into()),
            ("ADMIN_PORT", "0".into()),
            ("WASM_PATH", wasm.display().to_string()),
            ("BODY_LIMIT", (2 * 1_048_576).to_string()),
            ("PLUGIN_CONFIG", serde_json::to_string(&plugin_config.to_string()).unwrap()),
            ("FAILOVER_CLUSTERS", failover_clusters(plugin_config, extra_clusters)),
            ("MOCK_PORT", ports.mock.to_string()),
            ("SINK_PORT", ports.sink.to_string()),
            ("SINK2_PORT", ports.sink2.to_string()),
            ("WEBDIS_PORT", ports.webdis.to_string()),
            ("AUTH_PORT", ports.auth.to_string()),
            // The bedrock and azure clusters point at the mock too (tests that use them
            // name them in the plugin config).
            ("BEDROCK_HOST", loopback()),
            ("BEDROCK_PORT", ports.mock.to_string()),
            ("BEDROCK_TRANSPORT", PLAINTEXT.into()),
            ("BEDROCK_SIGNER", bedrock_signer(plugin_config)),
            ("AZURE_HOST", loopback()),
            ("AZURE_PORT", ports.mock.to_string()),
            ("AZURE_TRANSPORT", PLAINTEXT.into()),
        ]
        .into();
        let yaml = dir.join(format!("envoy-{n}.yaml"));
        let rendered = render(&template, &vars) + extra_clusters;
        let rendered = match edit {
            Some(edit) => edit(rendered, dir),
            None => rendered,
        };
        std::fs::write(&yaml, rendered).unwrap();
        let log = dir.join(format!("envoy-{n}.log"));
        let admin_file = dir.join(format!("envoy-{n}.admin"));
        let mut cmd = Command::new(envoy_bin());
        let workers = workers.to_string();
        cmd.arg("-c").arg(&yaml).args(["--disable-hot-restart", "--concurrency", &workers, "-l", "info"]);
        cmd.arg("--admin-address-path").arg(&admin_file);
        for (var, key) in [
            ("LLM_GATEWAY_OPENAI_API_KEY", OPENAI_KEY),
            ("LLM_GATEWAY_ANTHROPIC_API_KEY", ANTHROPIC_KEY),
            ("LLM_GATEWAY_GEMINI_API_KEY", GEMINI_KEY),
            ("LLM_GATEWAY_BEDROCK_API_KEY", BEDROCK_KEY),
            ("LLM_GATEWAY_AZURE_API_KEY", AZURE_KEY),
        ] {
            if omit.contains(&var) {
                cmd.env_remove(var);
            } else {
                cmd.env(var, key);
            }
        }
        for (var, value) in env {
            cmd.env(var, value);
        }
        let mut child = spawn(&mut cmd, &log);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return Err(std::fs::read_to_string(&log).unwrap_or_default());
            }
            if let Some((port, admin_port)) = Envoy::bound_ports(&admin_file) {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(Envoy { port, admin_port, log, child });
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!("timed out\n{}", std::fs::read_to_string(&log).unwrap_or_default()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Once Envoy is ready: the ports it bound for the client listener and the admin.
    fn bound_ports(admin_file: &Path) -> Option<(u16, u16)> {
        let admin = std::fs::read_to_string(admin_file).ok()?;
        let admin_port: u16 = admin.trim().rsplit_once(':')?.1.parse().ok()?;
        ureq::get(&format!("http://127.0.0.1:{admin_port}/ready")).call().ok()?;
        let listeners: Value =
            ureq::get(&format!("http://127.0.0.1:{admin_port}/listeners?format=json")).call().ok()?.into_json().ok()?;
        let port = listeners["listener_statuses"][0]["local_address"]["socket_address"]["port_value"].as_u64()?;
        Some((u16::try_from(port).ok()?, admin_port))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One of the filter's own metrics (Envoy shows them as `wasmcustom.<name>`).
    pub fn metric(&self, name: &str) -> u64 {
        settle_counters();
        self.stat(&format!("wasmcustom.{name}"))
    }

    /// Prints this Envoy's log if the test that holds the guard panics.
    pub fn guard(&self) -> LogOnFailure<'_> {
        LogOnFailure(self)
    }

    /// All of the filter's metrics at once, by name without the `wasmcustom.` prefix.
    pub fn metrics(&self) -> HashMap<String, u64> {
        settle_counters();
        let url = format!("http://127.0.0.1:{}/stats?filter=^wasmcustom\\.", self.admin_port);
        let text = ureq::get(&url).call().unwrap().into_string().unwrap();
        text.lines()
            .filter_map(|l| {
                let (name, value) = l.strip_prefix("wasmcustom.")?.split_once(": ")?;
                Some((name.to_string(), value.trim().parse().ok()?))
            })
            .collect()
    }

    /// One counter or gauge from the admin stats, 0 when absent.
    pub fn stat(&self, name: &str) -> u64 {
        let url = format!("http://127.0.0.1:{}/stats?filter=^{}$", self.admin_port, name.replace('.', "\\."));
        let text = ureq::get(&url).call().unwrap().into_string().unwrap();
        text.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
    }
}

/// The filter hands its counter increments to Envoy on its 100 ms tick
/// (`filter::host::flush_metrics`): waiting a little over two ticks lets every
/// increment made before the read reach Envoy's stats.
fn settle_counters() {
    std::thread::sleep(Duration::from_millis(250));
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The whole local stack.
pub struct Stack {
    pub envoy: Envoy,
    pub store: Store,
    pub mock: MockProvider,
    pub sink: CaptureSink,
    /// The mirror (secondary) PostHog.
    pub sink2: CaptureSink,
    pub dir: PathBuf,
}

impl Stack {
    pub fn start(overlay: Value) -> Stack {
        let dir = crate::record::artifacts_dir().join(format!("stack-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let mock = MockProvider::start(ProviderKeys {
            openai: format!("{OPENAI_KEY},{OPENAI_SECOND_KEY}"),
            anthropic: ANTHROPIC_KEY.into(),
            gemini: GEMINI_KEY.into(),
            bedrock: BEDROCK_KEY.into(),
            azure: AZURE_KEY.into(),
            aws: Some(aws_credentials()),
        });
        let sink = CaptureSink::start();
        let sink2 = CaptureSink::start();
        let store = Store::start(&dir);
        let mut config = test_plugin_config();
        merge(&mut config, overlay);
        store.put_key(TEST_KEY, &default_principal());
        let ports = Ports {
            mock: mock.port(),
            sink: sink.port(),
            sink2: sink2.port(),
            webdis: store.webdis_port,
            auth: store.webdis_port,
        };
        let envoy = Envoy::start(&dir, &config, ports);
        Stack { envoy, store, mock, sink, sink2, dir }
    }

    /// One stack per test binary, owned by a thread that never exits, so the
    /// death signal of its children fires only when the test process ends.
    pub fn shared() -> &'static Stack {
        static STACK: OnceLock<&'static Stack> = OnceLock::new();
        STACK.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let stack: &'static Stack = Box::leak(Box::new(Stack::start(json!({}))));
                tx.send(stack).unwrap();
                loop {
                    std::thread::park();
                }
            });
            rx.recv().expect("stack failed to start")
        })
    }

    pub fn ports(&self) -> Ports {
        Ports {
            mock: self.mock.port(),
            sink: self.sink.port(),
            sink2: self.sink2.port(),
            webdis: self.store.webdis_port,
            auth: self.store.webdis_port,
        }
    }

    /// A second Envoy on this stack's neighbours, with its own config (and log dir).
    pub fn extra_envoy(&self, name: &str, overlay: Value, workers: u32) -> Envoy {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut config = test_plugin_config();
        merge(&mut config, overlay);
        Envoy::start_with(&dir, &config, self.ports(), workers)
    }

    /// `extra_envoy` with its rendered config edited first (see `Envoy::try_start_edited`).
    pub fn extra_envoy_edited(&self, name: &str, overlay: Value, workers: u32, edit: &Edit) -> Envoy {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut config = test_plugin_config();
        merge(&mut config, overlay);
        Envoy::try_start_edited(&dir, &config, self.ports(), workers, edit)
            .unwrap_or_else(|log| panic!("envoy did not start:\n{}", log_tail(&log)))
    }

    /// `extra_envoy` with more clusters (see `Envoy::try_start_with_clusters`).
    pub fn extra_envoy_with_clusters(&self, name: &str, overlay: Value, workers: u32, clusters: &str) -> Envoy {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut config = test_plugin_config();
        merge(&mut config, overlay);
        Envoy::try_start_with_clusters(&dir, &config, self.ports(), workers, &wasm_path(), clusters)
            .unwrap_or_else(|log| panic!("envoy did not start:\n{}", log_tail(&log)))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.envoy.port)
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
        self.request("POST", path, headers, body)
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
        send(self.envoy.port, method, path, headers, body)
    }

    /// Prints Envoy's log if the test that holds it panics.
    pub fn guard(&self) -> LogOnFailure<'_> {
        LogOnFailure(&self.envoy)
    }
}

/// The Redis key of `team`'s budget for the current UTC month (micro-USD).
pub fn budget_key(team: i64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    // Days since the epoch to a UTC year-month (civil-from-days).
    let days = (now / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("llmgw:{{t:{team}}}:budget:{y:04}-{m:02}")
}

/// The principal of `TEST_KEY`: every product, the required scope.
pub fn default_principal() -> Value {
    json!({"team_id": 1, "user_id": 1, "distinct_id": "owner-1", "scopes": ["llm_gateway:read"], "products": null})
}

/// A client request to an Envoy on `port`. Sends `TEST_KEY` unless `headers` carry a
/// credential; a header with an empty value is not sent (`("authorization", "")` sends none).
pub fn send(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut req = ureq::request(method, &url).timeout(Duration::from_secs(30));
    let has_credential =
        headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization") || k.eq_ignore_ascii_case("x-api-key"));
    if !has_credential {
        req = req.set("authorization", &format!("Bearer {TEST_KEY}"));
    }
    for (k, v) in headers.iter().filter(|(_, v)| !v.is_empty()) {
        req = req.set(k, v);
    }
    let result = if body.is_empty() { req.call() } else { req.send_string(body) };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = resp.status();
    let headers = resp.headers_names().iter().map(|n| (n.clone(), resp.header(n).unwrap_or("").to_string())).collect();
    let mut body = String::new();
    resp.into_reader().read_to_string(&mut body).unwrap();
    Response { status, headers, body }
}

pub struct LogOnFailure<'a>(&'a Envoy);

impl Drop for LogOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.0.log_text();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("---- envoy log (last 60 lines) ----");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// Sends a POST whose body may be refused mid-upload: the body is written from
/// another thread while the response is read, as a real client would, so an
/// early reply (413) is seen before the server closes. Returns status and body.
pub fn post_reading_early(port: u16, path: &str, body: String) -> (u16, String) {
    use std::io::Write;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {TEST_KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let upload = std::thread::spawn(move || {
        let _ = writer.write_all(body.as_bytes());
    });
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = upload.join();
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

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
use crate::sink::CaptureSink;

pub const OPENAI_KEY: &str = "sk-test-openai-provider-key";
pub const ANTHROPIC_KEY: &str = "sk-ant-test-provider-key";
pub const GEMINI_KEY: &str = "gemini-test-provider-key";
pub const BEDROCK_KEY: &str = "bedrock-test-provider-key";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn envoy_bin() -> PathBuf {
    std::env::var_os("ENVOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/envoy"))
}

pub fn wasm_path() -> PathBuf {
    repo_root().join("target/wasm32-wasip1/release/llm_gateway.wasm")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Fills `${NAME}` placeholders; every placeholder must have a value.
pub fn render(template: &str, vars: &HashMap<&str, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("unclosed placeholder") + start;
        let name = &rest[start + 2..end];
        out.push_str(
            vars.get(name)
                .unwrap_or_else(|| panic!("no value for ${{{name}}}")),
        );
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The plugin configuration the tests run with: every provider on the mock.
pub fn test_plugin_config() -> Value {
    let mock = json!({"cluster": "mock", "timeout_ms": 5000});
    json!({
        "providers": {"openai": mock, "anthropic": mock, "gemini": mock, "bedrock": mock},
        "max_request_body_bytes": 1_048_576,
    })
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

fn spawn(cmd: &mut Command, log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill the child with us.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"))
}

fn wait_for_port(port: u16, what: &str, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited with {status}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Redis and webdis, for auth lookups and limits.
pub struct Store {
    pub redis_port: u16,
    pub webdis_port: u16,
    children: Vec<Child>,
}

impl Store {
    pub fn start(dir: &Path) -> Store {
        let redis_port = free_port();
        let log = dir.join("redis.log");
        let mut redis = spawn(
            Command::new("redis-server").args([
                "--port",
                &redis_port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ]),
            &log,
        );
        wait_for_port(redis_port, "redis-server", &mut redis, &log);
        let webdis_port = free_port();
        let conf = dir.join("webdis.json");
        let webdis_conf = json!({
            "redis_host": "127.0.0.1", "redis_port": redis_port,
            "http_host": "127.0.0.1", "http_port": webdis_port,
            "threads": 2, "daemonize": false, "database": 0, "verbosity": 1,
            "logfile": dir.join("webdis.log"),
        });
        std::fs::write(&conf, webdis_conf.to_string()).unwrap();
        let log = dir.join("webdis.out");
        let mut webdis = spawn(Command::new("webdis").arg(&conf), &log);
        wait_for_port(webdis_port, "webdis", &mut webdis, &log);
        Store {
            redis_port,
            webdis_port,
            children: vec![redis, webdis],
        }
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
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
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
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
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

impl Envoy {
    /// Renders the shared template and starts Envoy; panics with its log if it does not come up.
    pub fn start(
        dir: &Path,
        plugin_config: &Value,
        mock_port: u16,
        sink_port: u16,
        webdis_port: u16,
    ) -> Envoy {
        match Envoy::try_start(dir, plugin_config, mock_port, sink_port, webdis_port) {
            Ok(e) => e,
            Err(log) => panic!("envoy did not start:\n{log}"),
        }
    }

    /// Starts Envoy; `Err` carries its log when it exits instead of serving.
    pub fn try_start(
        dir: &Path,
        plugin_config: &Value,
        mock_port: u16,
        sink_port: u16,
        webdis_port: u16,
    ) -> Result<Envoy, String> {
        let (port, admin_port) = (free_port(), free_port());
        let template = std::fs::read_to_string(repo_root().join("envoy/envoy.yaml.tmpl")).unwrap();
        let vars: HashMap<&str, String> = [
            ("LISTEN_PORT", port.to_string()),
            ("ADMIN_PORT", admin_port.to_string()),
            ("WASM_PATH", wasm_path().display().to_string()),
            ("BODY_LIMIT", (2 * 1_048_576).to_string()),
            (
                "PLUGIN_CONFIG",
                serde_json::to_string(&plugin_config.to_string()).unwrap(),
            ),
            ("MOCK_PORT", mock_port.to_string()),
            ("SINK_PORT", sink_port.to_string()),
            ("WEBDIS_PORT", webdis_port.to_string()),
        ]
        .into();
        let yaml = dir.join(format!("envoy-{port}.yaml"));
        std::fs::write(&yaml, render(&template, &vars)).unwrap();
        let log = dir.join(format!("envoy-{port}.log"));
        let mut cmd = Command::new(envoy_bin());
        cmd.arg("-c").arg(&yaml).args([
            "--disable-hot-restart",
            "--concurrency",
            "2",
            "-l",
            "info",
        ]);
        for (var, key) in [
            ("LLM_GATEWAY_OPENAI_API_KEY", OPENAI_KEY),
            ("LLM_GATEWAY_ANTHROPIC_API_KEY", ANTHROPIC_KEY),
            ("LLM_GATEWAY_GEMINI_API_KEY", GEMINI_KEY),
            ("LLM_GATEWAY_BEDROCK_API_KEY", BEDROCK_KEY),
        ] {
            cmd.env(var, key);
        }
        let mut child = spawn(&mut cmd, &log);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return Err(std::fs::read_to_string(&log).unwrap_or_default());
            }
            let ready = ureq::get(&format!("http://127.0.0.1:{admin_port}/ready"))
                .call()
                .is_ok();
            if ready && TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(Envoy {
                    port,
                    admin_port,
                    log,
                    child,
                });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!(
                    "timed out\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One of the filter's own metrics (Envoy shows them as `wasmcustom.<name>`).
    pub fn metric(&self, name: &str) -> u64 {
        self.stat(&format!("wasmcustom.{name}"))
    }

    /// One counter or gauge from the admin stats, 0 when absent.
    pub fn stat(&self, name: &str) -> u64 {
        let url = format!(
            "http://127.0.0.1:{}/stats?filter=^{}$",
            self.admin_port,
            name.replace('.', "\\.")
        );
        let text = ureq::get(&url).call().unwrap().into_string().unwrap();
        text.lines()
            .find_map(|l| {
                l.strip_prefix(&format!("{name}: "))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0)
    }
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
    pub dir: PathBuf,
}

impl Stack {
    pub fn start(overlay: Value) -> Stack {
        let dir =
            std::env::temp_dir().join(format!("llmgw-e2e-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let mock = MockProvider::start(ProviderKeys {
            openai: OPENAI_KEY.into(),
            anthropic: ANTHROPIC_KEY.into(),
            gemini: GEMINI_KEY.into(),
            bedrock: BEDROCK_KEY.into(),
        });
        let sink = CaptureSink::start();
        let store = Store::start(&dir);
        let mut config = test_plugin_config();
        merge(&mut config, overlay);
        let envoy = Envoy::start(&dir, &config, mock.port(), sink.port(), store.webdis_port);
        Stack {
            envoy,
            store,
            mock,
            sink,
            dir,
        }
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

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.envoy.port)
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
        self.request("POST", path, headers, body)
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        let mut req = ureq::request(method, &self.url(path)).timeout(Duration::from_secs(30));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let result = if body.is_empty() {
            req.call()
        } else {
            req.send_string(body)
        };
        let resp = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = resp.status();
        let headers = resp
            .headers_names()
            .iter()
            .map(|n| (n.clone(), resp.header(n).unwrap_or("").to_string()))
            .collect();
        let mut body = String::new();
        resp.into_reader().read_to_string(&mut body).unwrap();
        Response {
            status,
            headers,
            body,
        }
    }

    /// Prints Envoy's log if the test that holds it panics.
    pub fn guard(&self) -> LogOnFailure<'_> {
        LogOnFailure(&self.envoy)
    }
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

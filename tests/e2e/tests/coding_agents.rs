//! Issue 16: the real coding agents through the gateway. Claude Code 2.1.332
//! and Codex CLI 0.171.0, pinned and installed by `scripts/setup.sh` into
//! `.agents/`, run non-interactively through Envoy against the mock
//! providers, set up exactly as the README's "Coding agents" section says
//! (its blocks are read from there): each client on an Anthropic, an OpenAI
//! and a Gemini model, once answering with text and once running a tool in a
//! round trip, so tool calls are translated both ways.
//!
//! The clients cannot send the mock's `x-mock-*` headers, so the prompts
//! carry them as lines (`x-mock-call`, `x-mock-usage`, ... see
//! `tests/e2e/src/mock.rs`). Each run asserts what the client printed, one
//! `$ai_generation` per model call with the right provider, tokens and cost,
//! and that the client talked to nothing but the gateway: Envoy saw exactly
//! its model calls, and a proxy trap set in its environment saw nothing.
//! Runs take turns (one lock), so Envoy's request count is the run's own.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use llm_gateway_e2e::http1::{Request, Server};
use llm_gateway_e2e::mock::{ENCRYPTED_REASONING, SIGNATURE, TOOL_OUTPUT_MARK};
use llm_gateway_e2e::stack::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------- the clients

/// The platform binary inside an installed npm package: `<scope>/<package prefix>*/<path>`.
fn binary(scope: &str, prefix: &str, path: impl Fn(&Path) -> Option<PathBuf>) -> PathBuf {
    let dir = repo_root().join(".agents/node_modules").join(scope);
    let mut packages: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/setup.sh installs the coding agents)", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix)))
        .collect();
    packages.sort();
    packages.iter().find_map(|p| path(p)).unwrap_or_else(|| panic!("no {prefix}* binary under {}", dir.display()))
}

fn claude_bin() -> PathBuf {
    binary("@anthropic-ai", "claude-code-linux-", |p| Some(p.join("claude")).filter(|b| b.is_file()))
}

fn codex_bin() -> PathBuf {
    binary("@openai", "codex-linux-", |p| {
        let vendor = std::fs::read_dir(p.join("vendor")).ok()?;
        vendor.filter_map(Result::ok).map(|t| t.path().join("bin/codex")).find(|b| b.is_file())
    })
}

// ---------------------------------------------------------------- the README's set-up

const README_URL: &str = "http://127.0.0.1:10000";

/// The README's "Coding agents" section.
fn readme_section() -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme.find("\n## Coding agents\n").expect("a Coding agents section in the README");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end].to_string()
}

/// The section's fenced blocks of one language.
fn blocks(lang: &str) -> Vec<String> {
    let fence = format!("```{lang}\n");
    readme_section().split(&fence).skip(1).filter_map(|b| b.split("```").next()).map(str::to_string).collect()
}

/// The `export NAME=VALUE` lines of the section's shell blocks (comments cut),
/// with `$KEY` and the gateway address filled in.
fn readme_env(names_from: &str, key: &str, base: &str) -> Vec<(String, String)> {
    let block = blocks("sh").into_iter().find(|b| b.contains(names_from)).expect("the shell block");
    block
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .map(|l| l.split(" #").next().unwrap().trim())
        .map(|l| {
            let (name, value) = l.split_once('=').unwrap();
            (name.to_string(), value.replace("$KEY", key).replace(README_URL, base))
        })
        .collect()
}

// ---------------------------------------------------------------- isolation

/// Runs take turns: each one's Envoy request count and mock requests are its own.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A proxy that only records: every client gets it as HTTP(S)_PROXY (the
/// gateway on 127.0.0.1 is in NO_PROXY), so any call elsewhere (telemetry,
/// update checks, the providers' own hosts) lands here and fails.
fn trap() -> &'static (Server, Arc<Mutex<Vec<Request>>>) {
    static TRAP: OnceLock<(Server, Arc<Mutex<Vec<Request>>>)> = OnceLock::new();
    TRAP.get_or_init(|| {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let server = Server::start(move |req, res| {
            log.lock().unwrap_or_else(PoisonError::into_inner).push(req);
            let _ = res.send(403, &[("content-type", "text/plain")], b"coding_agents.rs: no traffic but the gateway's");
        });
        (server, seen)
    })
}

/// What reached the trap since the last look.
fn trapped() -> Vec<String> {
    let mut seen = trap().1.lock().unwrap_or_else(PoisonError::into_inner);
    seen.drain(..).map(|r| format!("{} {}", r.method, r.path)).collect()
}

/// One client run: its own key (whose principal's distinct id names the
/// run, so its events are told apart), HOME and working directory.
struct Run {
    id: String,
    key: String,
    dir: PathBuf,
}

impl Run {
    fn new(stack: &Stack, id: &str) -> Run {
        let key = format!("phx_e2e_agents_{}", id.replace(['-', '.'], "_"));
        let principal = json!({"team_id": 1, "user_id": 1, "distinct_id": id, "scopes": ["llm_gateway:read"],
                               "products": null});
        stack.store.put_key(&key, &principal);
        // Not under /tmp, where Codex refuses to set up its helper binaries (and says so).
        let dir = repo_root().join(format!("target/agent-runs/{}-{id}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["home", "work"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        Run { id: id.to_string(), key, dir }
    }

    fn home(&self) -> PathBuf {
        self.dir.join("home")
    }

    fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// The client, in a clean environment: PATH, the temp HOME, the proxy
    /// trap, the README's variables and `env`; stdin closed, at most 3 minutes.
    fn command(&self, program: &Path, env: &[(String, String)]) -> Command {
        let trap = format!("http://127.0.0.1:{}", trap().0.port());
        let mut cmd = Command::new("timeout");
        cmd.args(["--kill-after=5", "180"]).arg(program).current_dir(self.work()).env_clear();
        cmd.env("PATH", "/usr/local/bin:/usr/bin:/bin").env("HOME", self.home()).env("TERM", "dumb");
        for proxy in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"] {
            cmd.env(proxy, &trap);
        }
        cmd.env("NO_PROXY", "127.0.0.1,localhost").env("no_proxy", "127.0.0.1,localhost");
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(std::process::Stdio::null());
        cmd
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn printed(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// ---------------------------------------------------------------- what the mock is told

#[derive(Clone, Copy, Debug, PartialEq)]
enum Provider {
    Anthropic,
    OpenAi,
    Gemini,
}

/// What a run expects of each model call's usage and event.
struct Expected {
    provider: &'static str,
    model: &'static str,
    /// The provider's usage object, given to the mock as `x-mock-usage`.
    usage: Value,
    input: u64,
    output: u64,
    cache_read: u64,
    cache_creation: Option<u64>,
    reasoning: Option<u64>,
    input_cost: f64,
    output_cost: f64,
}

/// Each provider's usage with cache reads (and writes, or reasoning, where
/// its API reports them), priced from the catalog: gpt-5 $1.25 in, $0.125
/// cached, $10 out; claude-sonnet-4-6 $3 in, $0.30 cache read, $3.75 cache
/// write, $15 out; gemini-2.5-flash $0.30 in, $0.03 cached, $2.50 out (per 1M).
fn expected(provider: Provider, client: Client) -> Expected {
    match provider {
        Provider::OpenAi => Expected {
            provider: "openai",
            model: "gpt-5",
            // Claude Code's calls reach OpenAI as Chat Completions, Codex's as Responses.
            usage: match client {
                Client::ClaudeCode => json!({"prompt_tokens": 2000, "completion_tokens": 300, "total_tokens": 2300,
                    "prompt_tokens_details": {"cached_tokens": 1500, "audio_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 120, "audio_tokens": 0,
                        "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}),
                Client::Codex => json!({"input_tokens": 2000, "input_tokens_details": {"cached_tokens": 1500},
                    "output_tokens": 300, "output_tokens_details": {"reasoning_tokens": 120}, "total_tokens": 2300}),
            },
            input: 2000,
            output: 300,
            cache_read: 1500,
            cache_creation: None,
            reasoning: Some(120),
            input_cost: (500.0 * 1.25 + 1500.0 * 0.125) * 1e-6,
            output_cost: 300.0 * 10.0 * 1e-6,
        },
        Provider::Anthropic => Expected {
            provider: "anthropic",
            model: "claude-sonnet-4-6",
            usage: json!({"input_tokens": 400, "cache_read_input_tokens": 1500, "cache_creation_input_tokens": 100,
                "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 0},
                "output_tokens": 300, "service_tier": "standard"}),
            input: 400,
            output: 300,
            cache_read: 1500,
            cache_creation: Some(100),
            reasoning: None,
            input_cost: (400.0 * 3.0 + 1500.0 * 0.3 + 100.0 * 3.75) * 1e-6,
            output_cost: 300.0 * 15.0 * 1e-6,
        },
        Provider::Gemini => Expected {
            provider: "gemini",
            model: "gemini-2.5-flash",
            usage: json!({"prompt_tokens": 2000, "completion_tokens": 300, "total_tokens": 2300,
                "prompt_tokens_details": {"cached_tokens": 1500}}),
            input: 2000,
            output: 300,
            cache_read: 1500,
            cache_creation: None,
            reasoning: None,
            input_cost: (500.0 * 0.3 + 1500.0 * 0.03) * 1e-6,
            output_cost: 300.0 * 2.5 * 1e-6,
        },
    }
}

impl Expected {
    /// The whole prompt: Anthropic counts the cache apart from `input_tokens`, OpenAI inside.
    fn prompt_tokens(&self) -> u64 {
        match self.provider {
            "anthropic" => self.input + self.cache_read + self.cache_creation.unwrap_or(0),
            _ => self.input,
        }
    }

    /// The input the client is told it used, in its own API's terms: Claude
    /// Code's (Anthropic Messages) leaves the cache out, Codex's (Responses) counts it.
    fn client_input(&self, client: Client) -> u64 {
        match client {
            Client::ClaudeCode => self.prompt_tokens() - self.cache_read - self.cache_creation.unwrap_or(0),
            Client::Codex => self.prompt_tokens(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Client {
    ClaudeCode,
    Codex,
}

/// The greeting the mock answers with, naming the provider wire it spoke.
fn greeting(provider: Provider) -> &'static str {
    match provider {
        Provider::Anthropic => "Hello from mock-anthropic.",
        Provider::OpenAi => "Hello from mock-openai.",
        Provider::Gemini => "Hello from mock-gemini.",
    }
}

/// A prompt with the mock's directives: the run id (to find its upstream
/// requests), the usage, Gemini's real streaming of tool calls, then `lines`.
fn prompt(run: &Run, provider: Provider, client: Client, ask: &str, lines: &[String]) -> String {
    let mut text = format!("{ask} (run {})\nx-mock-usage: {}\n", run.id, expected(provider, client).usage);
    if provider == Provider::Gemini {
        text.push_str("x-mock-quirks: gemini\n");
    }
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// The reasoning the mock shows where the provider's API carries it
/// (Anthropic thinking, Responses reasoning items; not Chat Completions).
const REASONING: &str = "The user wants the tool run.";

/// The shell command of the tool runs: its output line is computed, so it
/// is in no prompt, and it leaves a file behind, so the write really ran.
const COMMAND: &str = "echo tool-output: $((6*7)) | tee answer.txt";
const COMMAND_OUTPUT: &str = "tool-output: 42";

// ---------------------------------------------------------------- checks after a run

/// Waits for the run's `turns` events (one per model call) and checks each:
/// provider, model, format, tokens and cost. Returns them in order.
fn assert_events(stack: &Stack, run: &Run, client: Client, e: &Expected, turns: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let events = loop {
        let events: Vec<Value> = stack.sink.events().into_iter().filter(|ev| ev["distinct_id"] == run.id).collect();
        if events.len() >= turns || Instant::now() > deadline {
            break events;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(events.len(), turns, "{}: one $ai_generation per model call", run.id);
    let format = match client {
        Client::ClaudeCode => "anthropic_messages",
        Client::Codex => "openai_responses",
    };
    for ev in &events {
        let p = &ev["properties"];
        let what = &run.id;
        assert_eq!(ev["event"], "$ai_generation", "{what}");
        assert_eq!(
            (p["$ai_provider"].as_str(), p["$ai_model"].as_str(), p["$ai_api_format"].as_str()),
            (Some(e.provider), Some(e.model), Some(format)),
            "{what}: {p}"
        );
        assert_eq!((p["$ai_http_status"].as_u64(), p["$ai_is_error"].as_bool()), (Some(200), Some(false)), "{what}");
        assert_eq!(p["$ai_stream"], true, "{what}");
        assert_eq!((p["$ai_input_tokens"].as_u64(), p["$ai_output_tokens"].as_u64()), (Some(e.input), Some(e.output)));
        assert_eq!(p["$ai_cache_read_input_tokens"].as_u64(), Some(e.cache_read), "{what}");
        assert_eq!(p["$ai_cache_creation_input_tokens"].as_u64(), e.cache_creation, "{what}: {p}");
        assert_eq!(p["$ai_reasoning_tokens"].as_u64(), e.reasoning, "{what}: {p}");
        let cost = |key: &str| p[key].as_f64().unwrap_or_else(|| panic!("{what}: no {key}: {p}"));
        for (key, want) in [
            ("$ai_input_cost_usd", e.input_cost),
            ("$ai_output_cost_usd", e.output_cost),
            ("$ai_total_cost_usd", e.input_cost + e.output_cost),
        ] {
            assert!((cost(key) - want).abs() < 1e-12, "{what}: {key} {} != {want}", cost(key));
        }
        assert!(p["$ai_session_id"].as_str().is_some_and(|s| !s.is_empty()), "{what}: the client's session: {p}");
    }
    // One session; Claude Code's calls also share the trace its metadata.user_id names.
    let same = |key: &str| events.iter().all(|ev| ev["properties"][key] == events[0]["properties"][key]);
    assert!(same("$ai_session_id"), "{}", run.id);
    if client == Client::ClaudeCode {
        assert!(same("$ai_trace_id"), "{}", run.id);
    }
    events
}

/// Envoy took exactly the run's model calls, the mock got each of them
/// (each carrying the run's prompt), and nothing went anywhere else.
fn assert_only_the_gateway(stack: &Stack, run: &Run, envoy_before: u64, mock_before: usize, turns: usize) {
    let envoy = stack.envoy.stat("http.llm_gateway.downstream_rq_total") - envoy_before;
    assert_eq!(envoy, turns as u64, "{}: requests to Envoy", run.id);
    let upstream = &stack.mock.requests()[mock_before..];
    let paths: Vec<&str> = upstream.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(upstream.len(), turns, "{}: provider calls {paths:?}", run.id);
    let marker = format!("(run {})", run.id);
    assert!(upstream.iter().all(|r| String::from_utf8_lossy(&r.body).contains(&marker)), "{}", run.id);
    assert_eq!(trapped(), Vec::<String>::new(), "{}: calls that bypassed the gateway", run.id);
}

// ---------------------------------------------------------------- Claude Code

/// Runs `claude -p` with the README's environment; returns its JSON result.
fn claude(stack: &Stack, run: &Run, model: &str, prompt: &str, extra: &[&str]) -> Value {
    let mut env = readme_env("ANTHROPIC_BASE_URL", &run.key, &stack.url(""));
    // A failed call fails the run at once instead of after retries with backoff.
    env.push(("CLAUDE_CODE_MAX_RETRIES".into(), "0".into()));
    let mut cmd = run.command(&claude_bin(), &env);
    cmd.args(["-p", prompt, "--model", model, "--output-format", "json"]).args(extra);
    let out = cmd.output().unwrap();
    let all = printed(&out);
    assert!(out.status.success(), "{}: {all}", run.id);
    // Only the notice about a model it does not know may go to stderr.
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            line.contains("doesn't recognize the model") || line.contains("[claude-code:unrecognized_model]"),
            "{}: unexpected stderr: {all}",
            run.id
        );
    }
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{}: not JSON ({e}): {all}", run.id))
}

fn claude_code_on(provider: Provider) {
    let stack = Stack::shared();
    let _g = stack.guard();
    let _turn = one_at_a_time();
    let e = expected(provider, Client::ClaudeCode);
    let name = e.model;

    // Text.
    let run = Run::new(stack, &format!("cc-{name}-text"));
    let (envoy_before, mock_before) =
        (stack.envoy.stat("http.llm_gateway.downstream_rq_total"), stack.mock.requests().len());
    let text = prompt(&run, provider, Client::ClaudeCode, "Say hello.", &["x-mock-tool-calls: none".into()]);
    let out = claude(stack, &run, e.model, &text, &[]);
    assert_eq!((out["type"].as_str(), out["subtype"].as_str()), (Some("result"), Some("success")), "{out}");
    assert_eq!(out["is_error"], false, "{out}");
    assert_eq!(out["result"], greeting(provider), "{out}");
    assert_eq!(out["num_turns"], 1, "{out}");
    assert_claude_usage(&out, &e, 1);
    assert_only_the_gateway(stack, &run, envoy_before, mock_before, 1);
    assert_events(stack, &run, Client::ClaudeCode, &e, 1);
    drop(run);

    // A tool round trip: Bash writes a file, or Read reads one the prompt does not quote.
    let run = Run::new(stack, &format!("cc-{name}-tool"));
    let (envoy_before, mock_before) =
        (stack.envoy.stat("http.llm_gateway.downstream_rq_total"), stack.mock.requests().len());
    let (call, extra, wrote) = match provider {
        Provider::Gemini => {
            let note = run.work().join("note.txt");
            std::fs::write(&note, format!("first line\n{TOOL_OUTPUT_MARK} read from the file\n")).unwrap();
            (json!(["Read", {"file_path": note}]), vec![], false)
        }
        _ => (
            json!(["Bash", {"command": COMMAND, "description": "Compute the answer"}]),
            vec!["--allowedTools", "Bash"],
            true,
        ),
    };
    let mut lines = vec![format!("x-mock-call: {} {}", call[0].as_str().unwrap(), call[1])];
    if provider == Provider::Anthropic {
        lines.push(format!("x-mock-reasoning: {REASONING}"));
    }
    let text = prompt(&run, provider, Client::ClaudeCode, "Run the tool.", &lines);
    let out = claude(stack, &run, e.model, &text, &extra);
    let quoted = if wrote { COMMAND_OUTPUT.to_string() } else { format!("{TOOL_OUTPUT_MARK} read from the file") };
    assert_eq!(out["is_error"], false, "{out}");
    assert_eq!(out["result"], format!("Tool said: {quoted}"), "{out}");
    assert_eq!(out["num_turns"], 2, "{out}");
    assert_eq!(out["permission_denials"], json!([]), "{out}");
    if wrote {
        let answer = std::fs::read_to_string(run.work().join("answer.txt")).unwrap_or_default();
        assert_eq!(answer, format!("{COMMAND_OUTPUT}\n"), "{}: the command ran", run.id);
    }
    assert_claude_usage(&out, &e, 2);
    assert_only_the_gateway(stack, &run, envoy_before, mock_before, 2);
    let upstream = &stack.mock.requests()[mock_before..];
    let tool = call[0].as_str().unwrap();
    assert_history_went_up(&upstream[1], provider, tool, &quoted, provider == Provider::Anthropic);
    assert_events(stack, &run, Client::ClaudeCode, &e, 2);
}

/// Claude Code's `usage` sums its calls, in Anthropic's terms.
fn assert_claude_usage(out: &Value, e: &Expected, turns: u64) {
    let u = &out["usage"];
    assert_eq!(u["input_tokens"].as_u64(), Some(turns * e.client_input(Client::ClaudeCode)), "{u}");
    assert_eq!(u["cache_read_input_tokens"].as_u64(), Some(turns * e.cache_read), "{u}");
    assert_eq!(u["cache_creation_input_tokens"].as_u64(), Some(turns * e.cache_creation.unwrap_or(0)), "{u}");
    assert_eq!(u["output_tokens"].as_u64(), Some(turns * e.output), "{u}");
}

/// The second call carries the first one's answer back to the provider, in
/// its wire format: the reasoning where the provider showed some (a thinking
/// block with its signature, a reasoning item with its encrypted content),
/// the tool call, then its result with the tool's output.
fn assert_history_went_up(req: &Request, provider: Provider, call: &str, quoted: &str, reasoned: bool) {
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    let what = format!("{} {}", req.path, body["model"]);
    let turns = body.get("messages").or_else(|| body.get("input")).and_then(Value::as_array).unwrap();
    let tail: Vec<&Value> = turns.iter().rev().take(3).rev().collect();
    let (called, result, reasoning): (String, String, Option<&Value>) = match (provider, &tail[..]) {
        (Provider::Anthropic, [.., assistant, user]) => {
            let blocks = assistant["content"].as_array().unwrap();
            let tool_use =
                blocks.iter().find(|b| b["type"] == "tool_use").unwrap_or_else(|| panic!("{what}: {assistant}"));
            let result = user["content"].as_array().unwrap().iter().find(|b| b["type"] == "tool_result");
            let thinking = blocks.first().filter(|b| b["type"] == "thinking");
            (tool_use["name"].to_string(), result.map(|r| r["content"].to_string()).unwrap_or_default(), thinking)
        }
        (_, [.., assistant, tool]) if tool.get("role").is_some() => {
            assert_eq!(tool["role"], "tool", "{what}: {tool}");
            assert_eq!(tool["tool_call_id"], assistant["tool_calls"][0]["id"], "{what}");
            (assistant["tool_calls"][0]["function"]["name"].to_string(), tool["content"].to_string(), None)
        }
        (_, [reasoning, function_call, output]) => {
            assert_eq!(output["type"], "function_call_output", "{what}: {output}");
            assert_eq!(output["call_id"], function_call["call_id"], "{what}");
            let reasoning = Some(*reasoning).filter(|r| r["type"] == "reasoning");
            (function_call["name"].to_string(), output["output"].to_string(), reasoning)
        }
        _ => panic!("{what}: {tail:?}"),
    };
    assert_eq!(called, format!("{call:?}"), "{what}");
    assert!(result.contains(quoted), "{what}: {result}");
    match reasoning {
        Some(r) if r["type"] == "thinking" => assert_eq!(r["signature"], SIGNATURE, "{what}"),
        Some(r) => assert_eq!(r["encrypted_content"], ENCRYPTED_REASONING, "{what}"),
        None => {}
    }
    assert_eq!(reasoning.is_some(), reasoned, "{what}: reasoning sent back");
}

#[test]
fn claude_code_on_an_anthropic_model() {
    claude_code_on(Provider::Anthropic);
}

#[test]
fn claude_code_on_an_openai_model() {
    claude_code_on(Provider::OpenAi);
}

#[test]
fn claude_code_on_a_gemini_model() {
    claude_code_on(Provider::Gemini);
}

// ---------------------------------------------------------------- Codex

/// Runs `codex exec --json` with the README's config.toml and environment;
/// returns its JSONL events.
fn codex(stack: &Stack, run: &Run, model: &str, prompt: &str) -> Vec<Value> {
    let config = blocks("toml").into_iter().find(|b| b.contains("[model_providers.")).expect("the config.toml block");
    let provider = config
        .lines()
        .find_map(|l| l.strip_prefix("[model_providers.").and_then(|l| l.strip_suffix(']')))
        .unwrap()
        .to_string();
    std::fs::create_dir_all(run.home().join(".codex")).unwrap();
    std::fs::write(run.home().join(".codex/config.toml"), config.replace(README_URL, &stack.url(""))).unwrap();
    let env = readme_env("POSTHOG_API_KEY", &run.key, &stack.url(""));
    let mut cmd = run.command(&codex_bin(), &env);
    cmd.args(["exec", "--skip-git-repo-check", "--ephemeral", "--json", "-s", "workspace-write", "-m", model]);
    for knob in ["stream_max_retries", "request_max_retries"] {
        cmd.arg("-c").arg(format!("model_providers.{provider}.{knob}=0"));
    }
    let out = cmd.arg(prompt).output().unwrap();
    let all = printed(&out);
    assert!(out.status.success(), "{}: {all}", run.id);
    // Only the notice that stdin, closed, was read may go to stderr.
    for line in String::from_utf8_lossy(&out.stderr).lines().filter(|l| !l.trim().is_empty()) {
        assert_eq!(line, "Reading additional input from stdin...", "{}: unexpected stderr: {all}", run.id);
    }
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: not JSON ({e}): {l}\n{all}", run.id)))
        .collect();
    // Nothing went wrong on the wire: no reconnects, no failed turn; the only
    // error item allowed is the notice about a model missing from its catalog.
    for ev in &events {
        let kind = ev["type"].as_str().unwrap_or_default();
        assert!(kind != "error" && kind != "turn.failed", "{}: {ev}\n{all}", run.id);
        if ev["item"]["type"] == "error" {
            let message = ev["item"]["message"].as_str().unwrap_or_default();
            assert!(message.starts_with("Model metadata for"), "{}: {ev}\n{all}", run.id);
        }
    }
    events
}

/// The completed items of one type.
fn items<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == "item.completed" && e["item"]["type"] == kind).map(|e| &e["item"]).collect()
}

/// Codex's `turn.completed` usage sums its calls, in Responses terms.
fn assert_codex_usage(events: &[Value], e: &Expected, turns: u64) {
    let completed: Vec<&Value> = events.iter().filter(|ev| ev["type"] == "turn.completed").collect();
    assert_eq!(completed.len(), 1, "{events:?}");
    let u = &completed[0]["usage"];
    assert_eq!(u["input_tokens"].as_u64(), Some(turns * e.client_input(Client::Codex)), "{u}");
    assert_eq!(u["cached_input_tokens"].as_u64(), Some(turns * e.cache_read), "{u}");
    assert_eq!(u["cache_write_input_tokens"].as_u64(), Some(turns * e.cache_creation.unwrap_or(0)), "{u}");
    assert_eq!(u["output_tokens"].as_u64(), Some(turns * e.output), "{u}");
    assert_eq!(u["reasoning_output_tokens"].as_u64(), Some(turns * e.reasoning.unwrap_or(0)), "{u}");
}

fn codex_on(provider: Provider) {
    let stack = Stack::shared();
    let _g = stack.guard();
    let _turn = one_at_a_time();
    let e = expected(provider, Client::Codex);
    let name = e.model;

    // Text.
    let run = Run::new(stack, &format!("cx-{name}-text"));
    let (envoy_before, mock_before) =
        (stack.envoy.stat("http.llm_gateway.downstream_rq_total"), stack.mock.requests().len());
    let text = prompt(&run, provider, Client::Codex, "Say hello.", &["x-mock-tool-calls: none".into()]);
    let events = codex(stack, &run, e.model, &text);
    let said: Vec<&str> = items(&events, "agent_message").iter().filter_map(|i| i["text"].as_str()).collect();
    assert_eq!(said, [greeting(provider)], "{events:?}");
    assert_codex_usage(&events, &e, 1);
    assert_only_the_gateway(stack, &run, envoy_before, mock_before, 1);
    assert_events(stack, &run, Client::Codex, &e, 1);
    drop(run);

    // A tool round trip: a shell command that writes a file, with reasoning first where the API shows it.
    let run = Run::new(stack, &format!("cx-{name}-tool"));
    let (envoy_before, mock_before) =
        (stack.envoy.stat("http.llm_gateway.downstream_rq_total"), stack.mock.requests().len());
    let mut lines = vec![format!("x-mock-call: exec_command {}", json!({"cmd": COMMAND}))];
    let shows_reasoning = provider != Provider::Gemini;
    if shows_reasoning {
        lines.push(format!("x-mock-reasoning: {REASONING}"));
    }
    let text = prompt(&run, provider, Client::Codex, "Run the tool.", &lines);
    let events = codex(stack, &run, e.model, &text);
    let commands = items(&events, "command_execution");
    assert_eq!(commands.len(), 1, "{events:?}");
    assert_eq!(commands[0]["exit_code"], 0, "{}", commands[0]);
    assert!(commands[0]["command"].as_str().unwrap().contains(COMMAND), "{}", commands[0]);
    assert_eq!(commands[0]["aggregated_output"], format!("{COMMAND_OUTPUT}\n"), "{}", commands[0]);
    let answer = std::fs::read_to_string(run.work().join("answer.txt")).unwrap_or_default();
    assert_eq!(answer, format!("{COMMAND_OUTPUT}\n"), "{}: the command ran", run.id);
    let said: Vec<&str> = items(&events, "agent_message").iter().filter_map(|i| i["text"].as_str()).collect();
    assert_eq!(said, [format!("Tool said: {COMMAND_OUTPUT}")], "{events:?}");
    // The mock reasons before each of its two answers.
    let reasoned: Vec<&str> = items(&events, "reasoning").iter().filter_map(|i| i["text"].as_str()).collect();
    let want: &[&str] = if shows_reasoning { &[REASONING, REASONING] } else { &[] };
    assert_eq!(reasoned, want, "{events:?}");
    assert_codex_usage(&events, &e, 2);
    assert_only_the_gateway(stack, &run, envoy_before, mock_before, 2);
    let upstream = &stack.mock.requests()[mock_before..];
    assert_history_went_up(&upstream[1], provider, "exec_command", COMMAND_OUTPUT, shows_reasoning);
    assert_events(stack, &run, Client::Codex, &e, 2);
}

#[test]
fn codex_on_an_openai_model() {
    codex_on(Provider::OpenAi);
}

#[test]
fn codex_on_an_anthropic_model() {
    codex_on(Provider::Anthropic);
}

#[test]
fn codex_on_a_gemini_model() {
    codex_on(Provider::Gemini);
}

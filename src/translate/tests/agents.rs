//! What Codex CLI 0.171 and Claude Code 2.1.332 really send (request bodies
//! recorded from the clients, long strings cut to 400 characters), through
//! every translated route.

use serde_json::{json, Value};

use super::{claude, gemini, openai, parse};
use crate::providers::Provider;
use crate::translate::{messages_request_to_chat, responses_request_to_chat, responses_request_to_messages, Target};

const CODEX: [(&str, &str); 6] = [
    ("gpt-5", include_str!("agents/codex.gpt-5.json")),
    ("gpt-5.5", include_str!("agents/codex.gpt-5.5.json")),
    ("exec_command", include_str!("agents/codex.exec_command.json")),
    ("apply_patch", include_str!("agents/codex.apply_patch.json")),
    ("reasoning", include_str!("agents/codex.reasoning.json")),
    ("compaction", include_str!("agents/codex.compaction.json")),
];

const CLAUDE_CODE: [(&str, &str); 5] = [
    ("gpt-5", include_str!("agents/claude-code.gpt-5.json")),
    ("bash", include_str!("agents/claude-code.bash.json")),
    ("read.gemini", include_str!("agents/claude-code.read.gemini.json")),
    ("haiku", include_str!("agents/claude-code.haiku.json")),
    ("toolsearch", include_str!("agents/claude-code.toolsearch.json")),
];

fn tool_names(sent: &Value, path: &str) -> Vec<String> {
    let tools = sent["tools"].as_array().cloned().unwrap_or_default();
    tools.iter().map(|t| t.pointer(path).unwrap().as_str().unwrap().to_owned()).collect()
}

/// The JSON Schema keywords Gemini refuses appear nowhere in the tools.
fn assert_gemini_schemas(sent: &Value, what: &str) {
    let tools = sent["tools"].to_string();
    for keyword in ["$schema", "additionalProperties", "exclusiveMinimum", "propertyNames", "\"const\""] {
        assert!(!tools.contains(keyword), "{what}: {keyword} reaches Gemini");
    }
}

#[test]
fn codex_requests_translate_for_claude_bedrock_and_gemini() {
    let bedrock = Target::new(Provider::Bedrock, "global.anthropic.claude-sonnet-4-6");
    let targets = [claude("claude-sonnet-4-6"), claude("claude-sonnet-4-5"), bedrock];
    for (name, body) in CODEX {
        let request: Value = serde_json::from_str(body).unwrap();
        let developer = request["input"][0]["content"][0]["text"].as_str().unwrap().to_owned();
        for target in &targets {
            let what = format!("codex {name} → {}", target.model);
            let sent = parse(
                &responses_request_to_messages(body.as_bytes(), target).unwrap_or_else(|e| panic!("{what}: {e}")),
            );
            assert_eq!(sent["system"][0]["text"], developer, "{what}: the developer messages are the system prompt");
            assert_eq!(sent["messages"][0]["role"], "user", "{what}");
            assert_eq!(sent["cache_control"], json!({"type": "ephemeral"}), "{what}");
            let names = tool_names(&sent, "/name");
            assert!(!names.iter().any(|n| n.contains("web_search") || n.contains("tool_search")), "{what}: {names:?}");
            if request["tools"].to_string().contains("multi_agent_v1") {
                assert!(names.contains(&"multi_agent_v1__wait_agent".to_owned()), "{what}: {names:?}");
            }
            assert!(names
                .iter()
                .all(|n| n.len() <= 64 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')));
            let turns = sent["messages"].as_array().unwrap();
            // Roles alternate, as Anthropic requires.
            assert!(turns.windows(2).all(|w| w[0]["role"] != w[1]["role"]), "{what}");
            let text = sent.to_string();
            assert!(!text.contains("gAAAAA"), "{what}: OpenAI's encrypted reasoning cannot go to Anthropic");
            match name {
                "exec_command" | "reasoning" => {
                    let call = &turns[turns.len() - 2]["content"].as_array().unwrap().last().unwrap().clone();
                    let result = &turns[turns.len() - 1]["content"][0];
                    assert_eq!(
                        (call["type"].as_str(), result["type"].as_str()),
                        (Some("tool_use"), Some("tool_result"))
                    );
                    assert_eq!(call["id"], result["tool_use_id"], "{what}");
                    assert!(call["input"]["cmd"].is_string(), "{what}: {call}");
                }
                "apply_patch" => {
                    let call = turns[turns.len() - 2]["content"][0].clone();
                    assert_eq!(call["name"], "apply_patch");
                    assert!(call["input"]["input"].as_str().unwrap().starts_with("*** Begin Patch"), "{what}");
                    let schema =
                        &sent["tools"].as_array().unwrap().iter().find(|t| t["name"] == "apply_patch").unwrap()
                            ["input_schema"];
                    assert_eq!(schema["required"], json!(["input"]), "{what}");
                }
                _ => {}
            }
        }
        let what = format!("codex {name} → gemini");
        let flash = gemini("gemini-2.5-flash");
        let sent = parse(&responses_request_to_chat(body.as_bytes(), &flash).unwrap_or_else(|e| panic!("{what}: {e}")));
        assert_eq!(sent["messages"][0]["role"], "system", "{what}");
        assert!(!tool_names(&sent, "/function/name").iter().any(|n| n.contains("search")), "{what}");
        assert_gemini_schemas(&sent, &what);
        assert!(sent.get("user").is_none() && sent.get("store").is_none(), "{what}");
    }
}

#[test]
fn codex_effort_and_summary_reach_claude() {
    let (_, body) = CODEX[1];
    let sent = parse(&responses_request_to_messages(body.as_bytes(), &claude("claude-sonnet-4-6")).unwrap());
    assert_eq!(sent["thinking"], json!({"type": "adaptive"}));
    assert_eq!(sent["output_config"], json!({"effort": "medium"}));
    assert_eq!(sent["max_tokens"], 32000);
}

/// The answer's context comes from the same reading as the translated body:
/// Codex's custom tool and its namespaced functions, for either provider format.
#[test]
fn codex_tool_shapes_reach_the_answer_context() {
    use crate::translate::{responses_request_to_chat_lexed, responses_request_to_messages_lexed};
    let lex = |body: &'static str| crate::translate::common::parse_fields(body.as_bytes()).unwrap();
    let body = CODEX[3].1;
    for (_, context) in [
        responses_request_to_messages_lexed(&lex(body), body.len(), &claude("claude-sonnet-4-6")).unwrap(),
        responses_request_to_chat_lexed(&lex(body), body.len(), &gemini("gemini-2.5-pro")).unwrap(),
    ] {
        assert_eq!(context.custom_tools, ["apply_patch"]);
        assert!(context.namespaced.is_empty());
        assert!(context.echo.contains(r#""tools":[{"#), "the echo keeps the client's tools");
    }
    let body = CODEX[2].1;
    let (_, context) =
        responses_request_to_messages_lexed(&lex(body), body.len(), &claude("claude-sonnet-4-6")).unwrap();
    assert!(context.custom_tools.is_empty());
    let names: Vec<_> =
        context.namespaced.iter().map(|(flat, ns, name)| (flat.as_str(), ns.as_str(), name.as_str())).collect();
    assert_eq!(names.len(), 5);
    assert!(names.contains(&("multi_agent_v1__spawn_agent", "multi_agent_v1", "spawn_agent")));
}

#[test]
fn claude_code_requests_translate_for_openai_and_gemini() {
    for (name, body) in CLAUDE_CODE {
        let request: Value = serde_json::from_str(body).unwrap();
        let in_place = request["messages"].as_array().unwrap().iter().filter(|m| m["role"] == "system").count();
        for target in [openai("gpt-5"), openai("gpt-4o-mini"), gemini("gemini-2.5-flash")] {
            let what = format!("claude code {name} → {}", target.model);
            let sent =
                parse(&messages_request_to_chat(body.as_bytes(), &target).unwrap_or_else(|e| panic!("{what}: {e}")));
            let messages = sent["messages"].as_array().unwrap();
            assert_eq!(messages[0]["role"], "system", "{what}");
            let systems = messages.iter().filter(|m| m["role"] == "system").count();
            // Gemini keeps only a conversation's last system message: one, at the start.
            let want = if target.provider == Provider::Gemini { 1 } else { 1 + in_place };
            assert_eq!(systems, want, "{what}: system messages stay where they were");
            let text = sent.to_string();
            assert!(!text.contains("cache_control") && !text.contains("context_management"), "{what}");
            let limit = target.caps.max_output_tokens.unwrap();
            assert_eq!(sent["max_completion_tokens"], limit.min(32000), "{what}");
            let names = tool_names(&sent, "/function/name");
            assert!(!names.contains(&"DeferredToolPlaceholder".to_owned()), "{what}");
            match target.model {
                "gpt-5" => assert_eq!(
                    sent["reasoning_effort"].as_str(),
                    request["output_config"]["effort"].as_str().or(Some("high"))
                ),
                "gpt-4o-mini" => assert!(sent.get("reasoning_effort").is_none(), "{what}"),
                _ => {
                    assert_gemini_schemas(&sent, &what);
                    assert!(sent.get("user").is_none(), "{what}");
                }
            }
            if name == "toolsearch" {
                assert!(names.contains(&"WebFetch".to_owned()), "{what}: the loaded tool is offered: {names:?}");
                let last = messages.last().unwrap();
                assert_eq!(
                    (last["role"].as_str(), last["content"].as_str()),
                    (Some("tool"), Some("Tool WebFetch is now available."))
                );
            }
        }
    }
}

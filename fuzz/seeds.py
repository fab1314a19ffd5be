#!/usr/bin/env python3
"""Writes the committed seed corpus, fuzz/corpus/<target>/<name>.

Realistic payloads: the SSE and JSON shapes of docs/protocols/ and of the
e2e mock provider (tests/e2e/src/mock.rs), request bodies with Save Mode
breakpoints, plugin configurations and auth inputs. Re-run after changing it
(`python3 fuzz/seeds.py`); it rewrites only the files it names. Seeds of the
structured targets (include_usage_roundtrip, header_properties,
capture_event) are byte strings libFuzzer's `arbitrary` decoding turns into
inputs; they only give the fuzzer a varied start.
"""

import base64
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CREATED = 1741569952


def dumps(v):
    return json.dumps(v, separators=(",", ":"))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    assert len(data) <= 8192, (target, name, len(data))
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def data(body, eol="\n"):
    return f"data: {body if isinstance(body, str) else dumps(body)}{eol}{eol}"


def named(body, eol="\n"):
    return f"event: {body['type']}{eol}data: {dumps(body)}{eol}{eol}"


PARTS = ["Hello", " from", " mock-openai."]

# --- OpenAI Chat (openai-chat.md, mock chat_stream) ---------------------------
OPENAI_USAGE = {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}


def chat_stream(include_usage, eol="\n", usage=OPENAI_USAGE, model="gpt-4o-mini"):
    def chunk(choices):
        c = {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": CREATED, "model": model,
             "system_fingerprint": "fp_mock", "choices": choices}
        if include_usage:
            c["usage"] = None
        return c

    def choice(delta, finish=None):
        return chunk([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}])

    out = [data(choice({"role": "assistant", "content": ""}), eol)]
    out += [data(choice({"content": p}), eol) for p in PARTS]
    out.append(data(choice({}, "stop"), eol))
    if include_usage:
        last = chunk([])
        last["usage"] = usage
        out.append(data(last, eol))
    out.append(f"data: [DONE]{eol}{eol}")
    return "".join(out)


PROTOCOLS_CHAT_STREAM = (
    'data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
    ': keep-alive comment\n\n'
    'data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"r4N7"}\n\n'
    'data: {"usage":null,"id":"chatcmpl-123","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}\n\n'
    'data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}\n\n'
    'data: [DONE]\n\n'
)

CHAT_JSON = dumps({
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion", "created": CREATED,
    "model": "gpt-5.4",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I assist you today?",
                                         "refusal": None, "annotations": []},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
              "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0, "cache_write_tokens": 4},
              "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
    "service_tier": "default"})

CHAT_TOOL_STREAM = "".join([
    data({"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o", "choices": [
        {"index": 0, "delta": {"role": "assistant", "tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]},
         "finish_reason": None}]}),
    data({"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o", "choices": [
        {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":\"Paris\"}"}}]},
         "finish_reason": None}]}),
    data({"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o", "choices": [
        {"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 80, "completion_tokens": 17, "total_tokens": 97,
                  "prompt_tokens_details": {"cached_tokens": 64},
                  "completion_tokens_details": {"reasoning_tokens": 0}}}),
    "data: [DONE]\n\n"])


def openai_error(status, message):
    kind = {429: "rate_limit_exceeded", 500: "server_error"}.get(status, "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


# The mock's malformed-sse garbage (mock.rs GARBAGE).
GARBAGE = "this is not sse\n\ndata: {\"truncated\": \n\n: comment\n\nfoo: bar\r\r\n"

# --- OpenAI Responses (openai-responses.md, mock responses_stream) -----------------
RESP_USAGE = {"input_tokens": 37, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
              "output_tokens": 11, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 48}


def response_object(status, output, usage, model="gpt-5.4"):
    return {"id": "resp_mock", "object": "response", "created_at": CREATED, "status": status, "model": model,
            "output": output, "usage": usage}


def output_message(text):
    return {"type": "message", "id": "msg_mock", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def responses_stream(eol="\n"):
    pending = response_object("in_progress", [], None)
    bodies = [{"type": "response.created", "response": pending},
              {"type": "response.in_progress", "response": pending}]
    bodies += [{"type": "response.output_text.delta", "item_id": "msg_mock", "output_index": 0,
                "content_index": 0, "delta": p, "logprobs": []} for p in PARTS]
    bodies.append({"type": "response.completed",
                   "response": response_object("completed", [output_message("".join(PARTS))], RESP_USAGE)})
    out = []
    for i, b in enumerate(bodies):
        b["sequence_number"] = i
        out.append(named(b, eol))
    return "".join(out)


RESPONSES_FAILED = named({"type": "response.created", "response": response_object("in_progress", [], None)}) + named(
    {"type": "response.failed", "response": {**response_object("failed", [], None),
                                             "error": {"code": "server_error", "message": "The server had an error"}}})
RESPONSES_ERROR_EVENT = named({"type": "response.created", "response": response_object("in_progress", [], None)}) + named(
    {"type": "error", "code": "server_error", "param": None,
     "message": "The server had an error while processing your request.", "sequence_number": 2})
RESPONSES_REASONING = "".join(named(b) for b in [
    {"type": "response.output_item.added", "output_index": 0, "item": {"type": "reasoning", "id": "rs_1", "summary": []}},
    {"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "output_index": 0, "delta": "Thinking"},
    {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 1, "delta": "{\"a\":"},
    {"type": "response.completed", "response": response_object(
        "completed", [], {"input_tokens": 1200, "input_tokens_details": {"cached_tokens": 1024},
                          "output_tokens": 300, "output_tokens_details": {"reasoning_tokens": 256},
                          "total_tokens": 1500})},
])

# --- Anthropic Messages (anthropic-messages.md, mock messages_stream) ----------------
ANT_USAGE = {"input_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
             "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
             "output_tokens": 15, "service_tier": "standard"}


def messages_stream(eol="\n", usage=ANT_USAGE, model="claude-sonnet-4-5-20250929"):
    start_usage = dict(usage, output_tokens=1)
    bodies = [
        {"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant",
                                              "content": [], "model": model, "stop_reason": None,
                                              "stop_sequence": None, "usage": start_usage}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
    ]
    bodies += [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}
               for p in PARTS]
    bodies += [{"type": "content_block_stop", "index": 0},
               {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": usage.get("output_tokens", 0)}},
               {"type": "message_stop"}]
    return "".join(named(b, eol) for b in bodies)


# Verbatim from the streaming doc (anthropic-messages.md), spaces after colons included.
ANT_DOC_STREAM = """event: message_start
data: {"type": "message_start", "message": {"id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", "role": "assistant", "content": [], "model": "claude-opus-4-8", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}

event: content_block_start
data: {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}

event: content_block_stop
data: {"type": "content_block_stop", "index": 0}

event: message_delta
data: {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence":null}, "usage": {"output_tokens": 15}}

event: message_stop
data: {"type": "message_stop"}

"""

ANT_CACHE_JSON = dumps({
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "thinking", "thinking": "hm", "signature": "x"}, {"type": "text", "text": "Hello"},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
    "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 2048, "cache_read_input_tokens": 1800, "cache_creation_input_tokens": 248,
              "output_tokens": 503,
              "cache_creation": {"ephemeral_5m_input_tokens": 148, "ephemeral_1h_input_tokens": 100}}})
ANT_ERROR_JSON = dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"},
                        "request_id": "req_mock"})
ANT_ERROR_EVENT = messages_stream().split("event: content_block_delta")[0] + named(
    {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
ANT_THINKING_STREAM = "".join(named(b) for b in [
    {"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant", "content": [],
                                          "model": "claude-opus-4-1", "usage": {
                                              "input_tokens": 10, "cache_read_input_tokens": 4000,
                                              "cache_creation_input_tokens": 0, "output_tokens": 1}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Let me"}},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t", "name": "f",
                                                                  "input": {}}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\""}},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
     "usage": {"input_tokens": 10, "cache_read_input_tokens": 4000, "output_tokens": 120}},
    {"type": "message_stop"},
])

# --- Gemini native (gemini.md) --------------------------------------------
GEMINI_USAGE = {"promptTokenCount": 120, "candidatesTokenCount": 40, "cachedContentTokenCount": 100,
                "thoughtsTokenCount": 25, "totalTokenCount": 185}


def gemini_chunk(text, usage=None, thought=False, finish=None):
    part = {"text": text}
    if thought:
        part["thought"] = True
    cand = {"content": {"parts": [part], "role": "model"}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    body = {"candidates": [cand], "modelVersion": "gemini-2.5-flash"}
    if usage:
        body["usageMetadata"] = usage
    return body


GEMINI_STREAM = "".join(data(c, "\r\n") for c in [
    gemini_chunk("Thinking...", {"promptTokenCount": 120, "totalTokenCount": 120}, thought=True),
    gemini_chunk("Hello", {"promptTokenCount": 120, "candidatesTokenCount": 5, "totalTokenCount": 125}),
    gemini_chunk(" there", GEMINI_USAGE, finish="STOP"),
])
GEMINI_JSON = dumps(gemini_chunk("Hello there", GEMINI_USAGE, finish="STOP"))
GEMINI_ARRAY = dumps([gemini_chunk("Hello", None), gemini_chunk(" there", GEMINI_USAGE, finish="STOP")])
GEMINI_ERROR = dumps({"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).",
                                "status": "RESOURCE_EXHAUSTED"}})
GEMINI_FUNCTION = dumps({"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {"x": 1}}}]}}],
                         "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 3}})

# --- Streams shared by the SSE targets ---------------------------------------
STREAMS = {
    "chat_include_usage_lf": chat_stream(True),
    "chat_include_usage_crlf": chat_stream(True, "\r\n"),
    "chat_include_usage_cr": chat_stream(True, "\r"),
    "chat_plain": chat_stream(False),
    "chat_protocols_example": PROTOCOLS_CHAT_STREAM,
    "chat_tool_calls": CHAT_TOOL_STREAM,
    "chat_error_event": chat_stream(True).split("\n\n")[0] + "\n\n" + data(
        openai_error(500, "The server had an error while processing your request.")),
    "chat_malformed": chat_stream(True)[:300] + GARBAGE + chat_stream(True)[300:],
    "responses": responses_stream(),
    "responses_crlf": responses_stream("\r\n"),
    "responses_failed": RESPONSES_FAILED,
    "responses_error_event": RESPONSES_ERROR_EVENT,
    "responses_reasoning": RESPONSES_REASONING,
    "anthropic_mock": messages_stream(),
    "anthropic_doc": ANT_DOC_STREAM,
    "anthropic_error_event": ANT_ERROR_EVENT,
    "anthropic_thinking_tools": ANT_THINKING_STREAM,
    "gemini_crlf": GEMINI_STREAM,
    "bom_comments_mixed_eol": "\ufeff: hi\r\nevent: message_start\r\ndata: {\"a\":1}\r\n\r\ndata:first\ndata: second\nid: 7\nretry: 100\n\nevent:ping\rdata: {}\r\r: c\n\nevent: lonely\n\ndata\n\ndata: \u00e9t\u00e9\n\ndata: last without blank line",
    "garbage": GARBAGE,
    "json_error_as_stream": "\n " + dumps(openai_error(429, "Rate limit reached for requests")),
}

BODIES = {
    "openai_chat": {
        "json": CHAT_JSON,
        "json_error": dumps(openai_error(429, "Rate limit reached for requests")),
        "json_truncated": CHAT_JSON[: len(CHAT_JSON) // 2],
    },
    "openai_responses": {
        "json": dumps(response_object("completed", [output_message("Hello from mock-openai.")], RESP_USAGE)),
        "json_error": dumps(openai_error(500, "The server had an error")),
        "json_incomplete": dumps({**response_object("incomplete", [], RESP_USAGE),
                                  "incomplete_details": {"reason": "max_output_tokens"}}),
    },
    "anthropic": {
        "json": ANT_CACHE_JSON,
        "json_error": ANT_ERROR_JSON,
        "json_truncated": ANT_CACHE_JSON[: len(ANT_CACHE_JSON) // 2],
    },
    "gemini": {
        "json": GEMINI_JSON,
        "json_array": GEMINI_ARRAY,
        "json_error": GEMINI_ERROR,
        "json_function_call": GEMINI_FUNCTION,
    },
}

WIRE_STREAMS = {
    "openai_chat": ["chat_include_usage_lf", "chat_include_usage_crlf", "chat_plain", "chat_protocols_example",
                    "chat_tool_calls", "chat_error_event", "chat_malformed", "json_error_as_stream"],
    "openai_responses": ["responses", "responses_crlf", "responses_failed", "responses_error_event",
                         "responses_reasoning", "json_error_as_stream"],
    "anthropic": ["anthropic_mock", "anthropic_doc", "anthropic_error_event", "anthropic_thinking_tools",
                  "json_error_as_stream"],
    "gemini": ["gemini_crlf", "garbage", "json_error_as_stream"],
}

# --- Request bodies ---------------------------------------------------------
SYSTEM_BLOCKS = [{"type": "text", "text": "You are a helpful assistant.", "cache_control": {"type": "ephemeral"}}]
TOOLS = [{"name": "get_weather", "description": "Weather for a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
          "cache_control": {"type": "ephemeral"}}]


def msg(role, text, cc=None):
    block = {"type": "text", "text": text}
    if cc:
        block["cache_control"] = cc
    return {"role": role, "content": [block]}


REQUESTS = {
    "chat_basic": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    "chat_stream": {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "s"},
                                                         {"role": "user", "content": "hi"}],
                    "stream": True, "user": "u-1", "max_completion_tokens": 50},
    "chat_stream_options": {"model": "smart", "messages": [{"role": "user", "content": "hi"}], "stream": True,
                            "stream_options": {"include_usage": False, "include_obfuscation": False},
                            "safety_identifier": "user_123"},
    "chat_to_anthropic": {"model": "fast", "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        "temperature": 0.2, "max_tokens": 100, "stream": True, "stop": ["\n\n"]},
    "chat_gemini_prefix": {"model": "gemini/gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}],
                           "stream": True},
    "chat_image": {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]},
    "responses_basic": {"model": "gpt-5.4", "input": "Tell me a joke", "instructions": "Be funny",
                        "max_output_tokens": 100, "stream": True, "metadata": {"k": "v"}},
    "responses_list": {"model": "pinned", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "hi"}]}], "store": False, "reasoning": {"effort": "low"}},
    "responses_agent": {"model": "claude-sonnet-4-5", "stream": True, "store": False, "parallel_tool_calls": False,
                        "include": ["reasoning.encrypted_content"], "prompt_cache_key": "s1", "max_output_tokens": 99999,
                        "reasoning": {"effort": "high", "summary": "auto"}, "tool_choice": "auto",
                        "tools": [{"type": "function", "name": "exec_command", "strict": False,
                                   "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}},
                                                  "required": ["cmd"], "additionalProperties": False}},
                                  {"type": "custom", "name": "apply_patch", "format": {"type": "grammar"}},
                                  {"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "wait"}]},
                                  {"type": "web_search", "external_web_access": False}],
                        "input": [{"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be careful."}]},
                                  {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "ls"},
                                      {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}]},
                                  {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Plan."}],
                                   "encrypted_content": "anthropic-thinking:EqQB"},
                                  {"type": "function_call", "call_id": "c1", "name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"},
                                  {"type": "function_call_output", "call_id": "c1", "output": "a.rs"},
                                  {"type": "function_call", "call_id": "c2", "namespace": "ns", "name": "wait", "arguments": ""},
                                  {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "ok"}]},
                                  {"type": "custom_tool_call", "call_id": "c3", "name": "apply_patch", "input": "*** Begin Patch"},
                                  {"type": "custom_tool_call_output", "call_id": "c3", "output": "Done"}]},
    "messages_claude_code": {"model": "gpt-5", "max_tokens": 64000, "stream": True,
                             "thinking": {"type": "adaptive", "display": "omitted"}, "output_config": {"effort": "high"},
                             "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
                             "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
                             "tools": [{"name": "ToolSearch", "input_schema": {"type": "object"}},
                                       {"name": "WebFetch", "input_schema": {"$schema": "x", "type": "object"}, "defer_loading": True}],
                             "messages": [{"role": "user", "content": "find"},
                                          {"role": "system", "content": "Environment."},
                                          {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"},
                                              {"type": "tool_use", "id": "t1", "name": "ToolSearch", "input": {}}]},
                                          {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                              "content": [{"type": "tool_reference", "tool_name": "WebFetch"}]}]}]},
    "messages_basic": {"model": "claude-sonnet-4-5", "max_tokens": 1024,
                       "messages": [{"role": "user", "content": "Hello, Claude"}]},
    "messages_cached": {"model": "fast", "max_tokens": 1024, "stream": True, "system": SYSTEM_BLOCKS,
                        "tools": TOOLS, "metadata": {"user_id": "{\"session_id\":\"abc\"}"},
                        "messages": [msg("user", "Long document...", {"type": "ephemeral"}),
                                     msg("assistant", "ok"), msg("user", "Question?")]},
    "messages_to_openai": {"model": "smart", "max_tokens": 50, "system": "Be brief.", "stream": True,
                           "messages": [{"role": "user", "content": [
                               {"type": "text", "text": "hi"},
                               {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                            "data": "iVBORw0KGgo="}}]},
                               {"role": "assistant", "content": [
                                   {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}]},
                               {"role": "user", "content": [
                                   {"type": "tool_result", "tool_use_id": "toolu_1", "content": "42"}]}],
                           "tools": [{"name": "f", "input_schema": {"type": "object"}}],
                           "tool_choice": {"type": "auto"}, "stop_sequences": ["END"], "temperature": 1},
    "messages_bedrock": {"model": "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "max_tokens": 5,
                         "messages": [{"role": "user", "content": "hi"}]},
    "messages_thinking": {"model": "claude-opus-4-1", "max_tokens": 2048,
                          "thinking": {"type": "enabled", "budget_tokens": 1024},
                          "messages": [{"role": "user", "content": "Why?"}]},
}
REQUEST_RAW = {
    "escaped_keys": '{"mod\\u0065l":"gpt-4o","messages":[ {"a" : 1} ],"x\\"y":2, "stream" : true }',
    "duplicate_model": '{"model":"m","model":"n","messages":[]}',
    "wrong_types": '{"model":5,"messages":"hi","stream":"yes"}',
    "deep": '{"model":"gpt-4o","messages":' + "[" * 200 + "]" * 200 + "}",
    "not_object": "[1,2,3]",
    "nulls": '{"model":"gpt-4o","messages":[],"stream":null,"stream_options":null,"user":null,"metadata":null}',
}

# --- Save Mode bodies ---------------------------------------------------------
SAVE_MODE = {
    "system_tools_messages": REQUESTS["messages_cached"],
    "automatic": {"model": "claude-sonnet-4-5", "max_tokens": 10, "cache_control": {"type": "ephemeral"},
                  "messages": [{"role": "user", "content": "hi"}]},
    "explicit_1h_then_default": {"model": "claude-sonnet-4-5", "max_tokens": 10,
                                 "system": [{"type": "text", "text": "s",
                                             "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
                                 "messages": [msg("user", "a", {"type": "ephemeral"})]},
    "short_before_default": {"model": "claude-sonnet-4-5", "max_tokens": 10,
                             "tools": [dict(TOOLS[0], cache_control={"type": "ephemeral", "ttl": "5m"})],
                             "messages": [msg("user", "a", {"type": "ephemeral"})]},
    "short_automatic": {"model": "claude-sonnet-4-5", "max_tokens": 10,
                        "cache_control": {"type": "ephemeral", "ttl": "5m"},
                        "messages": [msg("user", "a", {"type": "ephemeral"})]},
    "tool_result_nested": {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [
            {"type": "text", "text": "r", "cache_control": {"type": "ephemeral"}}],
            "cache_control": {"type": "ephemeral"}}]}]},
    "document_source": {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [
        {"role": "user", "content": [{"type": "document", "source": {"type": "content", "content": [
            {"type": "text", "text": "page", "cache_control": {"type": "ephemeral"}}]}}]}]},
    "not_ephemeral_and_null": {"model": "claude-sonnet-4-5", "max_tokens": 10, "system": [
        {"type": "text", "text": "s", "cache_control": None},
        {"type": "text", "text": "t", "cache_control": {"type": "persistent"}}],
        "messages": [{"role": "user", "content": [
            {"type": "tool_use", "id": "x", "name": "f", "input": {"cache_control": {"type": "ephemeral"}}},
            {"type": "text", "text": "u", "cache_control": {"type": "ephemeral", "extra": 1}}]}]},
}
SAVE_MODE_RAW = {
    "spaced_and_escaped": '{ "model" : "claude-sonnet-4-5" , "messages" : [ { "role" : "user" , "content" : [ { "type" : "text" , "text" : "}\\"cache_control\\"" , "cache_control" : { "type" : "ephemeral" } } ] } ] }',
    "duplicate_cache_control": '{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a","cache_control":{"type":"ephemeral"},"cache_control":{"type":"ephemeral","ttl":"5m"}}]}]}',
    "empty_object_cache_control": '{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a","cache_control":{}}]}]}',
}

# --- Configs ------------------------------------------------------------------
MOCK = {"cluster": "mock", "timeout_ms": 5000}
CONFIGS = {
    "empty": "",
    "empty_object": "{}",
    "e2e": {"providers": {"openai": MOCK, "anthropic": MOCK, "gemini": MOCK, "bedrock": MOCK},
            "max_request_body_bytes": 1048576,
            "capture": {"region_url": "https://us.posthog.com", "flush_interval_ms": 200,
                        "primary": {"cluster": "posthog_primary", "api_key": "phc_primary_test"},
                        "secondary": {"cluster": "posthog_secondary", "api_key": "phc_mirror_test",
                                      "path": "/batch/"}}},
    "production": {"max_request_body_bytes": 33554432,
                   "providers": {"openai": {"cluster": "openai", "timeout_ms": 600000},
                                 "anthropic": {"cluster": "anthropic", "timeout_ms": 600000},
                                 "gemini": {"cluster": "gemini", "timeout_ms": 600000}},
                   "auth": {"cluster": "auth", "authority": "auth.internal.example.com", "timeout_ms": 1000},
                   "capture": {"region_url": "https://us.posthog.com",
                               "primary": {"cluster": "posthog_primary", "authority": "us.i.posthog.com",
                                           "api_key": "phc_your_project_api_key"},
                               "secondary": {"cluster": "posthog_secondary", "authority": "eu.i.posthog.com",
                                             "api_key": "phc_your_mirror_project_api_key"}}},
    "full": {"products": ["llm_gateway", "posthog_code", "slack_app"], "route_header": "X-LLM-Cluster",
             "anthropic_version": "2023-06-01",
             "models": {"fast": {"provider": "anthropic", "model": "claude-haiku-4-5"},
                        "gem": {"provider": "gemini"}},
             "auth": {"path_prefix": "/GET/llmgw:key:", "path_suffix": ".txt", "cache_ttl_seconds": 60,
                      "negative_cache_ttl_seconds": 5, "cache_max_entries": 10000,
                      "required_scope": "llm_gateway:read"},
             "pricing": {"my-model": {"input": 1.5, "output": 6.0, "cache_read": 0.15,
                                      "long_context": {"threshold_tokens": 200000, "input": 3.0, "output": 12.0}}},
             "default_fallback_cost_usd": 0.02,
             "cost_controls": {"products": ["posthog_code"], "teams": [2], "header": "x-posthog-save-mode",
                               "header_access": "allowlist", "header_teams": [1, 2], "debug_force": False},
             "capture": {"region_url": "http://localhost:8010/", "content": False, "max_event_bytes": 1000000,
                         "batch_max_events": 100, "queue_max_events": 10000, "queue_max_bytes": 10000000,
                         "max_attempts": 3, "primary": {"cluster": "c", "path": "/i/v0/ai/batch/"}}},
    # Bedrock signed by Envoy, Azure OpenAI on its deployment paths, a deployment per model.
    "enterprise_providers": {"providers": {"bedrock": {"auth": "sigv4"},
                                           "azure": {"authority": "acme.openai.azure.com",
                                                     "api_version": "2025-04-01-preview"}},
                             "models": {"gpt-4o": {"provider": "azure", "deployment": "prod-4o"}}},
    "bad_provider": {"providers": {"mistral": MOCK}},
    "bad_types": {"products": "llm_gateway", "max_request_body_bytes": -1},
    "unknown_field": {"prodcts": ["a"]},
    # Keys and values with control characters: the error must stay one line.
    "control_chars_in_keys": r'{"providers":{"azure\nFAKE \u001b[31m":{}},"models":{"x\r":{"provider":"n\u2028o"}},"pricing":{"m\n":{"input":-1,"output":1}},"limits":{"a\nb":1},"prod\ncts":[]}',
}

# --- Auth ---------------------------------------------------------------------
PRINCIPAL = {"team_id": 1, "user_id": 1, "distinct_id": "owner-1", "scopes": ["llm_gateway:read"],
             "products": None}
AUTH = {
    "bearer": "Bearer phx_abc123DEF456\n-\n" + dumps(PRINCIPAL),
    "x_api_key": "-\nphx_abc123DEF456\n" + dumps(dict(PRINCIPAL, products=["llm_gateway"], limits={"rpm": 60},
                                                   monthly_budget_usd=100.5, cost_controls=True)),
    "both_same": "bearer pha_oauth.token-1\npha_oauth.token-1\n{\"team_id\":7}",
    "both_different": "Bearer phx_one1\nphx_two2\n{}",
    "basic_scheme": "Basic dXNlcjpwYXNz\n-\nnot json",
    "openai_key": "Bearer sk-proj-abc123\n-\n{\"team_id\":\"1\"}",
    "missing": "-\n-\n",
    "bad_chars": "Bearer phx_abc 123\n-\n{\"team_id\":1,\"scopes\":\"x\"}",
}


# --- Bedrock event stream (AWS vnd.amazon.eventstream framing) ----------------
def frame(headers, payload):
    h = b""
    for name, value in headers:
        h += bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(value)) + value.encode()
    total = 12 + len(h) + len(payload) + 4
    prelude = struct.pack(">II", total, len(h))
    out = prelude + struct.pack(">I", zlib.crc32(prelude)) + h + payload
    return out + struct.pack(">I", zlib.crc32(out))


def bedrock_stream(sse):
    out = b""
    for event in sse.strip().split("\n\n"):
        line = [l for l in event.split("\n") if l.startswith("data: ")][0][6:]
        payload = dumps({"bytes": base64.b64encode(line.encode()).decode(), "p": "abcdefghij"}).encode()
        out += frame([(":event-type", "chunk"), (":content-type", "application/json"), (":message-type", "event")],
                     payload)
    return out


BEDROCK_EXCEPTION = frame([(":exception-type", "throttlingException"), (":content-type", "application/json"),
                           (":message-type", "exception")], b'{"message":"Too many requests"}')
BEDROCK_ERROR = frame([(":error-code", "InternalFailure"), (":error-message", "boom"), (":message-type", "error")], b"")


def header_map(pairs):
    """The proxy-wasm ABI's header map (src/wire/header_pairs.rs)."""
    out = struct.pack("<I", len(pairs))
    for name, value in pairs:
        out += struct.pack("<II", len(name), len(value))
    for name, value in pairs:
        out += name + b"\0" + value + b"\0"
    return out


HEADER_MAPS = {
    "request": [(b":method", b"POST"), (b":path", b"/v1/chat/completions"), (b":authority", b"gateway"),
                (b"authorization", b"Bearer phx_example"), (b"content-type", b"application/json"),
                (b"x-posthog-property-feature", b"chat")],
    "latin1_value": [(b"x-note", b"caf\xe9"), (b"x-empty", b"")],
    "empty": [],
}


def main():
    for name, stream in STREAMS.items():
        write("sse_parser", name, stream)
    for wire, names in WIRE_STREAMS.items():
        for name in names:
            write(f"usage_{wire}", name, STREAMS[name])
        for name, body in BODIES[wire].items():
            write(f"usage_{wire}", name, body)
    for name in ["chat_include_usage_lf", "chat_include_usage_crlf", "chat_include_usage_cr", "chat_plain",
                 "chat_protocols_example", "chat_tool_calls", "chat_error_event", "chat_malformed",
                 "bom_comments_mixed_eol"]:
        write("include_usage", name, STREAMS[name])
    write("include_usage", "multi_data_and_escapes",
          'data: {"choices":[],\ndata: "usage":{"a":1}}\n\ndata: {"us\\u0061ge":null,"choices":[{}]}\n\n'
          'data: {"a":[{"usage":null}]}\n\ndata: {"choices":[],"usage":null}\n\n')
    for name in ["chat_include_usage_lf", "chat_plain", "chat_protocols_example"]:
        write("include_usage_roundtrip", name, STREAMS[name][:600])
    write("include_usage_roundtrip", "small", bytes(range(0, 256, 7)))
    for name, body in REQUESTS.items():
        write("request", name, dumps(body))
    for name, body in REQUEST_RAW.items():
        write("request", name, body)
    for name, body in SAVE_MODE.items():
        write("save_mode", name, dumps(body))
    for name, body in SAVE_MODE_RAW.items():
        write("save_mode", name, body)
    write("save_mode", "pretty", json.dumps(SAVE_MODE["system_tools_messages"], indent=2))
    for name, cfg in CONFIGS.items():
        write("config", name, cfg if isinstance(cfg, str) else json.dumps(cfg, indent=1))
    for name, text in AUTH.items():
        write("auth", name, text)
    bedrock = bedrock_stream(messages_stream())
    write("bedrock_stream", "frames", bedrock)
    write("bedrock_stream", "frames_then_exception", bedrock[:400] + BEDROCK_EXCEPTION)
    write("bedrock_stream", "error_message", BEDROCK_ERROR)
    write("bedrock_stream", "cut_mid_frame", bedrock[: len(bedrock) // 2 + 3])
    for name in ["anthropic_mock", "anthropic_doc", "anthropic_thinking_tools"]:
        write("bedrock_stream", name, STREAMS[name])
        write("translate_stream", name, STREAMS[name])
        write("response_pipeline", name, STREAMS[name])
    for name in ["chat_include_usage_lf", "chat_tool_calls", "chat_error_event", "anthropic_error_event",
                 "chat_protocols_example"]:
        write("translate_stream", name, STREAMS[name])
    for name in ["chat_include_usage_crlf", "chat_plain", "responses", "chat_error_event"]:
        write("response_pipeline", name, STREAMS[name])
    write("response_pipeline", "bedrock_frames", bedrock)
    write("response_pipeline", "bedrock_exception", BEDROCK_EXCEPTION)
    for wire, bodies in BODIES.items():
        for name, body in bodies.items():
            write("translate_body", f"{wire}_{name}", body)
            write("response_pipeline", f"{wire}_{name}", body)
    for name in ["chat_basic", "chat_stream_options", "chat_to_anthropic", "chat_image", "messages_cached",
                 "messages_to_openai", "messages_thinking", "responses_basic", "responses_list", "responses_agent",
                 "messages_claude_code"]:
        write("translate_body", f"request_{name}", dumps(REQUESTS[name]))
    write("translate_body", "bedrock_error", '{"message":"The security token included in the request is invalid."}')
    write("translate_body", "html_error", "<html><body>502 Bad Gateway</body></html>")
    for name, pairs in HEADER_MAPS.items():
        write("header_pairs", name, header_map(pairs))
    write("header_pairs", "count_past_end", struct.pack("<III", 9, 1, 1) + b"a\0b\0")
    # Structured targets: varied bytes for `arbitrary` to decode.
    for target in ["header_properties", "capture_event"]:
        write(target, "ascii", b"x-posthog-property-feature\x00chat\x01run_id\x00r1\x02$ai_model\x00evil\r\n" * 3)
        write(target, "mixed", bytes(range(256)))
        write(target, "json", dumps(PRINCIPAL))


if __name__ == "__main__":
    main()

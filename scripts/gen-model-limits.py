#!/usr/bin/env python3
"""Generates the filter's model catalog (`src/model_caps/catalog.tsv`): the most output
tokens each model can produce, and the reasoning controls it takes, for the models of
the four providers the gateway routes to (`make model-limits`).

Source: LiteLLM's `model_prices_and_context_window_backup.json` (MIT), read out of a
pinned `litellm` wheel from PyPI. Nothing from the package is imported or run: the
wheel is a zip and the file is JSON. Kept per model:

  max_output_tokens   the model's output limit (translated requests are clamped to it)
  reasoning           supports_reasoning: the model takes a reasoning effort / thinking
  adaptive            supports_adaptive_thinking (Anthropic `thinking: {type: adaptive}`)
  budget              Anthropic `thinking: {type: enabled, budget_tokens}` is accepted
                      (a reasoning Claude model without adaptive thinking, or with
                      supports_legacy_thinking)
  effort              supports_output_config (Anthropic `output_config.effort`)
  minimal, none, xhigh, max   the reasoning effort levels beyond low/medium/high the
                      model accepts (supports_<level>_reasoning_effort)

It also writes `src/bedrock/betas.tsv`: the `anthropic-beta` flags Bedrock takes for
Anthropic models, each with the name Bedrock knows it by, from LiteLLM's
`anthropic_beta_headers_config.json` (its `bedrock` map; a flag mapped to null is
left out: Bedrock answers 400 "invalid beta flag" to it).

Rows: OpenAI chat/responses models as named; Anthropic models as named; Gemini models
without LiteLLM's `gemini/` prefix; Anthropic models on Bedrock under their
first-party name (region prefix, `anthropic.` and `-v1:0` removed, as the filter
normalises Bedrock ids), the smallest limit where several ids share a name. One model
per line, sorted, so a regeneration's diff shows exactly what changed.

Usage:
  scripts/gen-model-limits.py                 download the pinned wheel with pip and regenerate
  scripts/gen-model-limits.py --wheel FILE    use a wheel already downloaded (checked against the pin)
  scripts/gen-model-limits.py --version X --sha256 H   try another release (then update the pins)
"""
import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pinned_wheel import pinned_wheel  # noqa: E402

# The catalog release in the build. To update: bump both, run the script, review the
# diff of src/model_caps/catalog.tsv. (1.107.0 was a compromised release, withdrawn.)
PINNED_VERSION = "1.110.2"
PINNED_SHA256 = "9d94d1c7d524b6fd10c14f9c8c6c4f0ac31705f9964ac59dcfd8337c046d8917"
# The wheel is platform-specific; the data file in it is not. Asking for one platform
# gives every machine the same file, so the checksum pins it.
PLATFORM = "manylinux_2_28_x86_64"
MEMBER = "litellm/model_prices_and_context_window_backup.json"
BETAS_MEMBER = "litellm/anthropic_beta_headers_config.json"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "src/model_caps/catalog.tsv")
BETAS_OUT = os.path.join(ROOT, "src/bedrock/betas.tsv")

EFFORTS = ["minimal", "none", "xhigh", "max"]
BEDROCK_REGIONS = ["global.", "us.", "eu.", "apac.", "jp.", "au.", "ca.", "in.", "us-gov.", "regional."]


def bedrock_name(key):
    """The first-party name of a Bedrock Anthropic model id, as src/pricing.rs normalises it."""
    m = key.strip().lower()
    if m.startswith("bedrock/") or m.startswith("arn:"):
        m = m.rsplit("/", 1)[-1]
    for region in BEDROCK_REGIONS:
        if m.startswith(region) and m[len(region):].startswith("anthropic."):
            m = m[len(region):]
            break
    if not m.startswith("anthropic."):
        return None
    m = m[len("anthropic."):]
    return re.sub(r"-v\d+(:\d+)?$", "", m)


def capabilities(provider, entry):
    caps = []
    reasoning = entry.get("supports_reasoning") is True
    adaptive = entry.get("supports_adaptive_thinking") is True
    if reasoning:
        caps.append("reasoning")
    if provider in ("anthropic", "bedrock"):
        if adaptive:
            caps.append("adaptive")
        if reasoning and (not adaptive or entry.get("supports_legacy_thinking") is True):
            caps.append("budget")
        if entry.get("supports_output_config") is True:
            caps.append("effort")
    for level in EFFORTS:
        if entry.get(f"supports_{level}_reasoning_effort") is True:
            caps.append(level)
    return caps


def rows(catalog):
    out = {}
    for key, entry in catalog.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("max_output_tokens"), int):
            continue
        provider = entry.get("litellm_provider")
        mode = entry.get("mode")
        if mode not in ("chat", "responses"):
            continue
        if provider == "openai" and "/" not in key:
            name = key
        elif provider == "anthropic" and "/" not in key:
            name = key
        elif provider == "gemini":
            name = key[len("gemini/"):] if key.startswith("gemini/") else key
        elif provider in ("bedrock", "bedrock_converse"):
            provider = "bedrock"
            name = bedrock_name(key)
            if name is None:
                continue
        else:
            continue
        row = (entry["max_output_tokens"], capabilities(provider, entry))
        previous = out.get((provider, name))
        # Several Bedrock ids share a name: keep the smallest limit, and what all of them take.
        if previous is not None:
            row = (min(previous[0], row[0]), [c for c in previous[1] if c in row[1]])
        out[(provider, name)] = row
    return out


def dump(rows, version):
    lines = [
        f"# Generated by scripts/gen-model-limits.py from litellm {version} ({MEMBER}); do not edit.",
        "# provider\tmodel\tmax_output_tokens\tcapabilities",
    ]
    for (provider, name), (limit, caps) in sorted(rows.items()):
        lines.append(f"{provider}\t{name}\t{limit}\t{' '.join(caps)}")
    return "\n".join(lines) + "\n"


def dump_betas(config, version):
    lines = [
        f"# Generated by scripts/gen-model-limits.py from litellm {version} ({BETAS_MEMBER}); do not edit.",
        "# anthropic-beta flag\tthe flag on Bedrock",
    ]
    for flag, bedrock in sorted(config["bedrock"].items()):
        if bedrock:
            lines.append(f"{flag}\t{bedrock}")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", help="a downloaded litellm wheel")
    parser.add_argument("--version", default=PINNED_VERSION)
    parser.add_argument("--sha256", default=PINNED_SHA256)
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args()
    pip_args = ("--platform", PLATFORM, "--python-version", "3.12")
    with pinned_wheel("litellm", args.version, args.sha256, args.wheel, pip_args) as z:
        catalog = json.loads(z.read(MEMBER))
        betas = json.loads(z.read(BETAS_MEMBER))
    table = rows(catalog)
    with open(args.out, "w") as f:
        f.write(dump(table, args.version))
    print(f"{args.out}: {len(table)} models from litellm {args.version}")
    with open(BETAS_OUT, "w") as f:
        f.write(dump_betas(betas, args.version))
    print(f"{BETAS_OUT}: the Bedrock beta flags from litellm {args.version}")


if __name__ == "__main__":
    main()

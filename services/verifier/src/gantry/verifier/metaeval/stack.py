"""A local stack for the meta-evaluation: envfarm, rollout serving the judge model, and
the verifier wired to both, each a real process on a free port."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from gantry.core.testing.process import spawn_service

STARTUP_S = 600.0  # SmolLM2's first start converts its GGUF once (~20 CPU-s, more when busy)
JUDGE = "default"
# Verifier settings per judge model, where its defaults do not suit it: the tiny test
# model reads 2048 tokens and writes noise, so its prompts and prose are kept short (as in
# the verifier's own tests).
# SmolLM2 on a shared 2-core CPU decodes at ~0.5-2 s per token and its cost per token grows
# with the prompt: a compact trajectory (1500 chars) and short free text (40 chars per
# rationale) keep one Verify to minutes.
PROFILES: dict[str, dict[str, str]] = {
    "tiny": {"GANTRY_VERIFIER_MAX_PROMPT_CHARS": "600", "GANTRY_VERIFIER_JUDGE_TEXT_CHARS": "8"},
    "smollm2-135m-instruct": {
        "GANTRY_VERIFIER_MAX_PROMPT_CHARS": "1500",
        "GANTRY_VERIFIER_JUDGE_TEXT_CHARS": "40",
    },
}
JUDGE_TOKENS = {"tiny": 96}


AGENT = "agent"  # the name a local stack gives an --agent-url endpoint


@dataclass(frozen=True)
class Stack:
    envfarm: str
    rollout: str
    verifier: str
    judge: str = JUDGE
    agent_endpoint: str = ""  # a configured agent endpoint name; "" = the judge's rollout


def verifier_env(
    model: str,
    *,
    rollout_target: str,
    envfarm_target: str,
    judge_max_tokens: int = 0,
    agent_url: str = "",
    agent_model: str = "",
) -> dict[str, str]:
    """The local verifier's settings: its judge is `model` on `rollout_target`; with
    `agent_url` (an OpenAI-compatible base URL, …/v1) VerifyAndRefine's agent can be that
    endpoint instead of the judge's own model."""
    judge: dict[str, object] = {"backend": "rollout"}
    tokens = judge_max_tokens or JUDGE_TOKENS.get(model, 0)
    if tokens:
        judge["max_tokens"] = tokens
    env = {
        "GANTRY_VERIFIER_ROLLOUT_TARGET": rollout_target,
        "GANTRY_VERIFIER_ENVFARM_TARGET": envfarm_target,
        "GANTRY_VERIFIER_JUDGES": json.dumps({JUDGE: judge}),
        "GANTRY_VERIFIER_MAX_QUEUED_VERIFICATIONS": "256",
        # A judge call of a 135M model on a busy CPU can take minutes.
        "GANTRY_VERIFIER_PEER_TIMEOUT_S": "900",
        **PROFILES.get(model, {}),
    }
    if agent_url:
        env["GANTRY_VERIFIER_AGENTS"] = json.dumps(
            {AGENT: {"url": agent_url, "model": agent_model}}
        )
    return env


@contextmanager
def envfarm(token: str | None) -> Iterator[str]:
    with spawn_service("gantry.envfarm", "envfarm", token=token) as proc:
        yield proc.target


@contextmanager
def local_stack(
    model: str,
    *,
    envfarm_target: str,
    token: str | None,
    torch_threads: int = 0,
    judge_max_tokens: int = 0,
    agent_url: str = "",
    agent_model: str = "",
) -> Iterator[Stack]:
    """rollout serving `model` (a path or a name: tiny, smollm2-135m-instruct) and a
    verifier whose default judge and refine agent are that model (`judge_max_tokens` 0 =
    the verifier's default per judge call; `agent_url`: the refine agent is that
    OpenAI-compatible endpoint instead)."""
    with ExitStack() as stack:
        rollout = stack.enter_context(
            spawn_service(
                "gantry.rollout",
                "rollout",
                token=token,
                env={
                    "GANTRY_ROLLOUT_MODEL_PATH": model,
                    "GANTRY_ROLLOUT_TORCH_THREADS": str(torch_threads),
                    "GANTRY_ROLLOUT_ENVFARM_TARGET": envfarm_target,
                },
                startup_timeout_s=STARTUP_S,
            )
        )
        verifier = stack.enter_context(
            spawn_service(
                "gantry.verifier",
                "verifier",
                token=token,
                env=verifier_env(
                    model,
                    rollout_target=rollout.target,
                    envfarm_target=envfarm_target,
                    judge_max_tokens=judge_max_tokens,
                    agent_url=agent_url,
                    agent_model=agent_model,
                ),
            )
        )
        agent = AGENT if agent_url else ""
        yield Stack(envfarm_target, rollout.target, verifier.target, agent_endpoint=agent)

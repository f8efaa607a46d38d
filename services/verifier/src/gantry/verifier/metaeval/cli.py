"""`python -m gantry.verifier.metaeval`: build the labelled set, verify it in every mode
with each judge model, measure Verify latency and VerifyAndRefine accuracy per round,
print Markdown tables (and optionally write JSON)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gantry.core.client import sync_channel
from gantry.core.stats import wilson_interval
from gantry.verifier.metaeval import dataset, failures, run
from gantry.verifier.metaeval.scoring import Confusion
from gantry.verifier.metaeval.stack import Stack, envfarm, local_stack

TOKEN = "metaeval-token"
REFINE_ENV = ("visgym/maze_2d", "easy")  # the family the refine loop is measured on


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gantry.verifier.metaeval", description=__doc__)
    p.add_argument("--items", type=int, default=300, help="labelled items (half correct)")
    p.add_argument("--seed", type=int, default=0, help="seed of the set and of the judge")
    p.add_argument(
        "--models",
        nargs="+",
        default=["tiny", "smollm2-135m-instruct"],
        help="judge models, each served by its own rollout: tiny, smollm2-135m-instruct, "
        "or a model path",
    )
    p.add_argument("--modes", nargs="+", default=list(run.MODES), choices=list(run.MODES))
    p.add_argument("--latency-sample", type=int, default=20, help="single Verify calls per mode")
    p.add_argument(
        "--per-kind",
        type=int,
        default=0,
        help="verify a seeded stratified subset of the built set: this many items of each "
        "failure kind and as many correct ones as failed ones (0 = every item)",
    )
    p.add_argument(
        "--sequential",
        action="store_true",
        help="single Verify calls one at a time, each timed, instead of VerifyBatch plus a "
        "latency sample (for slow judges)",
    )
    p.add_argument("--refine-tasks", type=int, default=10, help="VerifyAndRefine tasks (0 = off)")
    p.add_argument("--rounds", type=int, default=4, help="VerifyAndRefine rounds")
    p.add_argument(
        "--refine-modes", nargs="+", default=["programmatic", "full"], choices=list(run.MODES)
    )
    p.add_argument(
        "--refine-kinds",
        nargs="+",
        default=None,
        choices=["none", *failures.KINDS],
        help="refine only tasks whose first answer has one of these injected failures "
        "('none' = a correct first answer; default: the family's first tasks as they come)",
    )
    p.add_argument("--agent-max-tokens", type=int, default=160, help="tokens per refined answer")
    p.add_argument(
        "--agent-temperature", type=float, default=0.0, help="the agent's sampling (0 = greedy)"
    )
    p.add_argument(
        "--agent-url",
        default="",
        help="refine with this OpenAI-compatible endpoint (…/v1) as the agent instead of the "
        "judge's model (local stacks)",
    )
    p.add_argument("--agent-model", default="", help="model name sent to --agent-url")
    p.add_argument(
        "--agent-endpoint",
        default="",
        help="with --verifier: refine with this configured agent endpoint name",
    )
    p.add_argument(
        "--judge-max-tokens", type=int, default=0, help="tokens per judge call (0 = default)"
    )
    p.add_argument("--torch-threads", type=int, default=0, help="rollout's torch threads")
    p.add_argument("--envfarm", default="", help="use this envfarm instead of starting one")
    p.add_argument("--verifier", default="", help="use this verifier (with --envfarm, --judge)")
    p.add_argument("--judge", default="", help="judge name on --verifier")
    p.add_argument("--token", default=None, help="bearer token for --envfarm/--verifier")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    return p


def _table(title: str, results: Sequence[run.ModeResult], items: Sequence[dataset.Item]) -> str:
    kinds = ["none", *sorted({i.injected for i in items} - {"none"})]
    columns = ["mode", "precision", "recall", "F1", "accuracy", "refused"]
    columns += [f"rejects {k}" for k in kinds] + ["Verify median s", "p99 s"]
    lines = [f"### {title}", "", "| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    floor = Confusion.of([True] * len(items), [not i.correct for i in items])
    lines.append(
        f"| (reject all) | {floor.precision:.3f} | {floor.recall:.3f} | {floor.f1:.3f} | "
        f"{floor.accuracy:.3f} | - | " + " | ".join("-" for _ in kinds) + " | - | - |"
    )
    for r in results:
        c = r.confusion
        per_kind = " | ".join("{}/{}".format(*r.by_kind.get(k, (0, 0))) for k in kinds)
        lines.append(
            f"| {r.mode} | {c.precision:.3f} | {c.recall:.3f} | {c.f1:.3f} | {c.accuracy:.3f} "
            f"| {r.errors} | {per_kind} | {r.median_s:.2f} | {r.p99_s:.2f} |"
        )
    return "\n".join(lines)


def _load() -> str:
    """The machine's load next to every figure (a shared CPU changes latencies a lot)."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f} / {five:.1f} / {fifteen:.1f} (1/5/15 min) on {os.cpu_count()} CPUs"


def _share(k: int, n: int) -> str:
    lo, hi = wilson_interval(k, n)
    return f"{k}/{n} = {k / max(n, 1):.2f} [{lo:.2f}, {hi:.2f}]"


def _refine_table(title: str, results: Sequence[run.RefineResult]) -> str:
    rounds = len(results[0].correct_by_round)
    columns = ["mode", *(f"round {k + 1}" for k in range(rounds)), "best round"]
    columns += ["wrong→right", "right→wrong", "retries", "refused", "s"]
    lines = [
        f"### {title}",
        "",
        "Correct answers (replayed in envfarm) after each round, 95% Wilson intervals.",
        "",
        "| " + " | ".join(columns) + " |",
        "|---" * len(columns) + "|",
    ]
    for r in results:
        cells = [r.mode, *(_share(c, r.tasks) for c in r.correct_by_round)]
        cells += [_share(r.final_correct, r.tasks), str(r.wrong_to_right)]
        cells += [str(r.right_to_wrong), str(r.retries), str(r.errors), f"{r.seconds:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _refine_kinds(result: run.RefineResult) -> str:
    """Which first answers the loop repaired, per injected failure kind."""
    lines = ["", "| first answer | tasks | right in round 1 | right in the best round |"]
    lines.append("|---|---:|---|---|")
    for kind, (n, first, final) in sorted(result.by_kind().items()):
        lines.append(f"| {kind} | {n} | {_share(first, n)} | {_share(final, n)} |")
    return "\n".join(lines)


def _stacks(args: argparse.Namespace, envfarm_target: str) -> Iterator[tuple[str, Stack]]:
    """(name, stack) per judge: the given verifier, or a local stack per model in turn."""
    if args.verifier:
        verifier = Stack(envfarm_target, "", args.verifier, args.judge, args.agent_endpoint)
        yield args.judge or "verifier", verifier
        return
    for model in args.models:
        with local_stack(
            model,
            envfarm_target=envfarm_target,
            token=TOKEN,
            torch_threads=args.torch_threads,
            judge_max_tokens=args.judge_max_tokens,
            agent_url=args.agent_url,
            agent_model=args.agent_model,
        ) as stack:
            yield model, stack


def _verify_with(
    name: str,
    services: Stack,
    args: argparse.Namespace,
    token: str | None,
    items: Sequence[dataset.Item],
    refine_items: Sequence[dataset.Item],
    builder: dataset.Builder,
) -> dict[str, Any]:
    with sync_channel(services.verifier, token=token, default_timeout_s=None) as channel:
        results = []
        for mode in args.modes:
            r = run.evaluate(
                channel,
                items,
                mode,
                judge=services.judge,
                seed=args.seed,
                latency_sample=args.latency_sample,
                sequential=args.sequential,
            )
            results.append(r)
            # Each mode's row as soon as it is known: a long run is readable while it runs.
            print(_table(f"{name}, {mode} ({r.seconds:.0f} s)", [r], items), flush=True)
            print(f"  {_load()}", flush=True)
            for message, count in r.refusals.items():
                print(f"  refused {count}x: {message}", flush=True)
        print(_table(f"judge: {name}", results, items), flush=True)
        entry: dict[str, Any] = {
            "modes": [
                {**asdict(r), "confusion": asdict(r.confusion), "f1": r.confusion.f1}
                for r in results
            ]
        }
        refined = []
        for mode in args.refine_modes if refine_items else []:
            refined.append(
                run.refine(
                    channel,
                    builder,
                    refine_items,
                    mode=mode,
                    judge=services.judge,
                    rounds=args.rounds,
                    seed=args.seed,
                    agent_max_tokens=args.agent_max_tokens,
                    agent_temperature=args.agent_temperature,
                    agent_endpoint=services.agent_endpoint,
                )
            )
            title = f"VerifyAndRefine, judge and agent: {name}"
            print(_refine_table(f"{title}, {mode}", refined[-1:]), flush=True)
            print(_refine_kinds(refined[-1]), flush=True)
            print(f"  {_load()}", flush=True)
            entry["refine"] = [asdict(r) for r in refined]
        if len(refined) > 1:
            print(_refine_table(f"VerifyAndRefine, judge and agent: {name}", refined), flush=True)
        return entry


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parser().parse_args(argv)
    token = args.token if args.verifier or args.envfarm else TOKEN
    report: dict[str, Any] = {"machine": platform.platform(), "models": {}}
    with ExitStack() as stack:
        envfarm_target = args.envfarm or stack.enter_context(envfarm(TOKEN))
        envfarm_channel = stack.enter_context(sync_channel(envfarm_target, token=token))
        t0 = time.perf_counter()
        items = dataset.build(envfarm_channel, args.items, seed=args.seed)
        built_s = time.perf_counter() - t0
        kinds = {k: sum(i.injected == k for i in items) for k in ["none", *failures.KINDS]}
        print(f"{len(items)} items built through envfarm in {built_s:.1f} s: {kinds}")
        report["set"] = {"items": len(items), "build_s": built_s, "kinds": kinds}
        builder = dataset.Builder(envfarm_channel)
        family = [i for i in items if (i.env_id, i.difficulty) == REFINE_ENV]
        if args.refine_kinds:
            family = [i for i in family if i.injected in args.refine_kinds]
        refine_items = family[: args.refine_tasks]
        if args.per_kind:
            items = run.stratified(items, args.per_kind, args.seed)
            print(
                f"verifying a stratified subset: {args.per_kind} per failure kind, "
                f"{len(items)} items: {dict(Counter(i.injected for i in items))}"
            )
            report["set"]["subset"] = {"per_kind": args.per_kind, "items": len(items)}
        # The items verified, in order: each mode's `scores` line up with these.
        report["set"]["verified"] = [
            {"id": i.id, "injected": i.injected, "correct": i.correct} for i in items
        ]
        for name, services in _stacks(args, envfarm_target):
            report["models"][name] = _verify_with(
                name, services, args, token, items, refine_items, builder
            )
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    return report


def run_main() -> None:
    """The command line: SIGTERM unwinds like Ctrl-C, so the services it started stop too."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()

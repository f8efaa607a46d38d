"""Write solver demonstrations as chat-format JSONL with images as PNG files.

    python -m gantry.envfarm.export_sft --env maze_2d --difficulty hard \\
        --seeds 0:500 --out data/maze_2d_hard [--strategy bfs] [--detours 2] \\
        [--mode image|text|image_and_text] [--feedback]

Each line is one episode: {"messages": [...], "env_id", "difficulty", "seed", "strategy",
"reward"}. Messages follow the multimodal chat convention the trainer reads: the system
message holds the task instructions; each user message holds the observation (an
{"type": "image", "image": "<relative png path>"} part and/or a text part, plus the
previous action's feedback when --feedback is on); each assistant message holds one
action string; the last is "stop". Only demonstrations that reach the goal within the
level's step limit are written (a strategy the limit refuses for a seed is skipped), unless
--include-failures asks for the others too (their "reward" is then 0.0).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image as PILImage

from gantry.envfarm.demonstrations import Demonstration, demonstration_or_none
from gantry.envfarm.envs.registry import env_ids

MODES = ("image", "text", "image_and_text")


def conversation(
    demo: Demonstration, image_dir: Path, root: Path, *, mode: str, feedback: bool
) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": demo.instructions}]
    previous_feedback = ""
    for t, turn in enumerate(demo.turns):
        parts: list[dict[str, str]] = []
        if feedback and previous_feedback:
            parts.append({"type": "text", "text": f"Feedback: {previous_feedback}"})
        if mode in ("image", "image_and_text"):
            path = (
                image_dir
                / f"{demo.env_id}_{demo.difficulty}_{demo.seed}_{demo.strategy}_{t:03d}.png"
            )
            PILImage.fromarray(turn.observation["image"]).save(path)
            parts.append({"type": "image", "image": str(path.relative_to(root))})
        if mode in ("text", "image_and_text"):
            parts.append({"type": "text", "text": turn.observation["text"]})
        messages.append({"role": "user", "content": parts})
        messages.append({"role": "assistant", "content": turn.action})
        previous_feedback = turn.feedback
    return messages


def export(
    env_id: str,
    difficulty: str,
    seeds: Iterable[int],
    out: Path,
    *,
    strategy: str | None = None,
    detours: int = 0,
    mode: str = "image",
    feedback: bool = False,
    include_failures: bool = False,
) -> Path:
    """Write `<out>/demonstrations.jsonl` and `<out>/images/`; return the JSONL path."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    if difficulty not in ("easy", "hard"):
        raise ValueError("difficulty must be 'easy' or 'hard'")
    image_dir = out / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    path = out / "demonstrations.jsonl"
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w") as fh:
        for seed in seeds:
            demo = demonstration_or_none(
                env_id,
                difficulty,  # type: ignore[arg-type]
                seed,
                strategy=strategy,
                detours=detours,
                include_failures=include_failures,
            )
            if demo is None:
                continue
            record = {
                "messages": conversation(demo, image_dir, out, mode=mode, feedback=feedback),
                "env_id": env_id,
                "difficulty": difficulty,
                "seed": seed,
                "strategy": demo.strategy,
                "reward": demo.final_reward,
                "detours": demo.detours,
            }
            fh.write(json.dumps(record) + "\n")
    tmp.replace(path)  # a killed export never leaves a half-written file behind
    return path


def _seeds(spec: str) -> range:
    start, _, stop = spec.partition(":")
    return range(int(start), int(stop)) if stop else range(int(start), int(start) + 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", required=True, choices=env_ids())
    parser.add_argument("--difficulty", default="easy", choices=("easy", "hard"))
    parser.add_argument("--seeds", default="0:100", help="start:stop (exclusive) or one seed")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--strategy", default=None)
    parser.add_argument("--detours", type=int, default=0)
    parser.add_argument("--mode", default="image", choices=MODES)
    parser.add_argument("--feedback", action="store_true", help="include text feedback")
    parser.add_argument(
        "--include-failures",
        action="store_true",
        help="also write demonstrations that do not reach the goal within the step limit",
    )
    args = parser.parse_args(argv)
    path = export(
        args.env,
        args.difficulty,
        _seeds(args.seeds),
        args.out,
        strategy=args.strategy,
        detours=args.detours,
        mode=args.mode,
        feedback=args.feedback,
        include_failures=args.include_failures,
    )
    print(path)


if __name__ == "__main__":
    main()

"""`python -m gantry.models.tiny causal-lm OUT_DIR [--seed N] [--hidden-size N] [--num-layers N]`:
write a tiny random Qwen3 checkpoint (as `build_tiny_causal_lm`), for a process that should
not import torch itself (the training loop builds its base model this way)."""

from __future__ import annotations

import argparse

from gantry.models.tiny.causal_lm import build_tiny_causal_lm


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gantry.models.tiny")
    parser.add_argument("kind", choices=["causal-lm"])
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--num-layers", type=int, default=2)
    args = parser.parse_args(argv)
    build_tiny_causal_lm(
        args.out_dir, seed=args.seed, hidden_size=args.hidden_size, num_layers=args.num_layers
    )


if __name__ == "__main__":
    main()

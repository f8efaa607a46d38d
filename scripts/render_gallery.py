#!/usr/bin/env python3
"""Write one PNG per environment and difficulty to docs/images/envs/ (seed 0).

    .venv/bin/python scripts/render_gallery.py [--out docs/images/envs]

Also prints the Markdown table docs/envfarm.md embeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from gantry.envfarm.envs import env_ids, make
from gantry.envfarm.envs.base import DIFFICULTIES

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "envs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = ["| env | easy | hard |", "|---|---|---|"]
    for env_id in env_ids():
        cells = []
        for difficulty in DIFFICULTIES:
            env = make(env_id, difficulty)
            env.reset(seed=args.seed)
            path = args.out / f"{env_id}_{difficulty}.png"
            Image.fromarray(env.render_image()).save(path, optimize=True)
            cells.append(f"![{env_id} {difficulty}](images/envs/{path.name})")
        rows.append(f"| {env_id} | {cells[0]} | {cells[1]} |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

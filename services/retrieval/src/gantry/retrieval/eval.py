"""`python -m gantry.retrieval.eval --encoder PATH [--encoder PATH2 ...] --dataset FILE`."""

from __future__ import annotations

import typer

from gantry.retrieval.cli import eval_command


def main() -> None:
    typer.run(eval_command)


if __name__ == "__main__":
    main()

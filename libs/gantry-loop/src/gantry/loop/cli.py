"""`gantry train-loop --config FILE` and `gantry demo` (the same loop, demo settings)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gantry.core import stack
from gantry.loop.config import ConfigError, LoopConfig, load_config, parse_config
from gantry.loop.runner import run_loop

console = Console()

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Loop config (YAML); see docs/loop.md")
]
ReportOption = Annotated[
    Path | None, typer.Option("--report-dir", help="Parent directory of the run's report")
]


def _run(config: LoopConfig) -> None:
    try:
        outcome = run_loop(config, console=console)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: the local stack was taken down[/yellow]")
        raise typer.Exit(code=130) from None
    except (stack.StackError, ValueError, RuntimeError) as exc:
        console.print(f"[red]loop failed:[/red] {exc}")
        raise typer.Exit(code=1) from exc
    result = outcome.result
    console.print(
        f"held-out success: untrained {100 * result.untrained:.1f} % -> "
        f"final {100 * result.final:.1f} %"
    )
    console.print(f"report: {outcome.report_dir / 'summary.md'}")


def train_loop(config: ConfigOption, report_dir: ReportOption = None) -> None:
    """Run the agent-training loop described by a config file (local or remote services)."""
    try:
        loaded = load_config(config)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(code=2) from exc
    if report_dir is not None:
        loaded = loaded.model_copy(update={"report_dir": report_dir})
    _run(loaded)


def demo_config() -> LoopConfig:
    """The packaged demo settings (gantry/loop/demo.yaml)."""
    import yaml

    text = files("gantry.loop").joinpath("demo.yaml").read_text()
    return parse_config(yaml.safe_load(text), source="demo.yaml")


def demo(report_dir: ReportOption = None) -> None:
    """Gantry's main job on this machine: the training loop across local services."""
    config = demo_config()
    if report_dir is not None:
        config = config.model_copy(update={"report_dir": report_dir})
    _run(config)

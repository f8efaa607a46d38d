"""`gantry train-loop --config FILE` and `gantry demo` (the same loop, demo settings)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gantry.core import stack
from gantry.loop.config import ConfigError, LoopConfig, load_config, parse_config

console = Console()

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Loop config (YAML); see docs/loop.md")
]
ReportOption = Annotated[
    Path | None, typer.Option("--report-dir", help="Parent directory of the run's report")
]


def _run(config: LoopConfig) -> None:
    # Imported here: every `gantry` command loads this module, and the runner brings
    # matplotlib and the report writer (~1 s) that only a loop needs.
    from gantry.loop.runner import run_loop

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


# The packaged demo configs, by policy: the tiny random Qwen3 (the default, which fits a
# 2-core CPU in minutes) and SmolLM2-135M-Instruct (docs/loop.md has its measured cost).
DEMO_CONFIGS = {"tiny": "demo.yaml", "smollm2-135m-instruct": "demo-smollm2.yaml"}

ModelOption = Annotated[
    str,
    typer.Option(
        "--model", help=f"Demo policy: {' or '.join(DEMO_CONFIGS)} (packaged config per model)"
    ),
]


def demo_config(model: str = "tiny") -> LoopConfig:
    """The packaged demo settings for `model` (gantry/loop/demo.yaml, demo-smollm2.yaml)."""
    import yaml

    name = DEMO_CONFIGS[model]
    text = files("gantry.loop").joinpath(name).read_text()
    return parse_config(yaml.safe_load(text), source=name)


def demo(report_dir: ReportOption = None, model: ModelOption = "tiny") -> None:
    """Gantry's main job on this machine: the training loop across local services."""
    if model not in DEMO_CONFIGS:
        console.print(f"[red]--model: {model[:64]!r} is not one of {', '.join(DEMO_CONFIGS)}[/red]")
        raise typer.Exit(code=2)
    config = demo_config(model)
    if report_dir is not None:
        config = config.model_copy(update={"report_dir": report_dir})
    _run(config)

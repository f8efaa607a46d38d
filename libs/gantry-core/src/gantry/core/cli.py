"""The `gantry` command: serve one service, run the local stack, call any RPC."""

from __future__ import annotations

import logging
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import grpc
import typer
from rich.console import Console
from rich.table import Table

from gantry.core import errors, stack
from gantry.core.children import pid_alive
from gantry.core.client import sync_channel
from gantry.core.reflect import ReflectionClient
from gantry.core.registry import installed_services, load_service

app = typer.Typer(
    help="Gantry: gRPC services for training, evaluating and serving AI agents.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="Where the local stack keeps its pids, logs and data "
        "(default $GANTRY_STATE_DIR or ~/.local/state/gantry).",
    ),
]


def _state_dir(state_dir: Path | None) -> Path:
    return state_dir or stack.default_state_dir()


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=1)


@app.command()
def serve(name: Annotated[str, typer.Argument(help="Service to run, e.g. envfarm")]) -> None:
    """Run one service in the foreground (settings from GANTRY_<SERVICE>_* env vars)."""
    from gantry.core.server import serve as serve_service

    try:
        service = load_service(name)
        settings = service.settings_type()
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    serve_service(service, settings)


@app.command()
def up(
    services: Annotated[
        list[str] | None, typer.Argument(help="Services to start (default: all installed)")
    ] = None,
    state_dir: StateDir = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Disable bearer-token auth (local dev only)")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for SERVING")] = 180.0,
) -> None:
    """Start the local stack: each service its own process, health-gated."""
    directory = _state_dir(state_dir)
    try:
        running = stack.up(
            directory,
            services,
            auth=not no_auth,
            timeout_s=timeout,
            on_ready=lambda s: console.print(f"[green]SERVING[/green] {s.name} on {s.target}"),
        )
    except stack.StackError as exc:
        raise _fail(str(exc)) from exc
    _print_stack(running)


def _print_stack(running: stack.Stack) -> None:
    table = Table(title=f"Gantry local stack ({running.state_dir})")
    for column in ("service", "pid", "endpoint", "metrics", "health", "log"):
        table.add_column(column)
    for svc in running.services:
        health = stack.health_status(svc.target) if pid_alive(svc.pid) else "EXITED"
        table.add_row(
            svc.name,
            str(svc.pid),
            svc.target,
            f"http://127.0.0.1:{svc.metrics_port}/metrics",
            health,
            svc.log,
        )
    console.print(table)
    if running.services:
        auth = "bearer token in stack.json" if running.token else "auth disabled"
        console.print(f"call with: gantry call <service> <Method> '<json>'  ({auth})")


@app.command()
def down(state_dir: StateDir = None) -> None:
    """Stop the local stack (SIGTERM, drain, then SIGKILL what is left)."""
    stopped = stack.down(_state_dir(state_dir))
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "no stack running")


@app.command()
def status(state_dir: StateDir = None) -> None:
    """Show the local stack's processes and their health."""
    running = stack.load_stack(_state_dir(state_dir))
    if running is None:
        console.print("no stack running")
        installed = ", ".join(installed_services()) or "none"
        console.print(f"installed services: {installed}")
        return
    _print_stack(running)


def _channel_for(
    target: str, state_dir: Path | None, token: str | None, timeout: float
) -> grpc.Channel:
    """`target` is a local-stack service name or a host:port address."""
    resolved, resolved_token = target, token
    running = stack.load_stack(_state_dir(state_dir))
    if running is not None and ":" not in target:
        try:
            svc = running.service(target)
        except KeyError as exc:
            raise _fail(f"{target!r} is not in the local stack") from exc
        resolved = svc.target
        resolved_token = token or running.token
    elif ":" not in target:
        raise _fail(f"{target!r}: no local stack is running; pass host:port instead")
    return sync_channel(resolved, token=resolved_token, default_timeout_s=timeout)


@app.command()
def call(
    target: Annotated[str, typer.Argument(help="Local service name or host:port")],
    method: Annotated[
        str | None,
        typer.Argument(help="Service/Method (or just Method); omit to list services"),
    ] = None,
    data: Annotated[str, typer.Argument(help="Request as JSON, @file, or - for stdin")] = "{}",
    token: Annotated[str | None, typer.Option(envvar="GANTRY_TOKEN", help="Bearer token")] = None,
    timeout: Annotated[float, typer.Option(help="Deadline in seconds")] = 60.0,
    state_dir: StateDir = None,
) -> None:
    """Invoke any RPC with a JSON request, discovered through server reflection."""
    if data == "-":
        data = sys.stdin.read()
    elif data.startswith("@"):
        data = Path(data[1:]).read_text()
    with _channel_for(target, state_dir, token, timeout) as channel:
        client = ReflectionClient(channel)
        try:
            if method is None:
                for name in client.services():
                    console.print(name)
                    try:
                        methods = [m.name for m in client.service(name).methods]
                    except KeyError:
                        methods = ["(no descriptor published)"]
                    for m in methods:
                        console.print(f"  {m}", style="dim")
                return
            descriptor = client.find_method(method)
            for reply in client.call(descriptor, data, timeout_s=timeout):
                console.print_json(reply)
        except grpc.RpcError as exc:
            error = errors.from_rpc_error(exc)
            violations = getattr(error, "violations", [])
            detail = "".join(f"\n  {v.field}: {v.description}" for v in violations)
            raise _fail(f"{error.code.name}: {error.message}{detail}") from exc
        except (KeyError, ValueError) as exc:
            raise _fail(str(exc)) from exc


@app.command()
def smoke(
    services: Annotated[
        list[str] | None, typer.Argument(help="Services to include (default: all installed)")
    ] = None,
    state_dir: StateDir = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for SERVING")] = 180.0,
) -> None:
    """Bring up every installed service, make one real call to each, bring it all down.

    (`gantry demo`, from gantry-loop, runs the training loop across the services.)
    """
    names = services or installed_services()
    if not names:
        raise _fail("no Gantry service is installed")
    directory = _state_dir(state_dir) / "smoke"
    try:
        running = stack.up(directory, names, timeout_s=timeout)
    except stack.StackError as exc:
        raise _fail(str(exc)) from exc
    table = Table(title="Gantry smoke test: one real call to each live service")
    for column in ("service", "endpoint", "health", "answer"):
        table.add_column(column)
    failed = False
    try:
        for svc in running.services:
            with sync_channel(svc.target, token=running.token) as channel:
                try:
                    answer = load_service(svc.name).demo_call(channel)
                except grpc.RpcError as exc:
                    failed = True
                    answer = f"[red]{errors.from_rpc_error(exc)!r}[/red]"
            table.add_row(svc.name, svc.target, stack.health_status(svc.target), answer)
        console.print(table)
    finally:
        stopped = stack.down(directory)
        console.print(f"stack down: stopped {', '.join(stopped)}")
    if failed:
        raise typer.Exit(code=1)


COMMANDS_GROUP = "gantry.commands"


def add_plugin_commands(target: typer.Typer) -> list[str]:
    """Mount each `gantry.commands` entry point as `gantry <name> ...`: a `typer.Typer`
    becomes a command group, a plain function a single command.

    A service distribution declares, e.g.

        [project.entry-points."gantry.commands"]
        retrieval = "gantry.retrieval.cli:app"

    and `gantry retrieval eval ...` appears when it is installed. A group that fails to
    import is skipped with a warning, so one broken distribution cannot break `gantry`.
    """
    taken = {c.name for c in target.registered_commands} | {
        g.name for g in target.registered_groups
    }
    added = []
    for ep in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        if ep.name in taken:
            continue
        try:
            group = ep.load()
        except Exception as exc:  # an optional plugin must never break the CLI
            logging.getLogger("gantry.cli").warning("skipping %s commands: %s", ep.name, exc)
            continue
        if isinstance(group, typer.Typer):
            target.add_typer(group, name=ep.name)
        elif callable(group):
            target.command(name=ep.name)(group)
        else:
            logging.getLogger("gantry.cli").warning("skipping %s: not a command", ep.name)
            continue
        taken.add(ep.name)
        added.append(ep.name)
    return added


add_plugin_commands(app)


def main() -> None:
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    app()


if __name__ == "__main__":
    main()

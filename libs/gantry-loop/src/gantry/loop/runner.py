"""Run the loop end to end: connect to (or start) the services, train, write the report.

from gantry.loop import load_config, run_loop
outcome = run_loop(load_config(Path("loop.yaml")))
print(outcome.result.success, outcome.report_dir)
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import grpc
import yaml
from rich.console import Console

from gantry.core import preload, stack
from gantry.core.client import sync_channel
from gantry.core.routing import ROUTED_RETRY, RoutingChannel
from gantry.core.telemetry import configure_tracing, shutdown_tracing
from gantry.loop import calls
from gantry.loop.calls import Stubs
from gantry.loop.config import LoopConfig, TinyModel
from gantry.loop.loop import LoopResult, Record, TrainingLoop
from gantry.loop.progress import LiveView, PlainProgress
from gantry.loop.report import ReportWriter, plot, read_records, summary
from gantry.loop.tensorboard_log import DIRECTORY as TENSORBOARD_DIR
from gantry.loop.tensorboard_log import TensorBoardWriter
from gantry.proto.envfarm.v1 import envfarm_pb2_grpc
from gantry.proto.rollout.v1 import rollout_pb2_grpc
from gantry.proto.trainer.v1 import trainer_pb2_grpc

LOCAL_SERVICES = ("envfarm", "rollout", "trainer")
LOCAL_SESSION_IDLE_S = 1800


@dataclass(frozen=True)
class Outcome:
    result: LoopResult
    report_dir: Path


@dataclass(frozen=True)
class Endpoints:
    stubs: Stubs
    base_model: str
    rollout_for_trainer: str


class _Fanout:
    def __init__(
        self, *observers: LiveView | PlainProgress | ReportWriter | TensorBoardWriter | None
    ) -> None:
        self.observers = [o for o in observers if o is not None]

    def stage(self, name: str, detail: str = "") -> None:
        for o in self.observers:
            o.stage(name, detail)

    def record(self, record: Record) -> None:
        for o in self.observers:
            o.record(record)


def run_loop(config: LoopConfig, *, console: Console | None = None, live: bool = True) -> Outcome:
    """Run the configured loop; the report lands in a new directory under report_dir.

    `live`: show progress, as a live view on a terminal and as plain lines otherwise."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    report_dir = (config.report_dir / f"{config.name}-{stamp}").resolve()
    report_dir.mkdir(parents=True, exist_ok=False)
    config_text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    (report_dir / "config.yaml").write_text(config_text)
    writer = ReportWriter(report_dir)
    board = (
        TensorBoardWriter(report_dir / TENSORBOARD_DIR) if config.telemetry.tensorboard else None
    )
    view = _progress(console or Console()) if live else None
    tracing = configure_tracing("loop", endpoint=config.telemetry.otlp_endpoint)
    data_dir = config.services.shared_dir or report_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    result = LoopResult()
    try:
        with _terminate_as_interrupt(), _endpoints(config, report_dir, data_dir) as endpoints:
            loop = TrainingLoop(
                config,
                endpoints.stubs,
                base_model=endpoints.base_model,
                data_dir=data_dir,
                rollout_for_trainer=endpoints.rollout_for_trainer,
                observer=_Fanout(view, writer, board),
            )
            result = loop.result  # filled in stage by stage: partial if interrupted
            with view if view is not None else contextlib.nullcontext():
                loop.run()
    finally:
        writer.close()
        if board is not None:
            board.close()
        shutdown_tracing(tracing)
        # The report covers whatever ran, also after Ctrl-C or a failed stage.
        records = read_records(report_dir)
        plot(report_dir, records)
        summary(report_dir, records, result, config_text)
    return Outcome(result, report_dir)


def _progress(console: Console) -> LiveView | PlainProgress:
    """The live view on a terminal; plain lines (stage, step, success so far) in a pipe or
    a CI log, where a redrawn panel would print nothing until the end."""
    return LiveView(console) if console.is_terminal else PlainProgress(console.file)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the local stack is always taken down."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _endpoints(config: LoopConfig, report_dir: Path, data_dir: Path) -> Iterator[Endpoints]:
    services = config.services
    if services.all_local:
        with _local_stack(config, report_dir, data_dir) as endpoints:
            yield endpoints
        return
    token = services.token_file.read_text().strip() if services.token_file else None
    roots = (
        services.root_certificates_file.read_bytes() if services.root_certificates_file else None
    )
    with contextlib.ExitStack() as exits:

        def channel(target: str) -> grpc.Channel:
            return exits.enter_context(
                sync_channel(target, token=token, tls=services.tls, root_certificates=roots)
            )

        # envfarm may be several replicas (a static list or a dns:/// headless Service).
        farm = RoutingChannel(
            services.envfarm,
            channel=lambda address: sync_channel(
                address, token=token, tls=services.tls, root_certificates=roots, retry=ROUTED_RETRY
            ),
        )
        exits.callback(farm.close)
        stubs = Stubs(
            envfarm=envfarm_pb2_grpc.EnvFarmServiceStub(farm),
            rollout=rollout_pb2_grpc.RolloutServiceStub(channel(services.rollout)),
            trainer=trainer_pb2_grpc.TrainerServiceStub(channel(services.trainer)),
        )
        if config.policy.base_model == "tiny":
            raise ValueError(
                "policy.base_model must be a checkpoint path both remote rollout and trainer "
                'can read ("tiny" is built locally and only works with local services)'
            )
        # Empty: the trainer publishes to its own configured rollout (the address the loop
        # dials is usually not one the trainer may use).
        endpoints = Endpoints(stubs, config.policy.base_model, services.rollout_for_trainer)
        calls.check_trainer_access(
            stubs, endpoints.base_model, data_dir, endpoints.rollout_for_trainer
        )
        yield endpoints


def local_stack_env(
    config: LoopConfig, base_model: str, data_dir: Path, state_dir: Path
) -> dict[str, str]:
    """Settings of the local stack's services for this loop: rollout serves the base
    model, and the trainer's storage roots hold the SFT data the loop writes
    (`data_dir`) and the base model."""
    endpoint = config.telemetry.otlp_endpoint
    traces = {f"GANTRY_{name.upper()}_OTLP_ENDPOINT": endpoint for name in LOCAL_SERVICES}
    return {
        **(traces if endpoint else {}),
        # A real model on a busy CPU can think for minutes between two steps of an episode:
        # the private stack's envfarm keeps such sessions (the default reaps them at 5 min).
        "GANTRY_ENVFARM_SESSION_IDLE_TIMEOUT_S": str(LOCAL_SESSION_IDLE_S),
        "GANTRY_ROLLOUT_MODEL_PATH": base_model,
        "GANTRY_ROLLOUT_PRECISION_RECIPE": config.policy.precision,
        "GANTRY_TRAINER_DATASETS_ROOT": str(data_dir.resolve()),
        "GANTRY_TRAINER_MODELS_ROOT": str(Path(base_model).resolve().parent),
        **{
            f"GANTRY_{name.upper()}_DATA_DIR": str(state_dir / "data" / name)
            for name in LOCAL_SERVICES
        },
        # Async: rollout and trainer compute at the same time (sync alternates them).
        **(shared_cpu_threads() if config.grpo.mode == "async" else {}),
    }


def shared_cpu_threads() -> dict[str, str]:
    """Torch threads for rollout and trainer computing at once on this machine's cores:
    half each (unless the environment already says). With torch's default both take every
    core and their spinning thread pools stall each other (docs/loop.md, "CPU threads")."""
    threads = str(max(1, len(os.sched_getaffinity(0)) // 2))
    names = ("GANTRY_ROLLOUT_TORCH_THREADS", "GANTRY_TRAINER_TORCH_THREADS")
    return {name: threads for name in names if name not in os.environ}


def _build_tiny(tiny: TinyModel, out_dir: Path, log: Path) -> Path:
    """The tiny base model, written by a child forked from the preloader the stack's
    services then come from: this process never imports torch (~10 CPU-s saved)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    args = ["causal-lm", str(out_dir), "--seed", str(tiny.seed)]
    args += ["--hidden-size", str(tiny.hidden_size), "--num-layers", str(tiny.num_layers)]
    child = preload.start(
        "gantry.models.tiny", args, env=os.environ, output=log, imports_torch=True
    )
    if child.wait() != 0:
        raise RuntimeError(f"building the tiny base model failed:\n{log.read_text()[-2000:]}")
    return out_dir


@contextlib.contextmanager
def _local_stack(config: LoopConfig, report_dir: Path, data_dir: Path) -> Iterator[Endpoints]:
    base_model = config.policy.base_model
    if base_model == "tiny":
        log = report_dir / "stack" / "logs" / "base-model.log"  # beside the services' logs
        base_model = str(_build_tiny(config.policy.tiny, report_dir / "base-model", log))
    else:
        from gantry.models.names import resolve_model_path

        # A packaged model ("smollm2-135m-instruct") is converted here, once, before the
        # services start; they then load its cached checkpoint directory.
        base_model = resolve_model_path(base_model)
    state_dir = report_dir / "stack"
    env = local_stack_env(config, base_model, data_dir, state_dir)
    running = stack.up(
        state_dir,
        LOCAL_SERVICES,
        timeout_s=config.services.startup_timeout_s,
        extra_env=env,
        default_ports=False,  # private to this run
    )
    channels: list[grpc.Channel] = []
    deaths: list[str] = []

    def lost(svc: stack.ServiceProcess, status: int | None) -> None:
        # A dead service's calls would wait (or retry) on it: cancel them all, and the
        # loop fails below with the service's name and exit status.
        deaths.append(stack.death_notice(svc, status))
        for ch in channels:
            ch.close()

    stop_watching = stack.watch(running, lost)
    try:
        with contextlib.ExitStack() as exits:

            def channel(name: str) -> grpc.Channel:
                target = running.service(name).target
                channels.append(exits.enter_context(sync_channel(target, token=running.token)))
                return channels[-1]

            stubs = Stubs(
                envfarm=envfarm_pb2_grpc.EnvFarmServiceStub(channel("envfarm")),
                rollout=rollout_pb2_grpc.RolloutServiceStub(channel("rollout")),
                trainer=trainer_pb2_grpc.TrainerServiceStub(channel("trainer")),
            )
            # The address stack.up configured as the trainer's rollout_target: accepted.
            yield Endpoints(stubs, base_model, running.service("rollout").target)
    except Exception as exc:
        if deaths:
            raise stack.StackError(f"the loop lost a service: {deaths[0]}") from exc
        raise
    finally:
        stop_watching()
        stack.down(state_dir)

"""The EnvFarmService RPCs: validate, then run environment work off the event loop."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from google.longrunning import operations_proto_pb2 as operations_pb2

from gantry.core.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unimplemented,
    echo,
)
from gantry.core.limits import check_bytes, check_count, check_id
from gantry.core.paging import Page
from gantry.core.routing import load_metadata
from gantry.core.server import Runtime
from gantry.envfarm import convert, encoding
from gantry.envfarm.batch import StepBatch
from gantry.envfarm.demonstrations import UNBOUNDED, Demonstration, demonstration_or_none
from gantry.envfarm.envs.actions import parse_action
from gantry.envfarm.envs.base import Difficulty, Plan, PlanTooLong, VisGymEnv
from gantry.envfarm.envs.registry import ENVIRONMENTS, make, solver_for
from gantry.envfarm.family import (
    REFERENCE,
    BadAction,
    Families,
    TaskDemonstration,
    TaskEpisode,
    TaskFamily,
    TaskStep,
    UnknownTask,
)
from gantry.envfarm.regions import FrameRegion, FrameRegions, FrameSlot
from gantry.envfarm.sessions import Session, SessionManager, ensure_active
from gantry.envfarm.settings import EnvFarmSettings
from gantry.proto.common.v1 import chat_pb2, episode_pb2
from gantry.proto.envfarm.v1 import envfarm_pb2, envfarm_pb2_grpc

log = logging.getLogger("gantry.envfarm")

MAX_ACTION_BYTES = 65536  # the environments read 512 characters; longer is feedback
MAX_DETOURS = 100
MAX_DEMO_SEEDS = 10000
MAX_TASK_DEMO_SEEDS = 64  # a sandbox each, and every seed plays the same fixed task
MAX_STEPS_OVERRIDE = 1000
MAX_HISTORY_WINDOW = 100_000
MAX_PREFIX_BYTES = 256
MAX_NAME_BYTES = 64  # strategy names
DEFAULT_PAGE_SIZE = 100


@dataclass(frozen=True)
class EnvFarmLimits:
    """The operator's bounds the RPCs enforce (from `EnvFarmSettings`)."""

    max_page_size: int
    max_batch_items: int
    max_state_json_bytes: int
    max_demonstrations: int
    batch_concurrency: int  # a StepBatch's executor calls in flight: one per executor worker
    max_message_bytes: int  # the largest response: bounds a StepBatch of raw frames

    @classmethod
    def from_settings(cls, settings: EnvFarmSettings) -> EnvFarmLimits:
        return cls(
            max_page_size=settings.max_page_size,
            max_batch_items=settings.max_batch_items,
            max_state_json_bytes=settings.max_state_json_bytes,
            max_demonstrations=settings.max_demonstrations,
            batch_concurrency=settings.executor_workers,
            max_message_bytes=settings.max_message_bytes,
        )


def _check_settings(settings: episode_pb2.EpisodeSettings) -> None:
    if not 0 <= settings.history_window <= MAX_HISTORY_WINDOW:
        raise InvalidArgument.for_field(
            "settings.history_window", f"must be in [0, {MAX_HISTORY_WINDOW}] (0 = unbounded)"
        )
    if settings.HasField("max_steps") and not 1 <= settings.max_steps <= MAX_STEPS_OVERRIDE:
        raise InvalidArgument.for_field(
            "settings.max_steps", f"must be between 1 and {MAX_STEPS_OVERRIDE}"
        )
    if settings.observation_mode not in episode_pb2.ObservationMode.values():
        raise InvalidArgument.for_field("settings.observation_mode", "unknown observation mode")


def _check_region_encoding(frames: int) -> None:
    if frames != encoding.RAW:
        raise InvalidArgument.for_field(
            "observation_encoding", "a frame_region needs OBSERVATION_ENCODING_RAW"
        )


def _session_id(value: str, field: str = "session_id") -> str:
    if not value:
        raise InvalidArgument.for_field(field, "is required")
    check_id(value, field=field)
    return value


def _check_limits(limits: envfarm_pb2.ResourceLimits) -> None:
    """Visual environments run in-process and ignore limits, but a value must make sense."""
    if not (math.isfinite(limits.cpus) and limits.cpus >= 0):
        raise InvalidArgument.for_field("limits.cpus", "must be a finite number >= 0")
    for name in ("memory_bytes", "storage_bytes"):
        if getattr(limits, name) < 0:
            raise InvalidArgument.for_field(f"limits.{name}", "must be >= 0")
    for name in ("step_timeout", "episode_timeout", "test_timeout"):
        if limits.HasField(name) and getattr(limits, name).ToNanoseconds() < 0:
            raise InvalidArgument.for_field(f"limits.{name}", "must not be negative")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:24]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed (states hold finite numbers)")


def _parse_state(text: str, field: str, limit: int) -> Any:
    """A client's state JSON: bounded, finite numbers, nesting within the parser's limit."""
    check_bytes(text, field=field, limit=limit)
    try:
        return json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except RecursionError as exc:
        raise InvalidArgument.for_field(field, "nests too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, over-long integers
        raise InvalidArgument.for_field(field, f"is not valid JSON: {exc}") from exc


def _solve(plan: Callable[[], Plan]) -> Plan:
    """A solver's plan; a state it cannot solve (a client's own), or a strategy whose plan
    does not fit the steps left, is FAILED_PRECONDITION."""
    try:
        return plan()
    except PlanTooLong as exc:
        raise FailedPrecondition(
            str(exc),
            reason="PLAN_TOO_LONG",
            metadata={
                "strategy": exc.strategy,
                "plan_length": str(exc.length),
                "step_limit": str(exc.limit),
            },
        ) from exc
    except ValueError as exc:
        raise FailedPrecondition(
            f"the solver has no plan from this session's state: {exc}", reason="UNSOLVABLE"
        ) from exc


class EnvFarmServicer(envfarm_pb2_grpc.EnvFarmServiceServicer):
    def __init__(
        self,
        runtime: Runtime,
        sessions: SessionManager,
        limits: EnvFarmLimits,
        dataset_dir: Path | None = None,
        families: Families | None = None,
        suites: TaskSuites | None = None,
        frame_regions: FrameRegions | None = None,
    ) -> None:
        self.runtime = runtime
        self.sessions = sessions
        self.limits = limits
        self.dataset_dir = dataset_dir
        self.families = families or Families()
        self.suites = suites
        # Off unless the service passes its own (limits from its settings).
        if frame_regions is None:
            frame_regions = FrameRegions(
                max_regions=0, max_bytes=0, max_slots=1, frame_bytes=0, idle_s=0.0
            )
        self.frame_regions = frame_regions

    def _family(self, env_id: str, field: str = "env_id") -> TaskFamily | None:
        """The task family serving `env_id`, or None for a VisGym id."""
        family = self.families.find(env_id)
        if family is not None:
            try:
                family.environment(env_id)
            except UnknownTask:
                raise _no_task(family, env_id, field) from None
        return family

    # ----- catalogue -----
    async def ListEnvironments(
        self, request: envfarm_pb2.ListEnvironmentsRequest, context: Any
    ) -> envfarm_pb2.ListEnvironmentsResponse:
        check_bytes(request.id_prefix, field="id_prefix", limit=MAX_PREFIX_BYTES)
        if request.kind not in envfarm_pb2.EnvironmentKind.values():
            raise InvalidArgument.for_field("kind", f"unknown EnvironmentKind {request.kind}")
        page = Page.from_request(
            request,
            default_size=DEFAULT_PAGE_SIZE,
            max_size=self.limits.max_page_size,
            scope=f"{request.kind}:{request.id_prefix}",
        )
        listed: list[tuple[str, TaskFamily | None]] = []
        if request.kind in (
            envfarm_pb2.ENVIRONMENT_KIND_UNSPECIFIED,
            envfarm_pb2.ENVIRONMENT_KIND_VISUAL,
        ):
            listed += [
                (convert.wire_id(env_id), None)
                for env_id in ENVIRONMENTS
                if convert.wire_id(env_id).startswith(request.id_prefix)
            ]
        # Off the loop: a family may build its catalogue on first use (notebook: seconds).
        listed += await self.runtime.run_blocking(
            self.families.listing, request.kind, request.id_prefix
        )
        listed.sort(key=lambda item: item[0])
        return envfarm_pb2.ListEnvironmentsResponse(
            environments=[
                self._describe(env_id, family) for env_id, family in listed[page.start : page.stop]
            ],
            next_page_token=page.next_token(len(listed)),
        )

    @staticmethod
    def _describe(wire_id: str, family: TaskFamily | None) -> envfarm_pb2.Environment:
        if family is not None:
            return family.environment(wire_id)
        env_type, solver = ENVIRONMENTS[wire_id.removeprefix(convert.VISGYM_PREFIX)]
        return convert.environment(env_type, solver.strategies)

    # ----- sessions -----
    async def CreateSession(
        self, request: envfarm_pb2.CreateSessionRequest, context: Any
    ) -> envfarm_pb2.CreateSessionResponse:
        # This replica's load (sessions before this one), for routing clients to balance on.
        context.set_trailing_metadata(load_metadata(len(self.sessions), self.sessions.max_sessions))
        check_bytes(request.env_id, field="env_id", limit=MAX_PREFIX_BYTES)
        family = self._family(request.env_id)
        if family is not None:
            return await self._create_task_session(family, request)
        env_id = convert.resolve_env_id(request.env_id)
        difficulty = convert.difficulty_in(request.difficulty)
        frames = encoding.check(request.observation_encoding)
        _check_settings(request.settings)
        _check_limits(request.limits)
        ttl = self._ttl(request)
        self.sessions.reserve()
        seed = request.seed if request.HasField("seed") else secrets.randbits(63)
        max_steps = request.settings.max_steps if request.settings.HasField("max_steps") else None
        env = make(env_id, difficulty, max_steps=max_steps, dataset_path=self._dataset(env_id))
        await self._reset(env, seed, request.initial_state_json, "initial_state_json")
        session = self.sessions.add(env_id, env, seed, request.settings, ttl)
        reply = envfarm_pb2.CreateSessionResponse()
        try:
            await self.runtime.run_blocking(self._observe, session, reply, frames)
        except BaseException:  # the caller never learns the id: do not leave it open
            self.sessions.close(session.id, "creation failed")
            raise
        reply.session.CopyFrom(self._session(session))
        return reply

    def _ttl(self, request: envfarm_pb2.CreateSessionRequest) -> float | None:
        if not request.HasField("ttl"):
            return None
        ttl = request.ttl.ToNanoseconds() / 1e9
        if not 0 < ttl <= self.sessions.lifetime_s:
            raise InvalidArgument.for_field("ttl", f"must be in (0, {self.sessions.lifetime_s}] s")
        return ttl

    async def _create_task_session(
        self, family: TaskFamily, request: envfarm_pb2.CreateSessionRequest
    ) -> envfarm_pb2.CreateSessionResponse:
        """A fixed task: the difficulty is the task's own, the seed is recorded only."""
        convert.difficulty_in(request.difficulty)
        encoding.check(request.observation_encoding)  # text observations: nothing to encode
        _check_task_settings(request.settings)
        _check_limits(request.limits)
        _check_task_limits(request.limits)
        ttl = self._ttl(request)
        state = None
        if request.initial_state_json:
            limit = self.limits.max_state_json_bytes
            state = _parse_state(request.initial_state_json, "initial_state_json", limit)
        self.sessions.reserve()
        seed = request.seed if request.HasField("seed") else secrets.randbits(63)
        max_steps = request.settings.max_steps if request.settings.HasField("max_steps") else None
        try:
            episode = family.make(
                request.env_id, max_steps=max_steps, limits=request.limits, state=state
            )
        except UnknownTask:  # deleted since the lookup
            raise _no_task(family, request.env_id, "env_id") from None
        except ValueError as exc:
            raise InvalidArgument.for_field("initial_state_json", str(exc)) from exc
        session = self.sessions.add(request.env_id, episode, seed, request.settings, ttl)
        try:
            async with session.lock:
                obs = await self.runtime.run_blocking(episode.reset, seed)
        except BaseException:  # the caller never learns the id: do not leave it open
            await self.runtime.run_blocking(episode.close)
            self.sessions.close(session.id, "creation failed")
            raise
        return envfarm_pb2.CreateSessionResponse(session=self._session(session), observation=obs)

    def _dataset(self, env_id: str) -> str | None:
        root = self.dataset_dir
        path = root / env_id if root is not None else None
        return str(path) if path is not None and path.is_dir() else None

    async def _reset(self, env: VisGymEnv, seed: int, state_json: str, field: str) -> None:
        if not state_json:
            try:
                await self.runtime.run_blocking(lambda: env.reset(seed=seed))
            except ValueError as exc:  # settings no episode can satisfy (max_steps)
                raise InvalidArgument.for_field("settings.max_steps", str(exc)) from exc
            return
        limit = self.limits.max_state_json_bytes
        options = {"state": _parse_state(state_json, field, limit)}
        try:
            await self.runtime.run_blocking(lambda: env.reset(seed=seed, options=options))
        except ValueError as exc:
            raise InvalidArgument.for_field(field, str(exc)) from exc
        except Exception as exc:  # a client's state the environment cannot load or render
            log.warning("%s: a client state failed to load: %r", env.env_id, exc)
            raise InvalidArgument.for_field(
                field, f"is not a state of {env.env_id} ({type(exc).__name__})"
            ) from exc

    def _observe(
        self,
        session: Session,
        reply: envfarm_pb2.CreateSessionResponse | envfarm_pb2.ResetResponse,
        frames: int,
        slot: FrameSlot | None = None,
    ) -> None:
        """The first observation of an episode (always with its frame) and the goal image."""
        env = _visual(session)
        mode = session.settings.observation_mode
        session.frame = encoding.write(reply, env._observation(), mode, frames, slot=slot)
        if session.settings.goal_image:
            reply.goal_image.CopyFrom(convert.image(self._goal_pixels(env, "")))

    def _goal_pixels(self, env: VisGymEnv, strategy: str) -> np.ndarray[Any, Any]:
        solver = solver_for(env.env_id)
        # The goal, not a demonstration: plan without the episode's step limit.
        plan = _solve(lambda: solver.make_plan(env, strategy or None, max_actions=UNBOUNDED))
        work = env.clone()
        for action in plan.actions[:-1]:
            work._apply(parse_action(action))
        return work.render_image()

    def _session(self, session: Session) -> envfarm_pb2.Session:
        wire = convert.session(session, self.sessions.lifetime_s)
        if isinstance(session.env, TaskEpisode):
            wire.limits.CopyFrom(session.env.limits.to_proto())
        return wire

    async def Reset(
        self, request: envfarm_pb2.ResetRequest, context: Any
    ) -> envfarm_pb2.ResetResponse:
        frames = encoding.check(request.observation_encoding)
        session = self.sessions.get(_session_id(request.session_id))
        if isinstance(session.env, TaskEpisode):
            return await self._reset_task(session, request)
        if not request.frame_region:
            return await self._reset_visual(session, request, frames, None)
        with self._region_slot(request.frame_region, request.frame_slot, frames) as slot:
            return await self._reset_visual(session, request, frames, slot)

    async def _reset_visual(
        self,
        session: Session,
        request: envfarm_pb2.ResetRequest,
        frames: int,
        slot: FrameSlot | None,
    ) -> envfarm_pb2.ResetResponse:
        env = _visual(session)
        async with session.lock:
            if request.HasField("seed"):
                seed, state = request.seed, request.initial_state_json
            elif request.initial_state_json:
                seed, state = session.seed, request.initial_state_json
            else:  # replay the current initial state
                seed, state = session.seed, json.dumps(env.initial_state())
            await self._reset(env, seed, state, "initial_state_json")
            session.seed, session.total_reward = seed, 0.0
            reply = envfarm_pb2.ResetResponse()
            await self.runtime.run_blocking(self._observe, session, reply, frames, slot)
        reply.session.CopyFrom(self._session(session))
        return reply

    @contextlib.contextmanager
    def _region_slot(self, region_id: str, slot: int, frames: int) -> Iterator[FrameSlot]:
        """A request's frame region and slot, checked, kept mapped while the call runs."""
        _check_region_encoding(frames)
        with self.frame_regions.use(region_id, "frame_region") as region:
            if not 0 <= slot < region.slots:
                raise InvalidArgument.for_field(
                    "frame_slot", f"must be in [0, {region.slots - 1}] for this region"
                )
            yield region, slot

    async def _reset_task(
        self, session: Session, request: envfarm_pb2.ResetRequest
    ) -> envfarm_pb2.ResetResponse:
        episode = session.env
        assert isinstance(episode, TaskEpisode)
        if request.initial_state_json:
            raise InvalidArgument.for_field(
                "initial_state_json",
                "a task session replays its own task; create a new session to load another",
            )
        seed = request.seed if request.HasField("seed") else session.seed
        async with session.lock:
            obs = await self.runtime.run_blocking(episode.reset, seed)
            session.seed, session.total_reward = seed, 0.0
        return envfarm_pb2.ResetResponse(session=self._session(session), observation=obs)

    async def Step(
        self, request: envfarm_pb2.StepRequest, context: Any
    ) -> envfarm_pb2.StepResponse:
        frames = encoding.check(request.observation_encoding)
        session = self.sessions.get(_session_id(request.session_id))
        self.check_action(session, request.action, "action")
        reply = envfarm_pb2.StepResponse()
        omit = request.omit_unchanged_frame
        if not request.frame_region:
            await self.step_locked(session, request.action, frames, omit, reply.result)
            return reply
        with self._region_slot(request.frame_region, request.frame_slot, frames) as slot:
            await self.step_locked(session, request.action, frames, omit, reply.result, slot)
        return reply

    def check_action(self, session: Session, action: str, field: str) -> None:
        """Refuse a bad action before it runs: no step is taken, the session stays usable."""
        check_bytes(action, field=field, limit=MAX_ACTION_BYTES)
        if isinstance(session.env, TaskEpisode):
            try:
                session.env.check_action(action)
            except BadAction as exc:
                raise InvalidArgument.for_field(field, str(exc)) from exc

    async def step_locked(
        self,
        session: Session,
        action: str,
        frames: int,
        omit_unchanged: bool,
        result: envfarm_pb2.StepResult,
        slot: FrameSlot | None = None,
    ) -> None:
        """One step of `session` (its action checked) into `result`, under its lock."""
        async with session.lock:
            ensure_active(session)
            reward = await self.runtime.run_blocking(
                self.step_blocking, session, action, frames, omit_unchanged, result, slot
            )
            self.stepped(session, reward)

    def stepped(self, session: Session, reward: float) -> None:
        session.total_reward += reward
        session.touch()
        self.sessions.stepped(session)

    def step_blocking(
        self,
        session: Session,
        action: str,
        frames: int,
        omit_unchanged: bool,
        result: envfarm_pb2.StepResult,
        slot: FrameSlot | None = None,
    ) -> float:
        """Step in an executor thread, filling `result` in place (the reply's own slot:
        a raw frame is copied into the message, or into the frame region's `slot`, once)."""
        if isinstance(session.env, TaskEpisode):
            result.CopyFrom(_task_result(session.env.step(action), session.env.steps))
            return result.reward
        obs, reward, terminated, truncated, info = session.env.step(action)
        result.reward = float(reward)
        result.terminated = terminated
        result.truncated = truncated
        result.feedback = info["env_feedback"]
        result.step_index = info["step"]
        result.action_valid = info["valid_action"]
        extra = {k: v for k, v in info.items() if k not in ("env_feedback", "valid_action", "step")}
        if extra:  # most steps have none: no empty Struct to build and send
            result.info.CopyFrom(convert.struct(extra))
        mode = session.settings.observation_mode
        previous = session.frame
        session.frame = encoding.write(
            result, obs, mode, frames, previous=previous, omit_unchanged=omit_unchanged, slot=slot
        )
        return result.reward

    def _has_frame(self, session_id: str) -> bool:
        """Whether a step of this session returns a frame (unknown ids fail per item)."""
        try:
            session = self.sessions.get(session_id)
        except NotFound:
            return False
        text = session.settings.observation_mode == episode_pb2.OBSERVATION_MODE_TEXT
        return isinstance(session.env, VisGymEnv) and not text

    async def StepBatch(
        self, request: envfarm_pb2.StepBatchRequest, context: Any
    ) -> envfarm_pb2.StepBatchResponse:
        items = request.items
        if not items:
            raise InvalidArgument.for_field("items", "must hold at least one (session, action)")
        if len(items) > self.limits.max_batch_items:
            raise InvalidArgument.for_field(
                "items", f"at most {self.limits.max_batch_items} per batch"
            )
        seen: set[str] = set()
        for i, item in enumerate(items):
            _session_id(item.session_id, f"items[{i}].session_id")
            if item.session_id in seen:
                raise InvalidArgument.for_field(
                    f"items[{i}].session_id", "each session may appear once per batch"
                )
            seen.add(item.session_id)
        frames = encoding.check(request.observation_encoding)
        if request.frame_region:
            _check_region_encoding(frames)
            with self.frame_regions.use(request.frame_region, "frame_region") as region:
                if len(items) > region.slots:
                    raise InvalidArgument.for_field(
                        "items", f"more items than the frame region's {region.slots} slots"
                    )
                return await self._step_batch(request, frames, region)
        if frames == encoding.RAW:  # the response must fit: up to ~330 KiB per frame
            most = max(1, (self.limits.max_message_bytes - (1 << 20)) // encoding.MAX_FRAME_BYTES)
            if sum(self._has_frame(item.session_id) for item in items) > most:
                raise InvalidArgument.for_field(
                    "items", f"at most {most} image sessions per batch with raw frames"
                )
        return await self._step_batch(request, frames, None)

    async def _step_batch(
        self, request: envfarm_pb2.StepBatchRequest, frames: int, region: FrameRegion | None
    ) -> envfarm_pb2.StepBatchResponse:
        items = request.items
        batch = StepBatch(
            self, frames, request.omit_unchanged_frames, self.limits.batch_concurrency, region
        )
        try:
            for i, item in enumerate(items):
                await batch.admit(i, item)
            await batch.run()
        finally:
            batch.unlock()
        return batch.reply

    async def Solve(
        self, request: envfarm_pb2.SolveRequest, context: Any
    ) -> envfarm_pb2.SolveResponse:
        session = self.sessions.get(_session_id(request.session_id))
        if isinstance(session.env, TaskEpisode):
            return await self._solve_task(session, request)
        solver = solver_for(session.env_id)
        check_bytes(request.strategy, field="strategy", limit=MAX_NAME_BYTES)
        if request.strategy and request.strategy not in solver.strategies:
            raise InvalidArgument.for_field(
                "strategy", f"unknown strategy; choose from {', '.join(solver.strategies)}"
            )
        if not 0 <= request.detour_count <= MAX_DETOURS:
            raise InvalidArgument.for_field("detour_count", f"must be between 0 and {MAX_DETOURS}")
        strategy = request.strategy or solver.strategies[0]
        env = _visual(session)
        async with session.lock:
            ensure_active(session)
            plan = await self.runtime.run_blocking(
                lambda: _solve(
                    lambda: solver.make_plan(
                        env, strategy, detours=request.detour_count, seed=session.seed
                    )
                )
            )
            goal = None
            if request.include_goal_image:
                pixels = await self.runtime.run_blocking(self._goal_pixels, env, strategy)
                goal = convert.image(pixels)
        return envfarm_pb2.SolveResponse(
            actions=plan.actions, strategy=strategy, detour_count=plan.detours, goal_image=goal
        )

    async def _solve_task(
        self, session: Session, request: envfarm_pb2.SolveRequest
    ) -> envfarm_pb2.SolveResponse:
        """A fixed task's reference solution: the same actions for every seed."""
        episode = session.env
        assert isinstance(episode, TaskEpisode)
        _check_reference_request(request.strategy, request.detour_count, "strategy")
        if request.include_goal_image:
            raise InvalidArgument.for_field(
                "include_goal_image", "task environments have no goal image"
            )
        async with session.lock:
            ensure_active(session)
            actions = await self.runtime.run_blocking(episode.reference_solution)
        return envfarm_pb2.SolveResponse(actions=actions, strategy=REFERENCE)

    # ----- frame regions -----
    async def CreateFrameRegion(
        self, request: envfarm_pb2.CreateFrameRegionRequest, context: Any
    ) -> envfarm_pb2.CreateFrameRegionResponse:
        region = self.frame_regions.create(request.slots)
        return envfarm_pb2.CreateFrameRegionResponse(region=region.to_proto())

    async def DeleteFrameRegion(
        self, request: envfarm_pb2.DeleteFrameRegionRequest, context: Any
    ) -> envfarm_pb2.DeleteFrameRegionResponse:
        if not request.region_id:
            raise InvalidArgument.for_field("region_id", "is required")
        self.frame_regions.delete(request.region_id)
        return envfarm_pb2.DeleteFrameRegionResponse()

    async def GetSession(
        self, request: envfarm_pb2.GetSessionRequest, context: Any
    ) -> envfarm_pb2.GetSessionResponse:
        session = self.sessions.get(_session_id(request.session_id))
        return envfarm_pb2.GetSessionResponse(session=self._session(session))

    async def CloseSession(
        self, request: envfarm_pb2.CloseSessionRequest, context: Any
    ) -> envfarm_pb2.CloseSessionResponse:
        session = self.sessions.get(_session_id(request.session_id))
        async with session.lock:  # let an in-flight step finish first
            if isinstance(session.env, TaskEpisode):  # free the sandbox off the loop
                await self.runtime.run_blocking(session.env.close)
            self.sessions.close(session.id)
        return envfarm_pb2.CloseSessionResponse(session=self._session(session))

    async def ExportState(
        self, request: envfarm_pb2.ExportStateRequest, context: Any
    ) -> envfarm_pb2.ExportStateResponse:
        session = self.sessions.get(_session_id(request.session_id))
        if isinstance(session.env, TaskEpisode):
            return envfarm_pb2.ExportStateResponse(
                env_id=session.env_id,
                difficulty=convert.difficulty_out(session.env.difficulty),
                seed=session.seed,
                state_json=json.dumps(session.env.initial_state()),
            )
        return envfarm_pb2.ExportStateResponse(
            env_id=convert.wire_id(session.env_id),
            difficulty=convert.difficulty_out(session.env.difficulty),
            seed=session.seed,
            state_json=json.dumps(session.env.initial_state()),
        )

    async def ExportDemonstrations(
        self, request: envfarm_pb2.ExportDemonstrationsRequest, context: Any
    ) -> AsyncIterator[envfarm_pb2.ExportDemonstrationsResponse]:
        check_bytes(request.env_id, field="env_id", limit=MAX_PREFIX_BYTES)
        family = self._family(request.env_id)
        if family is not None:
            async for item in self._task_demonstrations(family, request):
                yield item
            return
        env_id = convert.resolve_env_id(request.env_id)
        difficulty: Difficulty = convert.difficulty_in(request.difficulty)
        solver = solver_for(env_id)
        if not request.seeds:
            raise InvalidArgument.for_field("seeds", "must hold at least one seed")
        if len(request.seeds) > MAX_DEMO_SEEDS:
            raise InvalidArgument.for_field("seeds", f"at most {MAX_DEMO_SEEDS} per call")
        check_count(request.strategies, field="strategies", limit=len(solver.strategies))
        demos = len(request.seeds) * max(len(request.strategies), 1)
        if demos > self.limits.max_demonstrations:
            raise InvalidArgument.for_field(
                "seeds",
                f"{len(request.seeds)} seeds x {len(request.strategies) or 1} strategies is "
                f"{demos} demonstrations; the limit is {self.limits.max_demonstrations}",
            )
        for i, strategy in enumerate(request.strategies):
            if strategy not in solver.strategies:
                raise InvalidArgument.for_field(
                    f"strategies[{i}]", f"unknown; choose from {', '.join(solver.strategies)}"
                )
        if not 0 <= request.detour_count <= MAX_DETOURS:
            raise InvalidArgument.for_field("detour_count", f"must be between 0 and {MAX_DETOURS}")
        _check_settings(request.settings)
        strategies = list(request.strategies) or [solver.strategies[0]]
        for seed in request.seeds:
            for strategy in strategies:
                demo = await self.runtime.run_blocking(
                    lambda s=seed, st=strategy: demonstration_or_none(  # type: ignore[misc]
                        env_id,
                        difficulty,
                        s,
                        strategy=st,
                        detours=request.detour_count,
                        include_failures=request.include_failures,
                    )
                )
                if demo is None:
                    continue  # refused by the step limit, or failed: not a demonstration
                conversation = await self.runtime.run_blocking(
                    self._conversation, demo, request.settings
                )
                yield envfarm_pb2.ExportDemonstrationsResponse(
                    seed=seed,
                    strategy=strategy,
                    conversation=conversation,
                    final_reward=demo.final_reward,
                    detour_count=demo.detours,
                )

    async def _task_demonstrations(
        self, family: TaskFamily, request: envfarm_pb2.ExportDemonstrationsRequest
    ) -> AsyncIterator[envfarm_pb2.ExportDemonstrationsResponse]:
        """The reference solution, played in a fresh sandbox per seed."""
        if not request.seeds:
            raise InvalidArgument.for_field("seeds", "must hold at least one seed")
        most = min(MAX_TASK_DEMO_SEEDS, self.limits.max_demonstrations)
        if len(request.seeds) > most:
            raise InvalidArgument.for_field(
                "seeds", f"at most {most} per call (every seed plays the same fixed task)"
            )
        check_count(request.strategies, field="strategies", limit=1)
        _check_reference_request(
            request.strategies[0] if request.strategies else "",
            request.detour_count,
            "strategies[0]",
        )
        _check_task_settings(request.settings)
        for seed in request.seeds:
            try:
                demo: TaskDemonstration = await self.runtime.run_blocking(
                    family.demonstrate, request.env_id, seed
                )
            except UnknownTask:  # deleted while streaming
                raise _no_task(family, request.env_id, "env_id") from None
            if not (demo.succeeded or request.include_failures):
                continue
            yield envfarm_pb2.ExportDemonstrationsResponse(
                seed=seed,
                strategy=REFERENCE,
                conversation=_task_conversation(demo),
                final_reward=demo.final_reward,
            )

    @staticmethod
    def _conversation(
        demo: Demonstration, settings: episode_pb2.EpisodeSettings
    ) -> chat_pb2.Conversation:
        messages = [convert.text_message(chat_pb2.ROLE_SYSTEM, demo.instructions)]
        previous = ""
        for turn in demo.turns:
            obs = convert.observation(turn.observation, settings.observation_mode)
            parts = []
            if settings.text_feedback and previous:
                parts.append(chat_pb2.ContentPart(text=f"Feedback: {previous}"))
            if obs.HasField("image"):
                parts.append(chat_pb2.ContentPart(image=obs.image))
            if obs.text:
                parts.append(chat_pb2.ContentPart(text=obs.text))
            messages.append(chat_pb2.ChatMessage(role=chat_pb2.ROLE_USER, content=parts))
            messages.append(convert.text_message(chat_pb2.ROLE_ASSISTANT, turn.action))
            previous = turn.feedback
        return chat_pb2.Conversation(messages=messages)

    async def GenerateTasks(
        self, request: envfarm_pb2.GenerateTasksRequest, context: Any
    ) -> operations_pb2.Operation:
        if self.suites is None:
            raise Unimplemented(
                "terminal task generation is off on this server (no sandbox backend)"
            )
        return await self.suites.generate(request)

    async def DeleteTaskSuite(
        self, request: envfarm_pb2.DeleteTaskSuiteRequest, context: Any
    ) -> envfarm_pb2.DeleteTaskSuiteResponse:
        if self.suites is None:
            raise Unimplemented("terminal task suites are off on this server")
        return await self.suites.delete(request)


class TaskSuites(Protocol):
    """GenerateTasks and DeleteTaskSuite (the terminal family's generated suites)."""

    async def generate(
        self, request: envfarm_pb2.GenerateTasksRequest
    ) -> operations_pb2.Operation: ...

    async def delete(
        self, request: envfarm_pb2.DeleteTaskSuiteRequest
    ) -> envfarm_pb2.DeleteTaskSuiteResponse: ...


def _no_task(family: TaskFamily, env_id: str, field: str) -> NotFound:
    return NotFound(
        f"{field}: no task {echo(env_id)} (deleted, or never generated); "
        f"ListEnvironments with id_prefix {family.prefix!r} lists them",
        resource_type="environment",
        resource_name=env_id[:MAX_PREFIX_BYTES],
    )


def _visual(session: Session) -> VisGymEnv:
    assert isinstance(session.env, VisGymEnv), "a task session took a VisGym path"
    return session.env


def _check_task_settings(settings: episode_pb2.EpisodeSettings) -> None:
    """Task environments observe text (and media in notebook output), never a goal image."""
    _check_settings(settings)
    if settings.goal_image:
        raise InvalidArgument.for_field("settings.goal_image", "task environments have none")


# The least a client may lower a task's limits to (0 keeps the task's own): below these no
# shell or test can run, which is the client's mistake, not an unavailable sandbox.
MIN_TASK_LIMITS = {
    "memory_bytes": 64 << 20,
    "storage_bytes": 1 << 20,
    "step_timeout": 0.1,
    "episode_timeout": 1.0,
    "test_timeout": 1.0,
}


def _check_task_limits(limits: envfarm_pb2.ResourceLimits) -> None:
    for name in ("memory_bytes", "storage_bytes"):
        value = getattr(limits, name)
        if value and value < MIN_TASK_LIMITS[name]:
            raise InvalidArgument.for_field(
                f"limits.{name}", f"must be 0 (the task's own) or >= {MIN_TASK_LIMITS[name]}"
            )
    for name in ("step_timeout", "episode_timeout", "test_timeout"):
        seconds = getattr(limits, name).ToNanoseconds() / 1e9 if limits.HasField(name) else 0
        if seconds and seconds < MIN_TASK_LIMITS[name]:
            raise InvalidArgument.for_field(
                f"limits.{name}", f"must be 0 (the task's own) or >= {MIN_TASK_LIMITS[name]} s"
            )
    if limits.network:
        raise InvalidArgument.for_field("limits.network", "task sandboxes have no network")


def _check_reference_request(strategy: str, detours: int, field: str) -> None:
    if strategy not in ("", REFERENCE):
        raise InvalidArgument.for_field(
            field, f"unknown strategy {echo(strategy)}; a fixed task has only {REFERENCE!r}"
        )
    if detours:
        raise InvalidArgument.for_field(
            "detour_count", "a fixed task's reference solution takes no detours"
        )


def _task_result(step: TaskStep, step_index: int) -> envfarm_pb2.StepResult:
    result = envfarm_pb2.StepResult(
        observation=step.observation,
        reward=step.reward,
        terminated=step.terminated,
        truncated=step.truncated,
        feedback=step.feedback,
        info=convert.struct(step.info),
        step_index=step_index,
        action_valid=True,
    )
    if step.outcome is not None:
        result.outcome.CopyFrom(step.outcome.to_proto())
    return result


def _task_conversation(demo: TaskDemonstration) -> chat_pb2.Conversation:
    messages = [convert.text_message(chat_pb2.ROLE_SYSTEM, demo.instructions)]
    for turn in demo.turns:
        parts = [chat_pb2.ContentPart(text=turn.observation.text)]
        if turn.observation.HasField("image"):
            parts.append(chat_pb2.ContentPart(image=turn.observation.image))
        messages.append(chat_pb2.ChatMessage(role=chat_pb2.ROLE_USER, content=parts))
        messages.append(convert.text_message(chat_pb2.ROLE_ASSISTANT, turn.action))
    return chat_pb2.Conversation(messages=messages)

"""Multi-turn agent episodes against envfarm: observation -> chat prompt -> action -> Step.

Each turn records exactly what a GRPO/PPO trainer needs: the prompt as token ids, the
completion's token ids with the logprob of every sampled token, the policy version that
generated it, and the environment's reward and feedback. Episodes run concurrently (a
semaphore bounds them); `stream` keeps N in flight and yields each as it finishes
(LongCat's asynchronous rollouts), cancelling episodes that fall more than
`max_staleness` policy versions behind.

envfarm is dialled (with the stack token) only at the operator's targets: the default
`envfarm_target` or one of `envfarm_peers`, chosen by name (or by exactly that address)
in `spec.envfarm_target`; anything else is PERMISSION_DENIED before any connection. On
SIGTERM both calls stop starting episodes and end with UNAVAILABLE + RetryInfo
(StreamEpisodes first delivers the episodes already finished).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np
from google.protobuf import duration_pb2, timestamp_pb2
from numpy.typing import NDArray

from gantry.core import errors
from gantry.core.codecs import image_to_array
from gantry.core.errors import GantryError, InvalidArgument
from gantry.core.peers import Peers
from gantry.core.routing import AioRoutingChannel
from gantry.core.tracing import stage
from gantry.proto.common.v1 import chat_pb2, episode_pb2, trajectory_pb2
from gantry.proto.envfarm.v1 import envfarm_pb2, envfarm_pb2_grpc
from gantry.proto.rollout.v1 import rollout_pb2
from gantry.rollout import prompts
from gantry.rollout.calls import cancel_all, drained
from gantry.rollout.context import fit_history
from gantry.rollout.engine.types import PromptTooLong, Sample, SamplingParams

if TYPE_CHECKING:
    from gantry.core.server import Runtime
    from gantry.rollout.generator import Generator
    from gantry.rollout.model import ServedModel
    from gantry.rollout.settings import RolloutSettings
    from gantry.rollout.vlm import VlmGenerator

# Frames as WebP lossless: the same pixels as PNG, fewer bytes and less codec time. They are
# kept in trajectories as sent, so raw pixels (~330 KiB a frame) are not asked for.
FRAMES = envfarm_pb2.OBSERVATION_ENCODING_WEBP_LOSSLESS
DEFAULT_CONCURRENCY = 16
Outcome = trajectory_pb2.Trajectory | rollout_pb2.EpisodeError  # one episode, played or failed


def extract_action(completion: str) -> str:
    """The action in a completion: the text after "Action:" if present, else its first line."""
    for line in completion.splitlines():
        if line.strip().lower().startswith("action:"):
            return line.split(":", 1)[1].strip()
    lines = [line.strip() for line in completion.splitlines() if line.strip()]
    return lines[0] if lines else completion.strip()


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def _visual(spec: rollout_pb2.EpisodeSpec) -> bool:
    return spec.settings.observation_mode in (
        episode_pb2.OBSERVATION_MODE_IMAGE,
        episode_pb2.OBSERVATION_MODE_IMAGE_AND_TEXT,
    )


class Stale(Exception):
    """The episode fell too many policy versions behind."""


class EpisodeRunner:
    def __init__(self, model: ServedModel, runtime: Runtime, settings: RolloutSettings) -> None:
        self.model = model
        self.runtime = runtime
        self.settings = settings
        self.peers = Peers("envfarm", settings.envfarm_target, settings.envfarm_peers)
        self._pruners = Peers("pruner")  # pruning is not served yet: no pruner is configured
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._instructions: dict[tuple[str, str], str] = {}

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

    def _envfarm(self, target: str) -> envfarm_pb2_grpc.EnvFarmServiceAsyncStub:
        """A stub for `target`, an address already resolved through `self.peers`: one
        envfarm, or several replicas (`dns:///` headless Service, `name=host:port,...`)
        whose sessions' calls go to their owners (gantry.core.routing)."""
        assert target in self.peers.targets()
        if target not in self._channels:
            token = self.settings.resolved_envfarm_token()
            self._channels[target] = AioRoutingChannel(target, token=token, default_timeout_s=60)
        return envfarm_pb2_grpc.EnvFarmServiceStub(self._channels[target])

    # ----- validation -----
    def _check(self, spec: rollout_pb2.EpisodeSpec, *, continuous: bool = False) -> str:
        """Validate the spec before any work; returns the envfarm address to dial."""
        self.model.limits.episode_spec(spec, continuous=continuous)
        target = self.peers.resolve(spec.envfarm_target, field="spec.envfarm_target")
        if _visual(spec) and self.model.vlm is None:
            raise InvalidArgument.for_field(
                "spec.settings.observation_mode",
                "image observations need a vision-language model; this server has none "
                "(set vlm_model_path) - use OBSERVATION_MODE_TEXT",
            )
        if spec.settings.goal_image and not _visual(spec):
            raise InvalidArgument.for_field(
                "spec.settings.goal_image", "a goal image needs an image observation mode"
            )
        if spec.pruning.enabled:
            raise InvalidArgument.for_field(
                "spec.pruning.enabled",
                "observation pruning needs the pruner service (not yet served)",
            )
        if spec.pruning.pruner_target:
            self._pruners.resolve(spec.pruning.pruner_target, field="spec.pruning.pruner_target")
        prompts.sampling(spec.sampling, "spec.sampling")
        return target

    def _jobs(self, spec: rollout_pb2.EpisodeSpec, cycle: bool) -> Iterator[tuple[int, str, int]]:
        seeds = list(spec.seeds)
        per_seed = spec.episodes_per_seed or 1
        source = itertools.cycle(seeds) if (cycle and seeds) else iter(seeds)
        if not seeds:
            source = (
                (secrets.randbits(63) for _ in itertools.count())
                if cycle
                else iter([secrets.randbits(63)])
            )
        for seed in source:
            group = hashlib.sha1(f"{spec.env_id}:{seed}:{uuid.uuid4().hex}".encode()).hexdigest()[
                :16
            ]
            for index in range(per_seed):
                yield seed, group, index

    def _concurrency(self, spec: rollout_pb2.EpisodeSpec) -> int:
        return min(spec.concurrency or DEFAULT_CONCURRENCY, self.settings.max_episode_concurrency)

    def _drained(self, what: str) -> GantryError:
        return drained(self.settings.drain_retry_after_s, what)

    # ----- RunEpisodes -----
    async def run(
        self, spec: rollout_pb2.EpisodeSpec, *, client: str = ""
    ) -> rollout_pb2.RunEpisodesResponse:
        target = self._check(spec)
        limit = self._concurrency(spec)
        self.model.generator.check_capacity(client, limit)
        gate = asyncio.Semaphore(limit)
        draining = self.runtime.draining

        async def bounded(seed: int, group: str, index: int) -> Outcome:
            async with gate:
                if draining.is_set():  # stop taking new work
                    raise self._drained("no new episode was started.")
                return await self._attempt(
                    spec, target, seed, group, index, max_staleness=0, client=client
                )

        tasks = [asyncio.ensure_future(bounded(*job)) for job in self._jobs(spec, cycle=False)]
        everything: asyncio.Future[list[Outcome]] = asyncio.gather(*tasks)
        stop: asyncio.Future[Any] = asyncio.ensure_future(draining.wait())
        try:
            await asyncio.wait({everything, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not everything.done():
                raise self._drained(
                    "the episodes in flight were stopped; RunEpisodes returns all or nothing."
                )
            outcomes = everything.result()
        finally:
            await cancel_all([*tasks, stop])
            everything.cancel()
            await asyncio.gather(everything, return_exceptions=True)
        response = rollout_pb2.RunEpisodesResponse()
        prompt_tokens = completion_tokens = 0
        for outcome in outcomes:
            if isinstance(outcome, rollout_pb2.EpisodeError):
                response.errors.append(outcome)
            else:
                response.trajectories.append(outcome)
                prompt_tokens += outcome.usage.prompt_tokens
                completion_tokens += outcome.usage.completion_tokens
        response.usage.CopyFrom(
            chat_pb2.Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            )
        )
        return response

    # ----- StreamEpisodes -----
    async def stream(
        self,
        spec: rollout_pb2.EpisodeSpec,
        *,
        max_staleness: int,
        continuous: bool,
        client: str = "",
    ) -> AsyncIterator[rollout_pb2.StreamEpisodesResponse]:
        if max_staleness < 0:
            raise InvalidArgument.for_field("max_staleness", "must be >= 0 (0 = unbounded)")
        target = self._check(spec, continuous=continuous)
        limit = self._concurrency(spec)
        self.model.generator.check_capacity(client, limit)
        jobs = self._jobs(spec, cycle=continuous)
        # Any: asyncio.wait takes these with the drain future in one set.
        in_flight: set[asyncio.Future[Any]] = set()
        stop = asyncio.ensure_future(self.runtime.draining.wait())

        def refill() -> None:
            while len(in_flight) < limit and not stop.done():
                job = next(jobs, None)
                if job is None:
                    return
                in_flight.add(
                    asyncio.ensure_future(
                        self._attempt(
                            spec, target, *job, max_staleness=max_staleness, client=client
                        )
                    )
                )

        def message_for(outcome: Outcome) -> rollout_pb2.StreamEpisodesResponse:
            message = rollout_pb2.StreamEpisodesResponse(
                current_policy_version=self.model.generator.policy_version
            )
            if isinstance(outcome, rollout_pb2.EpisodeError):
                message.error.CopyFrom(outcome)
            else:
                message.trajectory.CopyFrom(outcome)
            return message

        refill()
        try:
            while in_flight:
                done, _ = await asyncio.wait(
                    {*in_flight, stop}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done - {stop}:
                    in_flight.discard(task)
                    yield message_for(task.result())
                if stop.done():
                    # Draining: deliver what has finished, stop the rest, tell the client.
                    finished = [t for t in in_flight if t.done()]
                    for task in finished:
                        in_flight.discard(task)
                        yield message_for(task.result())
                    raise self._drained(
                        "finished episodes were delivered; the ones in flight were stopped."
                    )
                refill()  # generation never waits for the slowest episode
        finally:
            await cancel_all([*in_flight, stop])

    # ----- one episode -----
    async def _attempt(
        self,
        spec: rollout_pb2.EpisodeSpec,
        target: str,
        seed: int,
        group: str,
        index: int,
        *,
        max_staleness: int,
        client: str = "",
    ) -> Outcome:
        try:
            with stage("rollout.episode", env_id=spec.env_id, seed=seed, group_index=index) as span:
                coro = self._play(spec, target, seed, group, index, max_staleness, client)
                if spec.HasField("episode_timeout"):
                    timeout = spec.episode_timeout.ToNanoseconds() / 1e9
                    trajectory = await asyncio.wait_for(coro, timeout)
                else:
                    trajectory = await coro
                span.set_attribute("steps", len(trajectory.turns))
                span.set_attribute("reward", trajectory.final_reward)
                span.set_attribute("terminated", trajectory.terminated)
                span.set_attribute("policy_version", trajectory.policy_version)
                return trajectory
        except GantryError as exc:
            return rollout_pb2.EpisodeError(seed=seed, group_index=index, status=exc.to_status())
        except grpc.RpcError as exc:
            status = errors.from_rpc_error(exc).to_status()
            return rollout_pb2.EpisodeError(seed=seed, group_index=index, status=status)
        except TimeoutError:
            error = errors.DeadlineExceeded("the episode exceeded spec.episode_timeout")
            return rollout_pb2.EpisodeError(seed=seed, group_index=index, status=error.to_status())

    async def _look(
        self,
        spec: rollout_pb2.EpisodeSpec,
        task: str,
        history: list[dict[str, str]],
        observation: episode_pb2.Observation,
        goal: NDArray[np.uint8] | None,
        params: SamplingParams,
    ) -> tuple[list[int], Sample]:
        """One VLM turn: earlier turns as text, the current observation (and goal) as images.

        Only the current observation's image is shown, which bounds the prompt; earlier
        turns keep their text (and the window applies to them as in text mode).
        """
        window = spec.settings.history_window
        earlier = history[:-1] if window <= 0 else history[:-1][-2 * window :]
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": [{"type": "text", "text": task}]}
        ]
        for message in earlier:
            messages.append(
                {"role": message["role"], "content": [{"type": "text", "text": message["content"]}]}
            )
        parts: list[dict[str, str]] = []
        images = []
        if goal is not None:
            parts += [{"type": "text", "text": "Goal state:"}, {"type": "image"}]
            images.append(goal)
        parts.append({"type": "image"})
        images.append(image_to_array(observation.image, field="observation.image"))
        if history[-1]["content"]:
            parts.append({"type": "text", "text": history[-1]["content"]})
        messages.append({"role": "user", "content": parts})
        assert self.model.vlm is not None  # checked by _check
        try:
            return await self.model.vlm.chat(messages, images, params)
        except PromptTooLong as exc:
            raise InvalidArgument.for_field("spec.sampling.max_tokens", str(exc)) from exc

    async def _instructions_for(
        self, stub: envfarm_pb2_grpc.EnvFarmServiceAsyncStub, target: str, env_id: str
    ) -> str:
        key = (target, env_id)
        if key not in self._instructions:
            listed = await stub.ListEnvironments(  # one page would miss most of a catalogue
                envfarm_pb2.ListEnvironmentsRequest(id_prefix=env_id)
            )
            for env in listed.environments:
                self._instructions[(target, env.id)] = env.instructions
        return self._instructions.get(key, "")

    async def _play(
        self,
        spec: rollout_pb2.EpisodeSpec,
        target: str,
        seed: int,
        group: str,
        index: int,
        max_staleness: int,
        client: str,
    ) -> trajectory_pb2.Trajectory:
        visual = _visual(spec)
        text_generator = self.model.generator
        # The policy whose version the trajectory records: _check refused image modes
        # without a VLM.
        policy: Generator | VlmGenerator = (
            self.model.vlm if visual and self.model.vlm is not None else text_generator
        )
        stub = self._envfarm(target)
        settings = episode_pb2.EpisodeSettings()
        settings.CopyFrom(spec.settings)
        if not visual:
            settings.observation_mode = episode_pb2.OBSERVATION_MODE_TEXT
        created = await stub.CreateSession(
            envfarm_pb2.CreateSessionRequest(
                env_id=spec.env_id,
                difficulty=spec.difficulty,
                seed=seed,
                settings=settings,
                observation_encoding=FRAMES,
            )
        )
        session = created.session
        started = time.time()
        task = spec.system_prompt or await self._instructions_for(stub, target, spec.env_id)
        params = prompts.sampling(spec.sampling, "spec.sampling")
        params = type(params)(**{**params.__dict__, "n": 1})
        trajectory = trajectory_pb2.Trajectory(
            id=uuid.uuid4().hex,
            group_id=group,
            env_id=spec.env_id,
            difficulty=session.difficulty,
            seed=seed,
            settings=spec.settings,
            task=task,
            policy_version=policy.policy_version,
            start_time=_timestamp(started),
        )
        history: list[dict[str, str]] = []
        observation, feedback = created.observation, ""
        goal = image_to_array(created.goal_image) if created.HasField("goal_image") else None
        max_turns = spec.max_turns or session.max_steps
        prompt_tokens = completion_tokens = 0
        try:
            for turn_index in range(max_turns):
                if (
                    max_staleness
                    and policy.policy_version - trajectory.policy_version > max_staleness
                ):
                    raise Stale()
                user = (
                    observation.text
                    if not (spec.settings.text_feedback and feedback)
                    else f"Feedback: {feedback}\n{observation.text}"
                )
                history.append({"role": "user", "content": user})
                if visual:
                    ids, sample = await self._look(spec, task, history, observation, goal, params)
                else:
                    ids = await fit_history(
                        text_generator,
                        task,
                        history,
                        spec.settings.history_window,
                        spec.context_strategy,
                        params.max_tokens,
                        run=self.runtime.run_blocking,
                        client=client,
                    )
                    sample = Sample(0)
                    async for delta in text_generator.generate(ids, params, client=client):
                        sample.add(delta)
                action = extract_action(sample.text)
                history.append({"role": "assistant", "content": sample.text})
                stepped = await stub.Step(
                    envfarm_pb2.StepRequest(
                        session_id=session.id, action=action, observation_encoding=FRAMES
                    )
                )
                result = stepped.result
                assert sample.finish_reason is not None
                trajectory.turns.append(
                    trajectory_pb2.Turn(
                        index=turn_index,
                        observation=observation,
                        prompt_token_ids=ids,
                        completion_text=sample.text,
                        action=action,
                        completion=chat_pb2.TokenSequence(
                            token_ids=sample.token_ids, logprobs=sample.logprobs
                        ),
                        finish_reason=prompts.FINISH[sample.finish_reason],
                        reward=result.reward,
                        feedback=result.feedback,
                        info=result.info,
                        policy_version=sample.policy_version,
                    )
                )
                prompt_tokens += len(ids)
                completion_tokens += len(sample.token_ids)
                trajectory.final_reward += result.reward
                observation, feedback = result.observation, result.feedback
                if result.terminated or result.truncated:
                    trajectory.terminated, trajectory.truncated = (
                        result.terminated,
                        result.truncated,
                    )
                    break
            else:
                trajectory.truncated = True  # turn limit
        except Stale:
            trajectory.truncated = True
            trajectory.metadata.update({"stale": True})
        finally:
            with contextlib.suppress(grpc.RpcError):
                await stub.CloseSession(envfarm_pb2.CloseSessionRequest(session_id=session.id))
        trajectory.usage.CopyFrom(
            chat_pb2.Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            )
        )
        elapsed = duration_pb2.Duration()
        elapsed.FromNanoseconds(int((time.time() - started) * 1e9))
        trajectory.duration.CopyFrom(elapsed)
        return trajectory

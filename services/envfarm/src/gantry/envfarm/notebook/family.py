"""The NOTEBOOK task family (DSGym): data-science tasks played in a sandboxed kernel.

An action is a code cell, run in the session's stateful kernel (kernel.py); the
observation is the cell's output (text, truncated; the first figure as the image). The
finish action is `submit <answer>` for analysis tasks and `submit` for prediction tasks
(which are graded from the workspace's submission.csv against labels kept on the host).
The workspace is the kernel's working directory; the task's data sit read-only in its
`data/` directory (a read-only mount where the backend mounts, read-only copies on the
unsafe subprocess backend, which cannot).

Where the kernel's Python comes from depends on the backend: the service's own
interpreter on `subprocess`; on `bubblewrap` the system /usr/bin/python3 (visible inside)
with the service's site-packages mounted read-only at /opt/gantry/site-packages (same
Python minor version needed); on docker and kubernetes the image's `python3`, which must
carry pandas, scikit-learn, matplotlib, ipykernel and jupyter-client.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import sys
import sysconfig
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from gantry.core.errors import FailedPrecondition, Unavailable
from gantry.envfarm.envs.base import Difficulty
from gantry.envfarm.family import (
    REFERENCE,
    BadAction,
    EpisodeLimits,
    Outcome,
    TaskEpisode,
    TaskFamily,
    UnknownTask,
)
from gantry.envfarm.notebook import tasks as catalogue
from gantry.envfarm.notebook.datasets import DATASETS
from gantry.envfarm.notebook.grading import (
    ANSWER_FORMATS,
    AnswerFormatError,
    answer_correct,
    parse_answer,
    score_submission,
)
from gantry.envfarm.notebook.kernel import CellOutput, Kernel, KernelError, KernelKind
from gantry.envfarm.notebook.shortcut import shortcut
from gantry.envfarm.notebook.tasks import Task
from gantry.envfarm.sandbox import (
    Sandbox,
    SandboxBackend,
    SandboxError,
    SandboxLimits,
    SandboxSpec,
    SandboxUnavailable,
)
from gantry.proto.common.v1 import episode_pb2, media_pb2
from gantry.proto.envfarm.v1 import envfarm_pb2

FINISH = "submit"
MAX_CELL_BYTES = 32 << 10
MAX_SUBMISSION_BYTES = 8 << 20
MAX_STEPS: dict[str, int] = {"analysis": 20, "prediction": 30}
DIFFICULTY: dict[str, Difficulty] = {"analysis": "easy", "prediction": "hard"}
DEFAULT_LIMITS = EpisodeLimits(
    step_timeout_s=30.0,
    episode_timeout_s=1800.0,
    test_timeout_s=30.0,
    memory_bytes=4 << 30,  # address space: a kernel with pandas, sklearn and matplotlib
    storage_bytes=64 << 20,
    cpus=1.0,
)
_ALLOWED_CONTROL = {"\n", "\t", "\r"}
MOUNTED_PACKAGES = "/opt/gantry/site-packages"
MOUNT_WORKSPACE = "/workspace"  # where mounting backends put the workspace
NOTEBOOK_PROCESSES = 256  # a Jupyter kernel runs a dozen threads, each counted


@dataclass(frozen=True)
class KernelRuntime:
    """The Python a kernel runs with inside the sandbox, and what to mount for it."""

    python: str
    site_packages: str = ""  # host path, mounted read-only at MOUNTED_PACKAGES

    @staticmethod
    def for_backend(name: str) -> KernelRuntime:
        if name == "subprocess":
            return KernelRuntime(sys.executable)
        if name == "bubblewrap":
            return KernelRuntime("/usr/bin/python3", sysconfig.get_paths()["purelib"])
        return KernelRuntime("python3")


class NotebookFamily(TaskFamily):
    """The seeded DSGym suite (every template on every data set it fits, minus the
    questions the shortcut filter flags)."""

    kind = envfarm_pb2.ENVIRONMENT_KIND_NOTEBOOK
    prefix = catalogue.PREFIX

    def __init__(
        self,
        backend: Callable[[], SandboxBackend],
        *,
        kernel: KernelKind | Literal["auto"] = "auto",
        runtime: KernelRuntime | None = None,
        data_root: str | None = None,
    ) -> None:
        self._make_backend = backend
        self._backend: SandboxBackend | None = None
        self.kernel = kernel
        self._runtime = runtime
        self._data_root = data_root
        self._owned_root: str | None = None
        self._tasks: dict[str, Task] | None = None
        self._lock = threading.Lock()

    def backend(self) -> SandboxBackend:
        """The sandbox backend, probed on first use (FAILED_PRECONDITION when it cannot
        run here)."""
        with self._lock:
            if self._backend is None:
                backend = self._make_backend()
                try:
                    backend.probe()
                except SandboxUnavailable as exc:
                    raise FailedPrecondition(
                        f"notebook tasks need a sandbox and the {backend.name} backend cannot "
                        f"run here: {exc}",
                        reason="SANDBOX_UNAVAILABLE",
                    ) from exc
                self._backend = backend
            return self._backend

    @property
    def runtime(self) -> KernelRuntime:
        return self._runtime or KernelRuntime.for_backend(self.backend().name)

    # ----- catalogue -----
    def tasks(self) -> dict[str, Task]:
        """The suite by id (built on first use, a few seconds)."""
        with self._lock:
            if self._tasks is None:
                kept = [t for t in catalogue.all_tasks() if shortcut(t) is None]
                self._tasks = {t.id: t for t in kept}
            return self._tasks

    def ids(self) -> list[str]:
        return sorted(self.tasks())

    def task(self, env_id: str) -> Task:
        try:
            return self.tasks()[env_id]
        except KeyError:
            raise UnknownTask(env_id) from None

    def environment(self, env_id: str) -> envfarm_pb2.Environment:
        task = self.task(env_id)
        return envfarm_pb2.Environment(
            id=task.id,
            kind=self.kind,
            description=f"{task.type} task on {task.dataset}: {task.question}",
            instructions=instructions(task),
            action_grammar=(
                "a Python code cell (IPython syntax), run in the session's kernel; "
                f"or the finish action {FINISH!r}"
            ),
            action_examples=[
                "import pandas as pd\ndf = pd.read_csv("
                + repr(task.data_paths[0])
                + ")\ndf.describe()",
                finish_example(task),
            ],
            difficulties=[
                envfarm_pb2.DifficultyLevel(
                    difficulty=_wire_difficulty(DIFFICULTY[task.type]),
                    max_steps=MAX_STEPS[task.type],
                    description=f"{task.type} task",
                )
            ],
            observation_modes=[episode_pb2.OBSERVATION_MODE_TEXT],
            supports_text_feedback=True,
            has_solver=True,
            solver_strategies=[REFERENCE],
            limits=DEFAULT_LIMITS.to_proto(),
            finish_action=FINISH,
            finish_action_format=finish_format(task),
            seed_semantics=envfarm_pb2.SEED_SEMANTICS_FIXED_TASK,
            solver_kind=envfarm_pb2.SOLVER_KIND_REFERENCE,
            task=envfarm_pb2.TaskMetadata(
                suite="dsgym",
                category=task.template,
                type=(
                    envfarm_pb2.TASK_TYPE_ANALYSIS
                    if task.type == "analysis"
                    else envfarm_pb2.TASK_TYPE_PREDICTION
                ),
                metric=task.metric,
                higher_is_better=task.higher_is_better,
                data_paths=task.data_paths,
                # relative to the workspace, the kernel's working directory
                submission_path=catalogue.SUBMISSION if task.type == "prediction" else "",
                knobs={"dataset": task.dataset, **task.knobs},
                generation_seed=task.seed,
                source=f"template:{task.template}",
            ),
        )

    # ----- episodes -----
    def make(
        self,
        env_id: str,
        *,
        max_steps: int | None,
        limits: envfarm_pb2.ResourceLimits,
        state: dict[str, Any] | None = None,
    ) -> NotebookEpisode:
        task = self.task(env_id) if state is None else self._task_from_state(env_id, state)
        steps = MAX_STEPS[task.type] if max_steps is None else max_steps
        return NotebookEpisode(self, task, steps, DEFAULT_LIMITS.override(limits))

    def _task_from_state(self, env_id: str, state: dict[str, Any]) -> Task:
        if set(state) != {"task"} or state["task"] != env_id:
            raise ValueError(f'a notebook state is {{"task": {json.dumps(env_id)}}}')
        return self.task(env_id)

    def data_dir(self, task: Task) -> str:
        """The host directory with `task`'s data files (the hidden labels never)."""
        with self._lock:
            if self._data_root is None:
                self._owned_root = tempfile.mkdtemp(prefix="gantry-dsgym-")
                os.chmod(self._owned_root, 0o711)  # the sandbox uid must reach the data
                self._data_root = self._owned_root
            root = self._data_root
        path = os.path.join(root, task.id.replace("/", "__"))
        if not os.path.isdir(path):
            staging = tempfile.mkdtemp(dir=root)
            for name, data in catalogue.data_files(task).items():
                with open(os.path.join(staging, name), "wb") as out:
                    out.write(data)
                os.chmod(os.path.join(staging, name), 0o444)
            os.chmod(staging, 0o555)
            try:
                os.rename(staging, path)
            except OSError:  # another episode won the race: same content
                shutil.rmtree(staging, ignore_errors=True)
        return path

    def close(self) -> None:
        if self._owned_root is not None:
            for dirpath, dirnames, _ in os.walk(self._owned_root):
                for name in dirnames:
                    os.chmod(os.path.join(dirpath, name), 0o755)
            shutil.rmtree(self._owned_root, ignore_errors=True)


class NotebookEpisode(TaskEpisode):
    finish_action = FINISH

    def __init__(
        self, family: NotebookFamily, task: Task, max_steps: int, limits: EpisodeLimits
    ) -> None:
        super().__init__(task.id, DIFFICULTY[task.type], max_steps, limits)
        self.family = family
        self.task = task
        self._sandbox: Sandbox | None = None
        self._kernel: Kernel | None = None

    # ----- checks -----
    def check_action(self, action: str) -> None:
        if not action.strip():
            raise BadAction("is empty: send a code cell or the finish action")
        if len(action.encode("utf-8")) > MAX_CELL_BYTES:
            raise BadAction(f"a code cell holds at most {MAX_CELL_BYTES} bytes")
        bad = next((c for c in action if ord(c) < 32 and c not in _ALLOWED_CONTROL), None)
        if bad is not None:
            raise BadAction(f"holds the control character {bad!r}; send text, not binary data")
        answer = self.finish_answer(action)
        if answer is None or self.task.type != "analysis":
            return
        assert self.task.answer_kind is not None
        try:
            parse_answer(self.task.answer_kind, answer)
        except AnswerFormatError as error:
            raise BadAction(
                f"{FINISH} needs an answer: {error}; expected {finish_format(self.task)}"
            ) from None

    # ----- lifecycle -----
    def _start(self, seed: int) -> episode_pb2.Observation:
        self.close()  # a reset starts from a fresh sandbox and kernel
        sandbox_limits = SandboxLimits(
            wall_seconds=self.limits.step_timeout_s,
            cpu_seconds=max(int(self.limits.episode_timeout_s), 1),
            address_space_bytes=self.limits.memory_bytes,
            processes=NOTEBOOK_PROCESSES,
            file_size_bytes=self.limits.storage_bytes,
        )
        data = self.family.data_dir(self.task)
        mounts = {data: posixpath.join(MOUNT_WORKSPACE, catalogue.DATA_DIR)}
        runtime = self.family.runtime
        if runtime.site_packages:
            mounts[runtime.site_packages] = MOUNTED_PACKAGES
        spec = SandboxSpec(limits=sandbox_limits, readonly_mounts=mounts)
        try:
            self._sandbox = sandbox = self.family.backend().create(spec)
        except SandboxError as exc:  # e.g. the packages' folder is not reachable by its uid
            raise Unavailable(f"the notebook sandbox did not start: {exc}") from exc
        if sandbox.workspace != MOUNT_WORKSPACE:  # the mount missed: read-only copies
            for name in os.listdir(data):
                with open(os.path.join(data, name), "rb") as source:
                    sandbox.put_file(f"{catalogue.DATA_DIR}/{name}", source.read(), 0o444)
        self._kernel = Kernel(
            sandbox,
            kind=self.family.kernel,
            python=runtime.python,
            site_packages=MOUNTED_PACKAGES if runtime.site_packages else "",
        )
        try:
            self._kernel.start()
        except KernelError as exc:
            self.close()
            raise Unavailable(f"the notebook kernel did not start: {exc}") from exc
        return episode_pb2.Observation(text=self._welcome())

    def _welcome(self) -> str:
        assert self._kernel is not None and self._sandbox is not None
        return (
            f"A Python kernel ({self._kernel.kind}) is ready; its working directory is the "
            f"writable workspace {self._sandbox.workspace}. Data (read-only): "
            f"{', '.join(self.task.data_paths)}.\n\n{instructions(self.task)}"
        )

    def close(self) -> None:
        if self._kernel is not None:
            self._kernel.close()
        if self._sandbox is not None:
            self._sandbox.close()
        self._kernel = self._sandbox = None

    # ----- steps -----
    def _act(self, action: str) -> tuple[episode_pb2.Observation, str, dict[str, Any]]:
        assert self._kernel is not None
        try:
            cell = self._kernel.execute(action, self.limits.step_timeout_s)
        except KernelError as exc:  # the next step tries to start it again
            cell = CellOutput("restarted", f"The kernel could not be restarted: {exc}")
        feedback = {
            "ok": "",
            "error": "The cell raised an error.",
            "timeout": "The cell ran past its time limit and was interrupted; the kernel's "
            "state is kept.",
            "restarted": "The kernel restarted; variables and imports are gone (files in the "
            "workspace stay).",
        }.get(cell.status, "")
        info = {
            "status": cell.status,
            "seconds": round(cell.seconds, 3),
            "images": len(cell.images),
        }
        return observation(cell), feedback, info

    def _grade(self, answer: str) -> Outcome:
        task = self.task
        if task.type == "analysis":
            assert task.answer_kind is not None
            correct = answer_correct(task.answer_kind, answer, task.expected)
            report = "correct" if correct else "incorrect" if answer else "no answer given"
            return Outcome(correct, float(correct), task.metric, report, answer)
        assert self._sandbox is not None
        data = catalogue.prediction_data(task)
        try:
            submission = self._sandbox.get_file(catalogue.SUBMISSION, MAX_SUBMISSION_BYTES)
        except SandboxError as error:
            report = f"no readable {catalogue.SUBMISSION} in the workspace: {error}"
            return Outcome(False, _unscored(task), task.metric, report[:500], answer)
        target = DATASETS[task.dataset].target
        assert target is not None
        score = score_submission(
            submission,
            target=target,
            truth=data.truth,
            metric=task.metric,  # type: ignore[arg-type]
            threshold=data.threshold,
        )
        value = _unscored(task) if score.value is None else score.value
        return Outcome(score.passed, value, task.metric, score.report, answer)

    def reference_solution(self) -> list[str]:
        finish = FINISH if self.task.type == "prediction" else f"{FINISH} {self.task.expected}"
        return [self.task.reference_code, finish]

    def initial_state(self) -> dict[str, Any]:
        return {"task": self.task.id}

    @property
    def kernel(self) -> Kernel | None:
        return self._kernel


def _unscored(task: Task) -> float:
    """The score of a submission that could not be scored: 0 for accuracy and AUC, the
    trivial baseline's error (predicting the training mean or median) for RMSE and MAE."""
    if task.higher_is_better:
        return 0.0
    return catalogue.prediction_data(task).threshold / catalogue.BASELINE_FRACTION


def observation(cell: CellOutput) -> episode_pb2.Observation:
    """The cell's output as an observation: its text, and its first figure as the image."""
    text = cell.text if cell.text else "(no output)"
    if len(cell.images) > 1:
        text += f"\n[{len(cell.images)} figures; the observation's image is the first]"
    image = None
    if cell.images:
        image = media_pb2.Image(data=cell.images[0], mime_type="image/png")
    return episode_pb2.Observation(text=text, image=image)


def instructions(task: Task) -> str:
    if task.type == "analysis":
        return (
            f"Answer a question about the data set {task.dataset} "
            f"({DATASETS[task.dataset].description}), "
            f"in {task.data_paths[0]}.\n"
            f"Question: {task.question}\n"
            f"Run Python code cells to explore the data; when you know the answer, send "
            f"`{FINISH} <answer>` where the answer is "
            f"{ANSWER_FORMATS[task.answer_kind or 'number']}."
        )
    return (
        f"Prediction task on {task.dataset} "
        f"({DATASETS[task.dataset].description}).\n{task.question}\n"
        f"Run Python code cells; when {catalogue.SUBMISSION} is written, send `{FINISH}`."
    )


def finish_format(task: Task) -> str:
    if task.type == "analysis":
        return f"{FINISH} <answer>, the answer being {ANSWER_FORMATS[task.answer_kind or 'number']}"
    return f"{FINISH} (no answer: {catalogue.SUBMISSION} in the workspace is scored)"


def finish_example(task: Task) -> str:
    if task.type == "prediction":
        return FINISH
    return {
        "number": f"{FINISH} 3.142",
        "integer": f"{FINISH} 42",
        "label": f"{FINISH} setosa",
        "set": f"{FINISH} a, b, c",
    }[task.answer_kind or "number"]


def _wire_difficulty(difficulty: Difficulty) -> episode_pb2.Difficulty:
    return episode_pb2.DIFFICULTY_EASY if difficulty == "easy" else episode_pb2.DIFFICULTY_HARD

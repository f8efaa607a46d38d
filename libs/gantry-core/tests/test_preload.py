"""The preloader: a forked child is `python -m MODULE` in everything a caller can see."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gantry.core import preload
from gantry.core.children import pid_alive
from gantry.core.registry import uses_torch

# Run as `python -m probe ARGS` from its directory: reports what a child sees, then exits
# with the status its first argument names ("sleep" waits to be signalled).
PROBE = """
import json, os, sys, time
preloaded = "json" in sys.modules and "colorsys" in sys.modules
print(json.dumps({
    "argv": sys.argv[1:], "cwd": os.getcwd(), "path0": sys.path[0], "pid": os.getpid(),
    "sid": os.getsid(0), "name": __name__, "preloaded": preloaded,
    "setting": os.environ.get("GANTRY_PROBE_SETTING"), "stdin": sys.stdin.read(),
}), flush=True)
print("to stderr", file=sys.stderr, flush=True)
if sys.argv[1] == "sleep":
    time.sleep(60)
if sys.argv[1] == "interrupt":
    raise KeyboardInterrupt
sys.exit(int(sys.argv[1]))
"""


@pytest.fixture
def preloader() -> Iterator[preload.Preloader]:
    # colorsys: a module nothing imports by itself, so a child that has it was preloaded.
    running = preload.Preloader(["colorsys", "no_such_module_anywhere"])
    yield running
    running.close()


@pytest.fixture
def probe_dir(tmp_path: Path) -> Path:
    (tmp_path / "probe.py").write_text(PROBE)
    return tmp_path


def _report(log: Path) -> dict[str, object]:
    first = log.read_text().splitlines()[0]
    report: dict[str, object] = json.loads(first)
    return report


def test_a_forked_child_is_the_module_with_its_own_args_env_cwd_and_status(
    preloader: preload.Preloader, probe_dir: Path
) -> None:
    log = probe_dir / "child.log"
    env = {**preloader.environment, "GANTRY_PROBE_SETTING": "seen"}
    child = preloader.spawn("probe", ["3", "x"], env=env, output=log, cwd=probe_dir)
    assert child.wait(timeout=30) == 3 and child.poll() == 3
    report = _report(log)
    assert report["argv"] == ["3", "x"] and report["name"] == "__main__"
    assert report["cwd"] == str(probe_dir) and report["path0"] == str(probe_dir)
    assert report["pid"] == child.pid and report["setting"] == "seen"
    assert report["preloaded"] is True and report["stdin"] == ""
    assert "to stderr" in log.read_text()  # stdout and stderr both go to the log
    assert report["sid"] != child.pid  # no session of its own unless asked


def test_signals_reach_the_child_and_its_status_says_so(
    preloader: preload.Preloader, probe_dir: Path
) -> None:
    log = probe_dir / "child.log"
    child = preloader.spawn(
        "probe", ["sleep"], env=preloader.environment, output=log, cwd=probe_dir, new_session=True
    )
    while not log.exists() or not log.read_text():
        assert child.poll() is None
    assert _report(log)["sid"] == child.pid  # a session (process group) of its own
    assert Path(f"/proc/{child.pid}/comm").read_text().strip() == "probe sleep"  # for ps
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(timeout=0.2)
    child.terminate()
    assert child.wait(timeout=30) == -signal.SIGTERM


def test_an_uncaught_interrupt_ends_the_child_as_sigint_does(
    preloader: preload.Preloader, probe_dir: Path
) -> None:
    child = preloader.spawn(
        "probe", ["interrupt"], env=preloader.environment, output=None, cwd=probe_dir
    )
    assert child.wait(timeout=30) == -signal.SIGINT


def test_a_missing_module_fails_like_python_dash_m(
    preloader: preload.Preloader, tmp_path: Path
) -> None:
    log = tmp_path / "child.log"
    child = preloader.spawn("no_such_module_anywhere", env=preloader.environment, output=log)
    assert child.wait(timeout=30) == 1
    assert "no_such_module_anywhere" in log.read_text()


def test_only_settings_may_differ_from_the_preloaders_environment(
    preloader: preload.Preloader,
) -> None:
    env = preloader.environment
    assert preloader.accepts({**env, "GANTRY_ROLLOUT_PORT": "1", "RANK": "2"})
    assert not preloader.accepts({**env, "OMP_NUM_THREADS": "7"})  # read by imports
    assert not preloader.accepts({k: v for k, v in env.items() if k != "PATH"})


def test_start_falls_back_to_a_fresh_interpreter(
    probe_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(probe_dir)
    log = probe_dir / "child.log"
    env = {**os.environ, "SOMETHING_IMPORTS_READ": "1", "PYTHONPATH": str(probe_dir)}
    child = preload.start("probe", ["4"], env=env, output=log, imports_torch=True)
    assert isinstance(child, subprocess.Popen)
    assert child.wait(timeout=60) == 4 and _report(log)["argv"] == ["4"]
    light = preload.start("probe", ["5"], env=os.environ, output=None, imports_torch=False)
    assert isinstance(light, subprocess.Popen) and light.wait(timeout=60) == 5
    monkeypatch.setenv("GANTRY_PRELOAD", "0")
    assert preload.shared() is None


def test_services_that_need_torch_are_known_from_their_distribution() -> None:
    assert uses_torch("rollout") and uses_torch("trainer")
    assert not uses_torch("envfarm") and not uses_torch("no-such-service")


def test_a_child_outliving_its_preloader_still_reports_an_end(
    preloader: preload.Preloader, probe_dir: Path
) -> None:
    child = preloader.spawn(
        "probe", ["sleep"], env=preloader.environment, output=None, cwd=probe_dir
    )
    preloader.close()
    assert child.poll() is None  # still running, now without the preloader
    child.kill()
    assert child.wait(timeout=30) == preload.UNKNOWN_STATUS


def test_the_preloader_exits_when_its_starter_does(tmp_path: Path) -> None:
    script = (
        "from gantry.core import preload; p = preload.Preloader(['colorsys']); "
        "p.status(0); print(p._process.pid, flush=True)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 30
    while pid_alive(pid):  # its pipe closed with the starter: it ends on its own
        assert time.monotonic() < deadline, "the preloader outlived the process that started it"
        time.sleep(0.05)

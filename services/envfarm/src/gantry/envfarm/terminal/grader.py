"""Runs a task's pytest file inside the sandbox.

Sandboxes need not have pytest installed, so the grader ships a small runner that
imports the test file and calls its `test_*` functions in order (the files are plain
pytest files: the same ones run under pytest). Test files go to a fresh directory in the
workspace at grading time, never earlier, so the agent cannot read or edit them, and are
removed afterwards.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass

from gantry.envfarm.sandbox import Sandbox, SandboxError

RUNNER = r"""
import importlib.util, sys, traceback
path = sys.argv[1]
spec = importlib.util.spec_from_file_location("task_test", path)
module = importlib.util.module_from_spec(spec)
try:
    spec.loader.exec_module(module)
except BaseException:
    print("ERROR collecting tests:\n" + traceback.format_exc(limit=3))
    sys.exit(2)
tests = [(n, f) for n, f in vars(module).items() if n.startswith("test_") and callable(f)]
failed = 0
for name, fn in tests:
    try:
        fn()
    except BaseException as exc:
        failed += 1
        print(f"FAILED {name}: {type(exc).__name__}: {str(exc)[:300]}")
    else:
        print(f"PASSED {name}")
print(f"{len(tests) - failed} passed, {failed} failed")
sys.exit(1 if failed or not tests else 0)
"""

MAX_REPORT_BYTES = 8192


@dataclass(frozen=True)
class TestReport:
    passed: bool
    output: str
    timed_out: bool = False


def run_test(
    sandbox: Sandbox, source: str, *, timeout_s: float, python: str = "python3"
) -> TestReport:
    """Run one pytest file in `sandbox` with the workspace as working directory."""
    folder = f".gantry-grader-{secrets.token_hex(6)}"
    try:
        sandbox.put_file(f"{folder}/runner.py", RUNNER.encode())
        sandbox.put_file(f"{folder}/test_task.py", source.encode())
        result = sandbox.exec(
            [python, f"{folder}/runner.py", f"{folder}/test_task.py"],
            timeout_s=timeout_s,
            cwd=sandbox.workspace,
        )
    except SandboxError as exc:
        return TestReport(False, f"the grader could not run: {exc}")
    finally:
        with contextlib.suppress(SandboxError):
            sandbox.exec(["rm", "-rf", folder], timeout_s=5.0, cwd=sandbox.workspace)
    output = (result.stdout + result.stderr).decode("utf-8", "replace")
    if len(output) > MAX_REPORT_BYTES:
        output = output[:MAX_REPORT_BYTES] + "\n[... report cut ...]"
    if result.timed_out:
        return TestReport(False, output + f"\n[test timed out after {timeout_s:g}s]", True)
    return TestReport(result.exit_code == 0, output)

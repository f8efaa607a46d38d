"""The agent's persistent bash in a real bubblewrap sandbox: completion, exit status,
state, truncation, timeouts and restarts, never a hang."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from gantry.envfarm.family import BadAction
from gantry.envfarm.sandbox import Sandbox, SandboxLimits, SandboxSpec, make_backend
from gantry.envfarm.sandbox.testing import reachable_root
from gantry.envfarm.terminal.episode import check_command, describe
from gantry.envfarm.terminal.shell import Shell


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    backend = make_backend("bubblewrap", root=reachable_root(tmp_path_factory.mktemp("bwrap")))
    backend.probe()
    box = backend.create(SandboxSpec(limits=SandboxLimits(wall_seconds=10.0)))
    yield box
    box.close()


@pytest.fixture
def shell(sandbox: Sandbox) -> Iterator[Shell]:
    sh = Shell(sandbox, output_bytes=1024)
    yield sh
    sh.close()


def test_state_persists_and_exit_status_is_reported(shell: Shell) -> None:
    assert shell.run("mkdir -p a/b && cd a/b && X=42", 5).exit_code == 0
    result = shell.run('echo "$X $PWD"; echo err >&2; (exit 7)', 5)
    assert result.output == f"42 {shell.sandbox.workspace}/a/b\nerr\n"
    assert result.exit_code == 7 and result.cwd.endswith("/a/b")
    assert shell.run("printf no-newline", 5).output == "no-newline"


def test_malformed_shell_input_cannot_leave_bash_waiting(shell: Shell) -> None:
    started = time.monotonic()
    unterminated = shell.run("echo 'never closed", 5)
    assert unterminated.exit_code == 2 and "unexpected EOF" in unterminated.output
    assert shell.run("if true; then echo x", 5).exit_code == 2
    assert shell.run("cat; read line; echo read=$?", 5).output == "read=1\n"  # stdin is empty
    assert time.monotonic() - started < 3  # each answered at once, not at the timeout
    assert shell.run("echo fine", 5).output == "fine\n"


def test_a_printed_marker_does_not_end_the_command_early(shell: Shell) -> None:
    result = shell.run("echo; echo GANTRY_DONE_0123456789abcdef01234567 0 /; echo after", 5)
    assert result.output.endswith("after\n") and result.exit_code == 0


def test_long_output_keeps_head_and_tail_with_a_marker(shell: Shell) -> None:
    result = shell.run("seq 1 100000", 10)
    assert result.truncated and result.exit_code == 0
    assert result.output.startswith("1\n2\n3\n") and result.output.endswith("99999\n100000\n")
    cut = 588895 - 1024  # bytes `seq 1 100000` prints, less what is kept
    assert f"[... {cut} bytes of output cut ...]" in result.output


def test_a_command_past_its_timeout_restarts_the_shell_in_place(shell: Shell) -> None:
    shell.run("mkdir -p slow && cd slow", 5)
    started = time.monotonic()
    result = shell.run("echo begun; sleep 30", 0.5)
    assert result.timed_out and result.exit_code is None and result.shell_restarted
    assert result.output == "begun\n" and time.monotonic() - started < 5
    assert "timed out after 0.5s" in describe(result, 0.5)
    assert shell.run("pwd", 5).output.strip().endswith("/slow")


def test_exit_restarts_the_shell(shell: Shell) -> None:
    shell.run("cd /tmp", 5)
    gone = shell.run("exit 3", 5)
    assert gone.exit_code is None and gone.shell_restarted
    assert "the shell exited" in describe(gone, 5)
    assert shell.run("pwd", 5).output == "/tmp\n"


@pytest.mark.parametrize(
    ("action", "says"),
    [
        ("", "is empty"),
        ("   \n", "is empty"),
        ("ls\x00", "U+0000"),
        ("echo \x1b[31m", "U+001B"),
        ("echo \x7f", "U+007F"),
        ("x" * 16385, "at most 16384"),
        ("submit now", "takes no answer"),
    ],
)
def test_non_commands_are_refused(action: str, says: str) -> None:
    with pytest.raises(BadAction, match=re.escape(says)):
        check_command(action)


def test_commands_may_span_lines_and_hold_tabs() -> None:
    check_command("for i in 1 2; do\n\techo $i\ndone")
    check_command("submit")

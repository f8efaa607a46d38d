"""The unsafe `subprocess` backend: the agent runs straight on the host, as the service.

For trusted tasks only (and machines without bubblewrap): commands get the rlimits, a
private workspace directory, timeouts and bounded output, but they see the host's files
and network, and a command that leaves its process group survives `close`. envfarm uses
it only when its `sandbox_backend` setting names it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile

from gantry.envfarm.sandbox.agented import AGENT_PATH, AgentSandbox, agent_argv
from gantry.envfarm.sandbox.base import SandboxSpec, SandboxUnavailable


class SubprocessBackend:
    name = "subprocess"

    def __init__(self, *, root: str | None = None, python: str | None = None) -> None:
        self.root = root or os.path.join(tempfile.gettempdir(), "gantry-sandboxes")
        self.python = python or sys.executable

    def probe(self) -> None:
        if not os.access(self.python, os.X_OK):
            raise SandboxUnavailable(f"the agent's Python {self.python!r} is not executable")

    def create(self, spec: SandboxSpec) -> AgentSandbox:
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        workspace = os.path.realpath(tempfile.mkdtemp(prefix="sbx-", dir=self.root))
        for source, target in spec.readonly_mounts.items():  # no mounts here: links instead
            if target.startswith(workspace + "/"):
                os.symlink(source, target)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = subprocess.Popen(
                agent_argv(self.python, AGENT_PATH, theirs.fileno(), spec.limits),
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                cwd=workspace,
                start_new_session=True,
            )
        finally:
            theirs.close()
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": workspace,
            "LANG": "C.UTF-8",
            "TMPDIR": workspace,
        }

        def kill_tree() -> None:
            ours.shutdown(socket.SHUT_RDWR)  # the agent kills its groups at EOF

        return AgentSandbox(
            process=process,
            control=ours,
            workspace=workspace,
            host_workspace=workspace,
            limits=spec.limits,
            env=env,
            owner=None,
            kill_tree=kill_tree,
        )

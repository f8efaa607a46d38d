"""The notebook kernels in real bubblewrap sandboxes: the pipe REPL and the Jupyter
kernel keep state, capture output, show figures, interrupt a cell past its timeout and
restart a kernel that ignores the interrupt; `auto` falls back to the REPL where the
sandbox's Python has no Jupyter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gantry.envfarm.notebook.family import MOUNTED_PACKAGES, KernelRuntime, NotebookFamily
from gantry.envfarm.notebook.kernel import Kernel, KernelKind
from gantry.envfarm.notebook.validate import validate
from gantry.envfarm.sandbox import Sandbox, SandboxBackend, SandboxLimits, SandboxSpec, make_backend
from gantry.envfarm.sandbox.testing import reachable_root

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> SandboxBackend:
    # The kernel's packages are mounted from envfarm's site-packages: the sandbox uid must
    # be able to reach them wherever the checkout lives.
    reachable_root(Path(KernelRuntime.for_backend("bubblewrap").site_packages))
    made = make_backend("bubblewrap", root=reachable_root(tmp_path_factory.mktemp("sbx")))
    made.probe()
    return made


def _sandbox(backend: SandboxBackend) -> Sandbox:
    runtime = KernelRuntime.for_backend("bubblewrap")
    limits = SandboxLimits(address_space_bytes=4 << 30, processes=256, cpu_seconds=600)
    spec = SandboxSpec(limits=limits, readonly_mounts={runtime.site_packages: MOUNTED_PACKAGES})
    return backend.create(spec)


def _kernel(sandbox: Sandbox, kind: KernelKind) -> Kernel:
    runtime = KernelRuntime.for_backend("bubblewrap")
    kernel = Kernel(
        sandbox,
        kind=kind,
        python=runtime.python,
        site_packages=MOUNTED_PACKAGES,
    )
    kernel.start()
    return kernel


@pytest.fixture(scope="module")
def repl(backend: SandboxBackend) -> Iterator[Kernel]:
    sandbox = _sandbox(backend)
    kernel = _kernel(sandbox, "repl")
    yield kernel
    kernel.close()
    sandbox.close()


def test_repl_keeps_state_and_captures_every_kind_of_output(repl: Kernel) -> None:
    assert repl.kind == "repl"
    first = repl.execute("x = 20\nprint('from print')\nimport os; os.system('echo from-child')", 10)
    assert first.status == "ok"
    assert "from print" in first.text and "from-child" in first.text
    assert repl.execute("x * 2 + 2", 10).text.strip() == "42"  # the last expression is shown
    error = repl.execute("1 / 0", 10)
    assert error.status == "error" and "ZeroDivisionError" in error.text
    assert "<cell>" in error.text and "inside_repl" not in error.text
    syntax = repl.execute("def (:", 10)
    assert syntax.status == "error" and "SyntaxError" in syntax.text
    assert repl.execute("input()", 10).status == "error"  # stdin is not the protocol
    assert repl.execute("x", 10).text.strip() == "20"  # errors did not lose state


def test_repl_output_is_cut_with_a_marker_and_figures_come_back_as_png(repl: Kernel) -> None:
    long = repl.execute("print('y' * 100_000)", 10)
    assert long.text.count("y") <= repl.max_text and "output cut" in long.text
    plot = repl.execute("import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()", 60)
    assert plot.status == "ok" and len(plot.images) == 1 and plot.images[0].startswith(PNG)
    assert repl.execute("print(len(plt.get_fignums()))", 10).text.strip() == "0"


def test_repl_interrupts_a_slow_cell_and_restarts_a_deaf_one(repl: Kernel) -> None:
    repl.execute("kept = 7", 10)
    slow = repl.execute("import time\nwhile True: time.sleep(0.05)", 1)
    assert slow.status == "timeout" and "limit" in slow.text
    assert repl.execute("kept", 10).text.strip() == "7"  # interrupted, state kept
    restarts = repl.restarts
    deaf = repl.execute(
        "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True: pass", 1
    )
    assert deaf.status == "restarted" and deaf.seconds < 10
    assert repl.restarts == restarts + 1
    after = repl.execute("kept", 10)
    assert after.status == "error" and "NameError" in after.text  # a fresh kernel


def test_memory_limit_fails_the_cell_not_the_kernel(repl: Kernel) -> None:
    bomb = repl.execute("block = bytearray(16 << 30)", 30)
    assert bomb.status == "error" and "MemoryError" in bomb.text
    assert repl.execute("6 * 7", 10).text.strip() == "42"


def test_the_sandbox_keeps_the_kernel_off_the_network_and_host(repl: Kernel) -> None:
    net = repl.execute(
        "import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect(('1.1.1.1', 53))", 10
    )
    assert net.status == "error" and "Error" in net.text
    home = repl.execute(f"open({str(Path.home() / '.bashrc')!r}).read()", 10)
    assert home.status == "error"


@pytest.mark.slow
def test_jupyter_kernel_keeps_state_shows_figures_and_recovers(backend: SandboxBackend) -> None:
    sandbox = _sandbox(backend)
    kernel = _kernel(sandbox, "jupyter")
    try:
        assert kernel.kind == "jupyter"
        assert kernel.execute("x = 41\nprint('hi')", 30).text.strip() == "hi"
        assert kernel.execute("!echo from-shell", 30).text.strip() == "from-shell"  # IPython
        assert kernel.execute("x + 1", 30).text.strip() == "42"
        plot = kernel.execute("import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()", 60)
        assert len(plot.images) == 1 and plot.images[0].startswith(PNG)
        slow = kernel.execute("import time\ntime.sleep(60)", 1)
        assert slow.status == "timeout" and "KeyboardInterrupt" in slow.text
        assert kernel.execute("x", 30).text.strip() == "41"
        deaf = kernel.execute(
            "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass", 1
        )
        assert deaf.status == "restarted"
        assert "NameError" in kernel.execute("x", 30).text
    finally:
        kernel.close()
        sandbox.close()


def test_auto_falls_back_to_the_repl_without_jupyter(backend: SandboxBackend) -> None:
    sandbox = backend.create(SandboxSpec())  # no packages mounted: the bare system Python
    kernel = Kernel(sandbox, kind="auto", python="/usr/bin/python3")
    try:
        kernel.start()
        assert kernel.kind == "repl"
        assert kernel.execute("sum(range(10))", 10).text.strip() == "45"
    finally:
        kernel.close()
        sandbox.close()


@pytest.fixture(scope="module")
def family(
    backend: SandboxBackend, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NotebookFamily]:
    data = reachable_root(tmp_path_factory.mktemp("data"))
    made = NotebookFamily(lambda: backend, kernel="repl", data_root=data)
    yield made
    made.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    "task_id",
    [
        "dsgym/wine/distinct-0",  # a whole number
        "dsgym/statecrime/label_argmax-0",  # a label
        "dsgym/wine/top_corr-0",  # a set
        "dsgym/breast_cancer/predict-1",  # AUC from probabilities
        "dsgym/diabetes/predict-0",  # RMSE
    ],
)
def test_reference_solutions_validate_in_the_sandbox(family: NotebookFamily, task_id: str) -> None:
    """A sample of the suite (one per answer kind and metric) through the full validation
    (make validate-notebook runs all of it)."""
    result = validate(family, family.task(task_id))
    assert result.passed, result.detail

"""Services (enable/disable, configure), scheduled jobs and git."""

from __future__ import annotations

import random
import shlex

from gantry.envfarm.terminal.task import Difficulty
from gantry.envfarm.terminal.templates.base import (
    Draft,
    Template,
    read_helper,
    script,
    test_file,
    words,
    write_files,
)


def enable_services(rng: random.Random, difficulty: Difficulty) -> Draft:
    """Enable services by symlink, change one's port (hard: disable a stale one too)."""
    hard = difficulty == "hard"
    names = words(rng, 6 if hard else 4)
    enable = sorted(rng.sample(names, 2))
    stale = next(n for n in names if n not in enable)
    port = rng.randint(2000, 9999)
    configs = {
        f"services/available/{n}.conf": f"name={n}\nport={rng.randint(2000, 9999)}\nworkers=2\n"
        for n in names
    }
    changed = f"services/available/{enable[0]}.conf"
    expected_config = "\n".join(
        f"port={port}" if line.startswith("port=") else line
        for line in configs[changed].split("\n")
    )
    setup = script(write_files(configs), "mkdir -p services/enabled")
    if hard:
        setup += f"ln -s ../available/{stale}.conf services/enabled/{stale}.conf\n"
    instruction = (
        f"Enable exactly the services {enable[0]} and {enable[1]}: services/enabled/ must "
        "hold one symbolic link per enabled service, named <service>.conf, whose target is "
        "the relative path ../available/<service>.conf"
        + (f"; {stale} is enabled now and must be disabled" if hard else "")
        + f". Also set the port of {enable[0]} to {port} (the port= line of its file in "
        "services/available/), leaving its other lines unchanged."
    )
    consts = {"ENABLE": enable, "CHANGED": changed, "CONFIG": expected_config, "CONFIGS": configs}
    initial = test_file(
        consts,
        read_helper() + "def test_available():\n"
        "    for path, text in CONFIGS.items():\n"
        "        assert read(path) == text, path\n"
        "    assert os.path.isdir('services/enabled')\n",
    )
    completion = test_file(
        consts,
        read_helper() + "def test_enabled():\n"
        "    links = sorted(os.listdir('services/enabled'))\n"
        "    assert links == [n + '.conf' for n in ENABLE]\n"
        "    for name in ENABLE:\n"
        "        link = os.path.join('services/enabled', name + '.conf')\n"
        "        assert os.path.islink(link), link\n"
        "        assert os.readlink(link) == '../available/' + name + '.conf'\n\n"
        "def test_port():\n"
        "    assert read(CHANGED) == CONFIG\n",
    )
    solution = [f"ln -s ../available/{n}.conf services/enabled/{n}.conf" for n in enable]
    if hard:
        solution.insert(0, f"rm services/enabled/{stale}.conf")
    solution.append(f"sed -i 's/^port=.*/port={port}/' {changed}")
    return Draft(
        instruction,
        {"enabled": enable, "port": port, **({"disabled": stale} if hard else {})},
        setup,
        initial,
        completion,
        tuple(solution),
        {"services": str(len(names)), "stale_link": str(hard).lower()},
    )


CRON_TEST = """
def entries():
    found = set()
    for line in read('crontab.txt').split('\\n'):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        fields = line.split(None, 5)
        assert len(fields) == 6, line
        norm = []
        for f in fields[:5]:
            f = f.replace('0-59/', '*/')
            norm.append(str(int(f)) if f.isdigit() else f)
        found.add(' '.join(norm + [fields[5].strip()]))
    return found

def test_entries():
    assert entries() == set(EXPECTED)
"""


def schedule_jobs(rng: random.Random, difficulty: Difficulty) -> Draft:
    """Write crontab entries (hard: edit an existing file, dropping an obsolete job)."""
    hard = difficulty == "hard"
    hour, minute, step = rng.randrange(24), rng.randrange(60), rng.choice((5, 10, 15, 20, 30))
    job_a, job_b, old = (f"/opt/jobs/{w}.sh" for w in words(rng, 3))
    new = [f"{minute} {hour} * * * {job_a}", f"*/{step} * * * * {job_b}"]
    kept = [f"0 {rng.randrange(24)} * * 1 /opt/jobs/weekly-report.sh"] if hard else []
    existing = ["# jobs of this host", *kept, f"30 2 * * * {old}"] if hard else []
    expected = sorted(kept + new)
    files = {"crontab.txt": "\n".join(existing) + "\n"} if hard else {}
    instruction = (
        (
            "crontab.txt is this host's crontab. Remove the entry that runs " + old + ", keep "
            "the other entries, and add"
            if hard
            else "Write a crontab file crontab.txt (standard "
            "five time fields, then the command) with"
        )
        + f" an entry running {job_a} every day at {hour:02d}:{minute:02d} and an entry "
        f"running {job_b} every {step} minutes."
    )
    consts = {"EXPECTED": expected, "HARD": hard, "OLD": old}
    initial = test_file(
        consts,
        read_helper() + "def test_start():\n"
        "    if HARD:\n"
        "        assert OLD in read('crontab.txt')\n"
        "    else:\n"
        "        assert not os.path.exists('crontab.txt')\n",
    )
    completion = test_file(consts, read_helper() + CRON_TEST)
    lines = "\\n".join(new)
    solution = (
        (f"grep -v {shlex.quote(old)} crontab.txt > crontab.new && mv crontab.new crontab.txt",)
        if hard
        else ()
    ) + (f"printf '{lines}\\n' >> crontab.txt",)
    return Draft(
        instruction,
        {"entries": expected},
        script(write_files(files)) if files else script("true"),
        initial,
        completion,
        solution,
        {"entries": str(len(expected)), "edit_existing": str(hard).lower()},
    )


def git_commit(rng: random.Random, difficulty: Difficulty) -> Draft:
    """Commit a file (hard: on a new branch, main left alone)."""
    hard = difficulty == "hard"
    topic = words(rng, 1)[0]
    branch = f"feature/{topic}"
    message = f"Add {topic} notes"
    setup = script(
        "git init -q repo",
        "cd repo",
        "git symbolic-ref HEAD refs/heads/main",
        "git config user.name 'Task Setup'",
        "git config user.email setup@example.invalid",
        write_files({"README.md": f"# {topic}\n"}),
        "git add README.md && git commit -q -m 'Initial commit'",
        write_files({"notes.txt": f"{topic}: {rng.randrange(10**6)}\n"}),
    )
    instruction = "repo/ is a git repository. " + (
        f"Create the branch {branch} from main, commit notes.txt on it with the message "
        f"'{message}', and leave main without notes.txt."
        if hard
        else f"Commit the untracked file notes.txt on main with the message '{message}'."
    )
    consts = {"BRANCH": branch if hard else "main", "MESSAGE": message, "HARD": hard}
    git = (
        "def git(*args):\n"
        "    return subprocess.run(['git', '-C', 'repo', *args], capture_output=True,\n"
        "                          text=True, check=True).stdout.strip()\n\n"
    )
    initial = test_file(
        consts,
        git + "def test_repo():\n"
        "    assert git('rev-list', '--count', 'main') == '1'\n"
        "    assert '?? notes.txt' in git('status', '--porcelain')\n",
    )
    completion = test_file(
        consts,
        git + "def test_commit():\n"
        "    assert git('log', '-1', '--format=%s', BRANCH) == MESSAGE\n"
        "    assert 'notes.txt' in git('ls-tree', '-r', '--name-only', BRANCH).split()\n"
        "    assert git('rev-list', '--count', BRANCH) == '2'\n\n"
        "def test_main():\n"
        "    files = git('ls-tree', '-r', '--name-only', 'main').split()\n"
        "    assert ('notes.txt' in files) != HARD\n",
    )
    solution = (
        ("cd repo",)
        + ((f"git checkout -q -b {branch}",) if hard else ())
        + (
            "git add notes.txt",
            f"git commit -q -m '{message}'",
            "cd ..",
        )
    )
    return Draft(
        instruction,
        {"branch": consts["BRANCH"], "message": message},
        setup,
        initial,
        completion,
        solution,
        {"branch": str(hard).lower()},
    )


WORKER_TEST = """
def worker_pid():
    return int(read(PIDFILE).strip())

def test_worker_runs():
    pid = worker_pid()
    os.kill(pid, 0)  # alive (raises when there is no such process)
    cmdline = '/proc/%d/cmdline' % pid
    if os.path.exists(cmdline):  # /proc is mounted: it is the worker, not any process
        deadline = time.time() + 5
        # a process started just now may still be the shell that forked it (before exec)
        while NAME.encode() not in open(cmdline, 'rb').read() and time.time() < deadline:
            time.sleep(0.05)
        assert NAME.encode() in open(cmdline, 'rb').read(), 'process %d is not %s' % (pid, NAME)

def test_heartbeat_is_fresh():
    deadline = time.time() + 5
    while not os.path.exists(HEARTBEAT) and time.time() < deadline:
        time.sleep(0.05)  # a worker started just now may not have written its first beat
    first = read(HEARTBEAT)
    while read(HEARTBEAT) == first and time.time() < deadline:
        time.sleep(0.05)
    assert read(HEARTBEAT) != first, 'the heartbeat stopped: the worker is not running'
"""


def start_worker(rng: random.Random, difficulty: Difficulty) -> Draft:
    """Start a worker in the background with a pid file (hard: replace a stale one)."""
    hard = difficulty == "hard"
    name = f"{words(rng, 1)[0]}-worker.sh"
    pidfile, heartbeat = "run/worker.pid", f"run/{name.removesuffix('.sh')}.beat"
    worker = f"#!/bin/bash\nwhile true; do date +%s%N > {heartbeat}; sleep 0.1; done\n"
    files = {f"bin/{name}": worker}
    setup = script(write_files(files, mode="755"), "mkdir -p run")
    if hard:  # a pid file left by a crashed run: a process id that does not exist
        setup += f"echo {rng.randint(40000, 60000)} > {pidfile}\n"
    instruction = (
        f"Start bin/{name} in the background so that it keeps running after your command "
        f"returns (it writes a heartbeat to {heartbeat}), and write its process id to "
        f"{pidfile}." + (f" {pidfile} is left over from a crashed run: replace it." if hard else "")
    )
    consts = {"NAME": name, "PIDFILE": pidfile, "HEARTBEAT": heartbeat, "HARD": hard}
    initial = test_file(
        consts,
        read_helper() + "def test_start():\n"
        "    assert os.access('bin/' + NAME, os.X_OK)\n"
        "    assert os.path.exists(PIDFILE) == HARD\n"
        "    assert not os.path.exists(HEARTBEAT)\n",
    )
    completion = test_file(consts, read_helper() + WORKER_TEST)
    return Draft(
        instruction,
        {"worker": f"bin/{name}", "pidfile": pidfile},
        setup,
        initial,
        completion,
        (f"nohup bin/{name} > /dev/null 2>&1 & echo $! > {pidfile}",),
        {"stale_pidfile": str(hard).lower()},
    )


SYSTEM_TEMPLATES: dict[str, tuple[Template, ...]] = {
    "processes": (start_worker,),
    "services": (enable_services,),
    "scheduled_jobs": (schedule_jobs,),
    "git": (git_commit,),
}

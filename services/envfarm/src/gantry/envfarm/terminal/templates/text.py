"""Log processing and text transformation."""

from __future__ import annotations

import random
from collections import Counter

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

PATHS = ("/", "/login", "/api/users", "/api/orders", "/api/search", "/static/app.js", "/health")
COMPONENTS = ("auth", "billing", "cache", "db", "gateway", "mailer", "payments", "scheduler")
DEPARTMENTS = ("engineering", "finance", "legal", "marketing", "research", "sales", "support")


def _access_line(rng: random.Random, path: str, status: int) -> str:
    ip = ".".join(str(rng.randint(1, 254)) for _ in range(4))
    minute = rng.randrange(60)
    size = rng.randint(100, 9000)
    return (
        f'{ip} - - [01/Mar/2024:10:{minute:02d}:00 +0000] "GET {path} HTTP/1.1" {status} {size}\n'
    )


def server_errors(rng: random.Random, difficulty: Difficulty) -> Draft:
    """Count 5xx responses per path in access logs (hard: a rotated, gzipped log too)."""
    hard = difficulty == "hard"
    logs: list[list[str]] = [[], []] if hard else [[]]
    counts: Counter[str] = Counter()
    for _ in range(rng.randint(60, 120) if hard else rng.randint(20, 40)):
        path = rng.choice(PATHS)
        status = rng.choice((200, 200, 200, 301, 404, 500, 502, 503))
        if status >= 500:
            counts[path] += 1
        rng.choice(logs).append(_access_line(rng, path, status))
    if not counts:  # at least one error to report
        counts["/health"] += 1
        logs[0].append(_access_line(rng, "/health", 503))
    expected = [f"{n} {p}" for p, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    files = {"logs/access.log": "".join(logs[0])}
    zipped = ""
    if hard:
        files["logs/access.log.1"] = "".join(logs[1])
        zipped = "gzip -n logs/access.log.1\n"
    instruction = (
        "The web server's access logs are in logs/"
        + (" (access.log and the rotated, gzip-compressed access.log.1.gz)" if hard else "")
        + ". Write report/errors.txt listing, for every request path that got a 5xx "
        "status, one line '<count> <path>' (count of 5xx responses), sorted by count "
        "(highest first), ties by path in byte order."
    )
    consts = {"EXPECTED": expected}
    initial = test_file(
        consts,
        "def test_logs():\n"
        "    assert os.path.getsize('logs/access.log') > 0\n"
        "    assert not os.path.exists('report/errors.txt')\n",
    )
    completion = test_file(
        consts,
        read_helper() + "def test_report():\n"
        "    assert read('report/errors.txt').split('\\n') in (EXPECTED, EXPECTED + [''])\n",
    )
    cat = "zcat -f logs/access.log*" if hard else "cat logs/access.log"
    solution = (
        f"mkdir -p report && {cat} | awk '$9 ~ /^5/ {{print $7}}' | sort | uniq -c "
        "| sort -k1,1nr -k2,2 | awk '{print $1\" \"$2}' > report/errors.txt",
    )
    return Draft(
        instruction,
        {"counts": dict(counts)},
        script(write_files(files), zipped),
        initial,
        completion,
        solution,
        {"requests": str(sum(len(x) for x in logs)), "rotated": str(hard).lower()},
    )


def error_components(rng: random.Random, difficulty: Difficulty) -> Draft:
    """List the components that logged ERROR (hard: several files, distractor lines)."""
    hard = difficulty == "hard"
    names = ["logs/app.log"] if not hard else [f"logs/app-{d}.log" for d in (1, 2, 3)]
    bodies: dict[str, str] = dict.fromkeys(names, "")
    failing: set[str] = set()
    for i in range(rng.randint(40, 80) if hard else rng.randint(12, 24)):
        level = rng.choice(("INFO", "INFO", "WARN", "ERROR"))
        component = rng.choice(COMPONENTS)
        message = rng.choice(("request done", "retry scheduled", "timeout", "slow query"))
        if hard and level == "INFO" and i % 4 == 0:
            message = "recovered after ERROR in upstream"
        if level == "ERROR":
            failing.add(component)
        line = f"2024-03-01T10:{i % 60:02d}:00Z {level} {component} {message}\n"
        name = rng.choice(names)
        bodies[name] += line
    if not failing:
        failing.add("db")
        bodies[names[0]] += "2024-03-01T11:00:00Z ERROR db connection lost\n"
    expected = sorted(failing)
    instruction = (
        "Application logs are in logs/ (lines: '<time> <LEVEL> <component> <message>'). "
        "Write errors_by_component.txt with the distinct components that logged at level "
        "ERROR, one per line, sorted alphabetically."
    )
    consts = {"EXPECTED": expected}
    initial = test_file(
        consts,
        "def test_logs():\n"
        "    assert any(f.endswith('.log') for f in os.listdir('logs'))\n"
        "    assert not os.path.exists('errors_by_component.txt')\n",
    )
    completion = test_file(
        consts,
        read_helper() + "def test_components():\n"
        "    lines = read('errors_by_component.txt').split('\\n')\n"
        "    assert [x for x in lines if x] == EXPECTED\n",
    )
    return Draft(
        instruction,
        {"components": expected},
        script(write_files(bodies)),
        initial,
        completion,
        ("awk '$2 == \"ERROR\" {print $3}' logs/*.log | sort -u > errors_by_component.txt",),
        {"files": str(len(names)), "distractors": str(hard).lower()},
    )


def department_totals(rng: random.Random, difficulty: Difficulty) -> Draft:
    """Sum a CSV column per group (hard: more rows and blank lines to skip)."""
    hard = difficulty == "hard"
    depts = rng.sample(DEPARTMENTS, 5 if hard else 3)
    people = words(rng, rng.randint(14, 22) if hard else rng.randint(5, 8))
    totals: Counter[str] = Counter()
    rows = ["name,dept,salary"]
    for person in people:
        dept, salary = rng.choice(depts), rng.randrange(30, 200) * 1000
        totals[dept] += salary
        rows.append(f"{person},{dept},{salary}")
        if hard and rng.random() < 0.2:
            rows.append("")
    expected = ["dept,total"] + [f"{d},{totals[d]}" for d in sorted(totals)]
    instruction = (
        "people.csv has the columns name,dept,salary"
        + (" (and some blank lines)" if hard else "")
        + ". Write dept_totals.csv with the header line 'dept,total' and one line "
        "'<dept>,<sum of salaries>' per department, sorted by department name."
    )
    consts = {"EXPECTED": expected}
    initial = test_file(
        consts,
        read_helper() + "def test_input():\n"
        "    assert read('people.csv').startswith('name,dept,salary')\n"
        "    assert not os.path.exists('dept_totals.csv')\n",
    )
    completion = test_file(
        consts,
        read_helper() + "def test_totals():\n"
        "    lines = [x.strip() for x in read('dept_totals.csv').strip().split('\\n')]\n"
        "    assert lines == EXPECTED\n",
    )
    solution = (
        "{ echo dept,total; tail -n +2 people.csv | awk -F, 'NF == 3 {t[$2] += $3} "
        'END {for (d in t) print d "," t[d]}\' | sort; } > dept_totals.csv',
    )
    return Draft(
        instruction,
        {"totals": dict(totals)},
        script(write_files({"people.csv": "\n".join(rows) + "\n"})),
        initial,
        completion,
        solution,
        {"rows": str(len(people)), "blank_lines": str(hard).lower()},
    )


def replace_host(rng: random.Random, difficulty: Difficulty) -> Draft:
    """Replace a host name in config files (hard: nested, and backups left alone)."""
    hard = difficulty == "hard"
    old, new = (f"{w}.example.internal" for w in words(rng, 2))
    services = words(rng, 6 if hard else 3)
    files: dict[str, str] = {}
    for i, name in enumerate(services):
        folder = "conf/" if not hard or i % 2 == 0 else "conf/extra/"
        files[f"{folder}{name}.conf"] = (
            f"[{name}]\nhost = {old}\nport = {rng.randint(1000, 9999)}\nfallback = backup-{old}\n"
        )
    backups = {}
    if hard:
        backups = {f"conf/{services[0]}.conf.bak": files[f"conf/{services[0]}.conf"]}
    expected = {p: t.replace(old, new) for p, t in files.items()}
    instruction = f"Replace every occurrence of {old} with {new} in the files ending in .conf " + (
        "anywhere under conf/ (subdirectories included). Do not change other files."
        if hard
        else "in conf/."
    )
    consts = {"EXPECTED": expected, "BACKUPS": backups, "OLD": old}
    initial = test_file(
        consts,
        read_helper() + "def test_configs():\n"
        "    for path in EXPECTED:\n"
        "        assert OLD in read(path), path\n",
    )
    completion = test_file(
        consts,
        read_helper() + "def test_replaced():\n"
        "    for path, text in EXPECTED.items():\n"
        "        assert read(path) == text, path\n\n"
        "def test_backups_untouched():\n"
        "    for path, text in BACKUPS.items():\n"
        "        assert read(path) == text, path\n",
    )
    pattern = old.replace(".", "\\.")
    target = (
        "find conf -type f -name '*.conf' -exec"
        if hard
        else "find conf -maxdepth 1 -type f -name '*.conf' -exec"
    )
    return Draft(
        instruction,
        {"old": old, "new": new},
        script(write_files({**files, **backups})),
        initial,
        completion,
        (f"{target} sed -i 's/{pattern}/{new}/g' {{}} +",),
        {"files": str(len(files)), "nested": str(hard).lower()},
    )


TEXT_TEMPLATES: dict[str, tuple[Template, ...]] = {
    "log_processing": (server_errors, error_components),
    "text_transform": (department_totals, replace_host),
}

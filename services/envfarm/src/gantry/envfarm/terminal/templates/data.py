"""SQLite databases and JSON configuration."""

from __future__ import annotations

import json
import random
import shlex
from collections import Counter
from typing import Any

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


def _python(code: str) -> str:
    return f"python3 -c {shlex.quote(code)}"


def sqlite_orders(rng: random.Random, difficulty: Difficulty) -> Draft:
    """Update rows (hard: and export an aggregate as CSV)."""
    hard = difficulty == "hard"
    customers = words(rng, 5 if hard else 3)
    target = customers[0]
    rows = []
    for i in range(1, (rng.randint(25, 40) if hard else rng.randint(8, 14)) + 1):
        status = rng.choice(("pending", "paid", "paid", "shipped"))
        rows.append((i, rng.choice(customers), rng.randrange(5, 500), status))
    if not any(r[1] == target and r[3] == "pending" for r in rows):
        rows.append((len(rows) + 1, target, 42, "pending"))
    expected = [
        (i, c, a, "cancelled" if c == target and s == "pending" else s) for i, c, a, s in rows
    ]
    paid: Counter[str] = Counter()
    for _, c, a, s in rows:
        if s == "paid":
            paid[c] += a
    totals = ["customer,total"] + [f"{c},{paid[c]}" for c in sorted(paid)]
    build = (
        "import sqlite3\n"
        "db = sqlite3.connect('shop.db')\n"
        "db.execute('CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, "
        "amount INTEGER NOT NULL, status TEXT NOT NULL)')\n"
        f"db.executemany('INSERT INTO orders VALUES (?, ?, ?, ?)', {rows!r})\n"
        "db.commit()\n"
    )
    instruction = (
        "shop.db is an SQLite database with the table orders(id, customer, amount, status). "
        f"Set the status of every 'pending' order of customer '{target}' to 'cancelled'."
        + (
            " Then write paid_totals.csv with the header 'customer,total' and one line "
            "'<customer>,<sum of amount>' per customer over the orders with status 'paid', "
            "sorted by customer."
            if hard
            else ""
        )
    )
    consts = {"ROWS": rows, "EXPECTED": expected, "TOTALS": totals, "HARD": hard}
    query = (
        "def rows():\n"
        "    db = sqlite3.connect('shop.db')\n"
        "    try:\n"
        "        return [tuple(r) for r in db.execute('SELECT * FROM orders ORDER BY id')]\n"
        "    finally:\n"
        "        db.close()\n\n"
    )
    initial = test_file(consts, query + "def test_db():\n    assert rows() == ROWS\n")
    completion = test_file(
        consts,
        read_helper() + query + "def test_updated():\n"
        "    assert rows() == EXPECTED\n\n"
        "def test_totals():\n"
        "    if HARD:\n"
        "        assert read('paid_totals.csv').strip().split('\\n') == TOTALS\n",
    )
    update = (
        "import sqlite3; db = sqlite3.connect('shop.db'); "
        f"db.execute(\"UPDATE orders SET status = 'cancelled' WHERE customer = '{target}' "
        "AND status = 'pending'\"); db.commit()"
    )
    solution = [_python(update)]
    if hard:
        export = (
            "import sqlite3; db = sqlite3.connect('shop.db'); rows = db.execute(\"SELECT "
            "customer, SUM(amount) FROM orders WHERE status = 'paid' GROUP BY customer "
            "ORDER BY customer\").fetchall(); open('paid_totals.csv', 'w').write("
            "'customer,total\\n' + ''.join(f'{c},{t}\\n' for c, t in rows))"
        )
        solution.append(_python(export))
    return Draft(
        instruction,
        {"cancelled": [r[0] for r in expected if r[3] == "cancelled"], "totals": totals},
        script(f"python3 - <<'PY'\n{build}PY\n"),
        initial,
        completion,
        tuple(solution),
        {"rows": str(len(rows)), "export": str(hard).lower()},
    )


def edit_json_config(rng: random.Random, difficulty: Difficulty) -> Draft:
    """Change, add and remove keys of a JSON config (hard: nested keys, a list append)."""
    hard = difficulty == "hard"
    name = words(rng, 1)[0]
    server: dict[str, Any] = {"host": "0.0.0.0", "port": rng.randint(3000, 3999), "workers": 2}
    config: dict[str, Any] = {
        "name": name,
        "server": server,
        "features": {w: rng.random() < 0.5 for w in words(rng, 3)},
        "debug": True,
    }
    if hard:
        server["tls"] = {"enabled": False, "ciphers": ["aes128"]}
    port = rng.randint(8000, 8999)
    flag = f"{words(rng, 1)[0]}_v2"
    expected = json.loads(json.dumps(config))
    expected["server"]["port"] = port
    expected["features"][flag] = True
    del expected["debug"]
    steps = [f"set server.port to {port}", f"add features.{flag} set to true", "remove debug"]
    if hard:
        expected["server"]["tls"]["enabled"] = True
        expected["server"]["tls"]["ciphers"].append("chacha20")
        steps += ["set server.tls.enabled to true", 'append "chacha20" to server.tls.ciphers']
    instruction = (
        "Edit the JSON file config/app.json: " + "; ".join(steps) + ". Keep every other "
        "key and value as it is (the file must stay valid JSON)."
    )
    consts = {"CONFIG": config, "EXPECTED": expected}
    initial = test_file(
        consts,
        read_helper()
        + "def test_config():\n    assert json.loads(read('config/app.json')) == CONFIG\n",
    )
    completion = test_file(
        consts,
        read_helper()
        + "def test_config():\n    assert json.loads(read('config/app.json')) == EXPECTED\n",
    )
    edits = [
        f"c['server']['port'] = {port}",
        f"c['features']['{flag}'] = True",
        "del c['debug']",
    ]
    if hard:
        edits += [
            "c['server']['tls']['enabled'] = True",
            "c['server']['tls']['ciphers'].append('chacha20')",
        ]
    code = (
        "import json; p = 'config/app.json'; c = json.load(open(p)); "
        + "; ".join(edits)
        + "; json.dump(c, open(p, 'w'), indent=2)"
    )
    return Draft(
        instruction,
        {"config": expected},
        script(write_files({"config/app.json": json.dumps(config, indent=2) + "\n"})),
        initial,
        completion,
        (_python(code),),
        {"edits": str(len(edits)), "nested": str(hard).lower()},
    )


DATA_TEMPLATES: dict[str, tuple[Template, ...]] = {
    "sqlite": (sqlite_orders,),
    "config_files": (edit_json_config,),
}

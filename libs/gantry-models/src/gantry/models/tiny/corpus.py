"""A small built-in training corpus for the tiny tokenizers.

The text is original and deliberately mixed (prose, Python, shell, JSON, chat-style agent
turns) so the learned merges cover the kinds of strings Gantry services exchange. It only
has to be varied enough for a ~1k-token byte-level BPE; it is not meant to be good.
"""

from __future__ import annotations

_PROSE = """\
The river was low that summer, and the stones along the bank dried white in the sun.
Every morning the ferry left at seven, carried a dozen people across, and came back empty.
Nobody remembered who had painted the number on its side, or why it was the number four.
A good map tells you where the roads are; a better one tells you which roads are worth taking.
She opened the window, listened to the rain for a minute, and then went back to her letters.
The library kept its oldest books in a cold room at the end of a long corridor.
When the power failed, the town went quiet, and for one evening people talked to each other.
He counted the steps twice because the first answer did not seem right: one hundred and twelve.
Learning is slow at first, then faster, and then slow again when the easy parts are gone.
The weather report promised wind from the north, light showers, and clear skies by Sunday.
If you want to understand a machine, take it apart; if you want to keep it, write down how.
Small experiments are cheap, honest, and fast, which is why careful teams run many of them.
The garden had tomatoes, beans, two kinds of basil, and a lemon tree that never gave fruit.
A question asked clearly is already half answered, said the teacher, and wrote it on the board.
Trains arrived on time except on Fridays, when the driver stopped to buy bread in the valley.
The museum closed at five, but the guard let the children finish drawing the whale skeleton.
Numbers such as 3, 17, 42, 256, 1024 and 65536 show up again and again in computing.
Dates like 2024-05-17 and times like 09:30 or 23:59:59 are common in logs and reports.
"""

_CODE = '''\
def fibonacci(n: int) -> list[int]:
    """Return the first n Fibonacci numbers."""
    values = [0, 1]
    while len(values) < n:
        values.append(values[-1] + values[-2])
    return values[:n]


class Counter:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, key: str, amount: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + amount

    def most_common(self, k: int = 3) -> list[tuple[str, int]]:
        return sorted(self.counts.items(), key=lambda item: -item[1])[:k]


import json
import os
from pathlib import Path

def load_settings(path: Path) -> dict[str, object]:
    if not path.exists():
        raise FileNotFoundError(f"missing settings file: {path}")
    with path.open("r", encoding="utf-8") as handle:
        return json.load(handle)

for index, item in enumerate(["alpha", "beta", "gamma"]):
    print(index, item.upper())

async def fetch_all(client, urls):
    results = []
    for url in urls:
        response = await client.get(url, timeout=10.0)
        response.raise_for_status()
        results.append(response.json())
    return results

x = torch.randn(4, 8)
y = torch.nn.functional.softmax(x @ x.T, dim=-1)
assert y.shape == (4, 4)
'''

_SHELL_AND_DATA = """\
$ git status --short
 M src/app/main.py
?? notes.txt
$ ls -la /var/log | head -n 5
$ python -m pytest tests/ -q --maxfail=1
12 passed, 1 skipped in 3.41s
$ grep -rn "TODO" src/ | wc -l
$ curl -s http://localhost:8080/healthz
{"status": "ok", "uptime_seconds": 5123, "version": "1.4.2"}
{"id": 17, "name": "widget", "tags": ["blue", "small"], "price": 4.99, "in_stock": true}
{"event": "request", "method": "GET", "path": "/api/v1/items", "latency_ms": 12.5}
SELECT name, COUNT(*) AS total FROM orders WHERE status = 'done' GROUP BY name ORDER BY total DESC;
ERROR 2024-03-02T10:15:00Z worker-3 connection reset by peer, retrying in 2s
WARNING disk usage at 91% on /dev/sda1
"""

_AGENT = """\
<|im_start|>system
You are a helpful assistant that can use tools. Think step by step and keep answers short.<|im_end|>
<|im_start|>user
What is the capital of France, and how many people live there?<|im_end|>
<|im_start|>assistant
The capital of France is Paris. About two million people live in the city itself.<|im_end|>
<|im_start|>user
Please list the files in the current directory.<|im_end|>
<|im_start|>assistant
<tool_call>
{"name": "run_shell", "arguments": {"command": "ls -1"}}
</tool_call><|im_end|>
<|im_start|>tool
README.md
setup.py
src
tests<|im_end|>
<|im_start|>assistant
There are four entries: README.md, setup.py, and the folders src and tests.<|im_end|>
Observation: the page shows a search box and a button labelled "Go".
Thought: I should type the query into the search box and press the button.
Action: type(element="search", text="cheap flights to Lisbon")
Action: click(element="Go")
Observation: 24 results. The first result is "Lisbon in spring: fares from 89 EUR".
Thought: The task asks for the cheapest fare, so I will sort by price.
Action: click(element="sort-by-price")
Final answer: The cheapest fare listed is 89 EUR.
Task: move the red block onto the blue block, then open the drawer.
Plan: 1) locate the red block 2) grasp it 3) place it on the blue block 4) pull the handle.
Reward: 1.0 (task completed in 14 steps)
"""

CORPUS: tuple[str, ...] = (_PROSE, _CODE, _SHELL_AND_DATA, _AGENT)
"""Built-in training text, split into a few documents."""

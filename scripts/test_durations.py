"""Per-file test durations from a pytest log, for the root conftest's longest-first order.

    pytest -n 2 --dist loadfile --durations=0 ... | tee pytest.log
    python scripts/test_durations.py pytest.log > test_durations.json

Sums setup, call and teardown seconds per test file; prints JSON, longest first.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

LINE = re.compile(r"^(\d+(?:\.\d+)?)s (?:setup|call|teardown)\s+(\S+?)::")


def file_seconds(log: str) -> dict[str, float]:
    totals: defaultdict[str, float] = defaultdict(float)
    for line in log.splitlines():
        match = LINE.match(line)
        if match:
            totals[match.group(2)] += float(match.group(1))
    return {path: round(s, 1) for path, s in sorted(totals.items(), key=lambda kv: -kv[1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path, help="pytest output with --durations=0")
    args = parser.parse_args()
    print(json.dumps(file_seconds(args.log.read_text()), indent=1))


if __name__ == "__main__":
    main()

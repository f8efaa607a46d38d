"""Verifier meta-evaluation: does decomposition and executable evidence make a weak judge
a good verifier? (DeepVerifier's central claim, measured on envfarm tasks.)

The labelled set is built through a real envfarm process (maze_2d easy/hard and Klotski
text boards): per task one correct solver plan and one plan with an injected failure of
one taxonomy class (wrong source, reasoning slip, misread instruction, format error, step
limit); labels are executable ground truth (the plan replayed in envfarm). For each judge
model (served by its own rollout process; the verifier is a real process too) it reports
precision / recall / F1 with reject = positive for the plain judge, the decomposed judge,
full DeepVerifier (decomposition + evidence + executable checks) and the checks alone, the
latency of one Verify (median, p99), and VerifyAndRefine accuracy after rounds 1-4 (every
round's answer replayed in envfarm; counts with 95% Wilson intervals).

    .venv/bin/python benchmarks/verifier.py [--items 300] [--models tiny smollm2-135m-instruct PATH]
        [--modes plain decomposed full programmatic] [--per-kind N] [--sequential]
        [--refine-tasks 10] [--refine-modes programmatic full] [--json out.json]

The same as `python -m gantry.verifier.metaeval` (every option of it applies; see
docs/verifier.md#meta-evaluation, which also holds the measured tables).
"""

from __future__ import annotations

from gantry.verifier.metaeval.cli import run_main

if __name__ == "__main__":
    run_main()

"""The verifier's Prometheus series (served on the service's /metrics)."""

from __future__ import annotations

from gantry.core.metrics import CollectorRegistry, Counter, Histogram

STEP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class VerifierMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.step_seconds = Histogram(
            "gantry_verifier_step_seconds",
            "Wall time of each pipeline step (checks, error_identification, decomposition, "
            "evidence, judge, feedback), by mode",
            ["step", "mode"],
            buckets=STEP_BUCKETS,
            registry=registry,
        )
        self.step_failures = Counter(
            "gantry_verifier_step_failures",
            "Pipeline steps that failed, by step and status code",
            ["step", "code"],
            registry=registry,
        )
        self.judge_calls = Counter(
            "gantry_verifier_judge_calls",
            "Judge requests (one per step, retries counted in attempts), by judge and step",
            ["judge", "step"],
            registry=registry,
        )
        self.verifications = Counter(
            "gantry_verifier_verifications",
            "Finished verifications, by mode and verdict",
            ["mode", "verdict"],
            registry=registry,
        )
        self.seconds = Histogram(
            "gantry_verifier_verification_seconds",
            "Wall time of a whole verification, by mode",
            ["mode"],
            buckets=STEP_BUCKETS,
            registry=registry,
        )

    def step_done(self, step: str, mode: str, seconds: float) -> None:
        self.step_seconds.labels(step, mode).observe(seconds)

    def step_failed(self, step: str, code: str) -> None:
        self.step_failures.labels(step, code).inc()

    def judge_call(self, judge: str, step: str) -> None:
        self.judge_calls.labels(judge, step).inc()

    def verified(self, mode: str, accepted: bool, seconds: float) -> None:
        self.verifications.labels(mode, "accept" if accepted else "reject").inc()
        self.seconds.labels(mode).observe(seconds)

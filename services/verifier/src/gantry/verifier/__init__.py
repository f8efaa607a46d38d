"""Gantry verifier: rubric-guided verification of agent answers (DeepVerifier).

In-process use: `gantry.verifier.pipeline.Pipeline.from_settings(settings).verify(request)`.
"""

"""Meta-evaluation of the verifier (DeepVerifier's central claim, measured here).

dataset.py builds a labelled set of agent answers through envfarm (executable ground
truth: every answer replayed), failures.py injects one failure per taxonomy class,
run.py verifies the set per mode and runs the refine loop, scoring.py scores it (reject =
positive), stack.py starts a local envfarm/rollout/verifier stack, cli.py is
`python -m gantry.verifier.metaeval`.
"""

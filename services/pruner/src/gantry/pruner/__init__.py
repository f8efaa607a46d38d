"""pruner: goal-hint line-level context pruning (SWE-Pruner) and code-prompt checks."""

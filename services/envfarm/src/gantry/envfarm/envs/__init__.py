"""VisGym's environments (gymnasium) and their solvers."""

from gantry.envfarm.envs.registry import ENVIRONMENTS, env_ids, make, solver_for

__all__ = ["ENVIRONMENTS", "env_ids", "make", "solver_for"]

"""`python -m gantry.rollout`: run the rollout service (same as `gantry serve rollout`)."""

from gantry.core.server import serve
from gantry.rollout.service import RolloutService

serve(RolloutService)

"""`python -m gantry.envfarm`: run the envfarm service (same as `gantry serve envfarm`)."""

from gantry.core.server import serve
from gantry.envfarm.service import EnvFarmService

serve(EnvFarmService)

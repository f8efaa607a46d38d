"""`python -m gantry.vla`: run the vla service (same as `gantry serve vla`)."""

from gantry.core.server import serve
from gantry.vla.service import VlaService

serve(VlaService)

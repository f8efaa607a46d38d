"""`python -m gantry.pruner`: run the pruner service (same as `gantry serve pruner`)."""

from gantry.core.server import serve
from gantry.pruner.service import PrunerService

serve(PrunerService)

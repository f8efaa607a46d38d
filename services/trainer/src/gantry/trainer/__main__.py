"""`python -m gantry.trainer`: run the trainer service (same as `gantry serve trainer`)."""

from gantry.core.server import serve
from gantry.trainer.service import TrainerService

serve(TrainerService)

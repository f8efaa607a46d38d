"""`python -m gantry.verifier`: run the verifier service (same as `gantry serve verifier`)."""

from gantry.core.server import serve
from gantry.verifier.service import VerifierService

serve(VerifierService)

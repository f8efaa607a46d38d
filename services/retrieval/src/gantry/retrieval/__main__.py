"""`python -m gantry.retrieval`: run the retrieval service (same as `gantry serve retrieval`)."""

from gantry.core.server import serve
from gantry.retrieval.service import RetrievalService

serve(RetrievalService)

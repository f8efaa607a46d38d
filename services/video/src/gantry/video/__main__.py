"""`python -m gantry.video`: run the video service (same as `gantry serve video`)."""

from gantry.core.server import serve
from gantry.video.service import VideoService

serve(VideoService)

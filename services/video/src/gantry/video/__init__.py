"""video: video-to-video diffusion (Wan 2.1) with SALAD attention and Memory-V2V memory."""

"""gantry-vla: TwinBrainVLA vision-language-action control over gRPC."""

"""Gantry kernels: one module per operation.

Each module holds a Triton kernel, the plain-torch reference that defines its semantics,
and a dispatcher (Triton on CUDA, torch elsewhere):

* ``fp8_quant``  — per-block 128×128 weight and per-group 1×128 activation quantization;
* ``fp8_gemm``   — FP8 GEMM with block/group scales;
* ``fp8_linear`` — ``FP8Linear`` (FP8 forward, dgrad and wgrad) and the model converter;
* ``recipes``    — the ``bf16`` / ``fp8-naive`` / ``fp8-jet`` precision recipes;
* ``fp8``        — all of the above in one import; ``numerics`` — error metrics.
* ``sparse_attention`` — block-sparse attention (3D windows + top-k blocks), fwd and bwd;
* ``linear_attention`` — normalised linear attention; ``token_merge`` — learned token merging.

Importing this package imports nothing heavy; triton is optional (``gantry-kernels[triton]``).
"""

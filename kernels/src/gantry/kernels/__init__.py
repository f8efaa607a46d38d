"""Gantry kernels: one module per operation.

Each module holds a Triton kernel, the plain-torch reference that defines its semantics,
and a dispatcher (Triton on CUDA, torch elsewhere).
"""

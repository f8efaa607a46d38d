"""Gantry kernels: one module per operation, each with a Triton kernel, a torch reference and a dispatcher."""

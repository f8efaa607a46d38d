"""The Triton kernels compile for Hopper (sm_90) on this CPU-only machine.

The interpreter runs kernels on CPU but does not type-check them the way the GPU compiler
does (it accepted annotations the compiler rejects, and it never lowers ``tl.dot`` to
tensor cores). Triton ships ``ptxas``, so the full pipeline down to PTX/cubin runs without
a GPU: this test compiles every kernel and checks the code it produced. It runs in a
subprocess because this test session has TRITON_INTERPRET=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = r"""
import json
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from gantry.kernels import fp8_gemm as g, fp8_quant as q

target = GPUTarget("cuda", 90, 32)
out = {}

def compile_(name, fn, sig, consts, **opts):
    kernel = triton.compile(ASTSource(fn, sig, consts), target=target, options=opts)
    ptx = kernel.asm["ptx"]
    out[name] = {
        "wgmma": "wgmma" in ptx,
        "div_rn": "div.rn.f32" in ptx,
        "div_approx": "div.full.f32" in ptx or "div.approx.f32" in ptx,
        "cvt_fp8": "cvt.rn.satfinite.e4m3x2.f32" in ptx or "cvt.rn.satfinite.e5m2x2.f32" in ptx,
        "tma": "cp.async.bulk.tensor" in ptx,
        "cubin": len(kernel.asm["cubin"]),
    }

ints = lambda *names: {n: "i32" for n in names}
for fmt, dt in (("e4m3", "fp8e4nv"), ("e5m2", "fp8e5")):
    c = {"FMAX": q.FP8_MAX[fmt], "EPS": q.AMAX_EPS, "MANT_BITS": q.MANT_BITS[fmt],
         "SUB_EXP": q.SUB_EXP[fmt]}
    ptrs = {"x_ptr": "*bf16", "q_ptr": f"*{dt}", "s_ptr": "*fp32"}
    sizes = ints("n_rows", "n_cols", "stride_xr", "stride_xc")
    sig = {**ptrs, "qt_ptr": f"*{dt}", "st_ptr": "*fp32", **sizes}
    compile_(f"weight_{fmt}", q._weight_quant_kernel, {**sig, **{k: "constexpr" for k in
             [*c, "BLOCK_SIZE", "WRITE_T"]}}, {**c, "BLOCK_SIZE": 128, "WRITE_T": True},
             num_warps=8)
    compile_(f"group_rows_{fmt}", q._group_quant_rows_kernel, {**ptrs, **sizes, **{k:
             "constexpr" for k in [*c, "BLOCK_R", "GROUP"]}}, {**c, "BLOCK_R": 32,
             "GROUP": 128}, num_warps=4)
    compile_(f"group_cols_{fmt}", q._group_quant_cols_kernel, {**ptrs, **sizes, **{k:
             "constexpr" for k in [*c, "GROUP", "BLOCK_C"]}}, {**c, "GROUP": 128,
             "BLOCK_C": 64}, num_warps=4)
for a_dt in ("fp8e4nv", "fp8e5"):
    for n in (64, 4096):  # both tile classes of gemm_config
        cfg = g.gemm_config(n, 4096)
        sig = {"a_ptr": f"*{a_dt}", "b_ptr": "*fp8e4nv", "c_ptr": "*bf16", "sa_ptr": "*fp32",
               "sb_ptr": "*fp32", **ints("M", "N", "K", "stride_am", "stride_ak", "stride_bn",
               "stride_bk", "stride_cm", "stride_cn", "stride_sam", "stride_sbn")}
        consts = {"A_ROWS": 1, "B_ROWS": 128, "BLOCK_M": cfg.block_m, "BLOCK_N": cfg.block_n,
                  "BLOCK_K": 128, "GROUP_M": cfg.group_m, "ORDERED_DOT": False}
        compile_(f"gemm_{a_dt}_{cfg.block_n}", g._fp8_gemm_kernel, {**sig, **{k: "constexpr"
                 for k in consts}}, consts, num_warps=cfg.num_warps, num_stages=cfg.num_stages)
desc = "tensordesc<fp8e4nv[128, 128]>"
sig = {"a_desc": desc, "b_desc": desc, "a_ptr": "*fp8e4nv", "b_ptr": "*fp8e4nv", "c_ptr": "*bf16",
       "sa_ptr": "*fp32", "sb_ptr": "*fp32", **ints("M", "N", "K", "stride_am", "stride_bn",
       "stride_cm", "stride_cn", "stride_sam", "stride_sbn")}
consts = {"A_ROWS": 1, "B_ROWS": 128, "BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 128,
          "GROUP_M": 8, "NUM_PROGRAMS": 132, "ORDERED_DOT": False}
compile_("gemm_persistent_tma", g._fp8_gemm_persistent_kernel, {**sig, **{k: "constexpr" for k
         in consts}}, consts, num_warps=8, num_stages=3)
print(json.dumps(out))
"""


@pytest.mark.slow
def test_kernels_compile_for_sm90(tmp_path: Path) -> None:
    env = {**os.environ, "TRITON_INTERPRET": "0", "TRITON_CACHE_DIR": str(tmp_path)}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(report) == 11
    for name, info in report.items():
        assert info["cubin"] > 0, name
        if name.startswith("gemm"):
            assert info["wgmma"], f"{name}: FP8 dot not lowered to Hopper tensor cores"
            assert info["tma"] == name.endswith("tma"), f"{name}: TMA loads"
        else:
            # Bit-exact with the torch reference needs IEEE division and an exact final cast.
            assert info["div_rn"] and not info["div_approx"], name
            assert info["cvt_fp8"], name

#!/usr/bin/env python3
"""Kiln's skinny GEMM (KernelSource kiln_gemm_skinny_m*) vs cuBLAS, on a GPU machine, without Kiln.

Compiles KernelSource.swift's CUDA source with NVRTC (through CuPy, as Kiln compiles it), checks the
kernel against a float32 product of the same fp16 operands for BERT-base GEMM shapes and row counts
1..64, then times a BERT-base-like chain of 12 layers x 4 GEMMs (distinct weights per layer, 170 MB,
so weights stream from device memory as in a forward) as one CUDA graph: Kiln's kernel at several
K splits vs torch's fp16 linear (cuBLASLt) + the separate GELU a Kiln engine runs today.
Run from the repo root on the GPU machine: python3 tools/gpu_skinny_gemm_bench.py [--rows 32]
"""
import argparse, re, sys, time, warnings
warnings.filterwarnings("ignore", category=DeprecationWarning)  # cupy.cuda.ExternalStream
import numpy as np
import cupy as cp
import torch
from cuda_graph_timer import graph_microseconds

p = argparse.ArgumentParser()
p.add_argument("--rows", type=int, default=32)
p.add_argument("--replays", type=int, default=300)
args = p.parse_args()

src = open("Sources/KilnCUDA/Kernels/KernelSource.swift").read()
body = re.search(r'public static let source = #"""\n(.*?)\n    """#', src, re.S).group(1)
code = "\n".join(l[4:] if l.startswith("    ") else l for l in body.split("\n"))
t0 = time.time()
module = cp.RawModule(code=code, options=("--std=c++17", "-default-device", "--extra-device-vectorization"), backend="nvrtc")
kernels = {mt: module.get_function(f"kiln_gemm_skinny_m{mt}") for mt in (1, 2, 3, 4)}
print(f"compiled in {time.time() - t0:.1f} s on {torch.cuda.get_device_name()}")
SMS = torch.cuda.get_device_properties(0).multi_processor_count

workspace = cp.zeros(64 * 4096, dtype=cp.float32)
counters = cp.zeros(4096 // 32, dtype=cp.uint32)
NULL = np.uint64(0)

def launch(x, wt, bias, y, m, n, k, kspan, act, stream):
    mt = (m + 15) // 16
    grid = ((n + 127) // 128, (k + kspan - 1) // kspan)
    kernels[mt](grid, (128,), (x, np.int32(k), wt, bias if bias is not None else NULL, y, workspace, counters,
                               np.int32(m), np.int32(n), np.int32(k), np.int32(kspan), np.int32(act)), stream=stream)

def gelu(v):
    return 0.5 * v * (1 + torch.erf(v / 2 ** 0.5))

# --- correctness ---
shapes = [(2304, 768, 0), (768, 768, 0), (3072, 768, 1), (768, 3072, 0), (96, 768, 0)]
worst = 0.0
failures = 0
for (n, k, act) in shapes:
    for m in (1, 7, 16, 17, 32, 33, 50, 64):
        for kspan in sorted({64, 256, k}):
            xt = (torch.randn(m, k, device="cuda") * 0.5).half()
            wt_t = (torch.randn(n, k, device="cuda") / k ** 0.5).half()
            bt = (torch.randn(n, device="cuda") * 0.1).half()
            ref = xt.float() @ wt_t.float().t() + bt.float()
            if act == 1:
                ref = gelu(ref)
            y = cp.zeros((m, n), dtype=cp.float16)
            launch(cp.asarray(xt), cp.asarray(wt_t), cp.asarray(bt), y, m, n, k, kspan, act, cp.cuda.Stream.null)
            cp.cuda.Stream.null.synchronize()
            got = torch.as_tensor(y, device="cuda").float()
            err = (got - ref).abs().max().item() / max(1.0, ref.abs().max().item())
            worst = max(worst, err)
            if not err < 4e-3:
                failures += 1
                print(f"MISMATCH n={n} k={k} m={m} kspan={kspan}: rel max-abs {err:.3e}")
assert int(workspace.any()) == 0 and int(counters.any()) == 0, "workspace/counters not left zero"
print(f"correctness: {len(shapes) * 8} shape/row cases x splits, worst rel max-abs {worst:.2e}, failures {failures}")

# --- timing: 12 layers x (QKV, O, FFN1+GELU, FFN2), distinct weights ---
M = args.rows
layer_shapes = [(2304, 768, 0), (768, 768, 0), (3072, 768, 1), (768, 3072, 0)]
layers = 12
torch_w = [[((torch.randn(n, k, device="cuda") / k ** 0.5).half(), (torch.randn(n, device="cuda") * 0.1).half())
            for (n, k, _) in layer_shapes] for _ in range(layers)]
x_in = {k: (torch.randn(M, k, device="cuda") * 0.5).half() for k in (768, 3072)}
outs = {n: torch.empty(M, n, device="cuda", dtype=torch.half) for n in (768, 2304, 3072)}

def time_graph(run, label, count=48):
    t = graph_microseconds(run, args.replays)
    print(f"{label:<60} {t:8.1f} us per {count} launches ({t / count:5.2f} us each)")
    return t

def torch_chain(s):
    for l in range(layers):
        for (n, k, act), (w, b) in zip(layer_shapes, torch_w[l]):
            y = torch.nn.functional.linear(x_in[k], w, b)
            if act == 1:
                y = torch.nn.functional.gelu(y)
results = {"torch fp16 linear (+ gelu kernel)": time_graph(torch_chain, "torch fp16 linear (+ gelu kernel)")}

def per_shape_torch(shape_index):
    def run(s):
        for l in range(layers):
            n, k, act = layer_shapes[shape_index]
            w, b = torch_w[l][shape_index]
            y = torch.nn.functional.linear(x_in[k], w, b)
            if act == 1:
                y = torch.nn.functional.gelu(y)
    return run

def kiln_chain(kspans, only=None):
    def run(s):
        cs = cp.cuda.ExternalStream(s.cuda_stream)
        chain = [(l, i) for l in range(layers) for i in range(4) if only is None or i == only]
        for l, i in chain:
            (n, k, act), (w, b) = layer_shapes[i], torch_w[l][i]
            launch(x_in[k].data_ptr(), w.data_ptr(), b.data_ptr(), outs[n].data_ptr(), M, n, k, kspans[i], act, cs)
    return run

def heuristic(n, k):
    # what SkinnyGemmWorkspace.kSpan (SkinnyGemm.swift) picks
    tiles = (n + 127) // 128
    best = 64
    for kspan in range(64, k + 1, 64):
        if k % kspan == 0 and tiles * (k // kspan) >= SMS:
            best = kspan
    return best

chosen = [heuristic(n, k) for (n, k, _) in layer_shapes]
results["kiln heuristic"] = time_graph(kiln_chain(chosen), f"kiln skinny, heuristic kspans {chosen}")
for kspan in (64, 128, 256, 384, 768):
    results[f"kiln {kspan}"] = time_graph(kiln_chain([min(kspan, k) for (_, k, _) in layer_shapes]), f"kiln skinny, kspan {kspan}")

print("per shape (12 distinct weights each):")
for i, (n, k, act) in enumerate(layer_shapes):
    time_graph(per_shape_torch(i), f"  torch N={n} K={k} act={act}", count=12)
    for kspan in sorted({64, 128, 192, 256, 384, 768, chosen[i]}):
        if kspan <= k and k % kspan == 0:
            time_graph(kiln_chain([kspan] * 4, only=i), f"  kiln  N={n} K={k} kspan={kspan} blocks={((n+127)//128)*(k//kspan)}", count=12)

# --- LayerNorm kernels (SkipLayerNorm as BERT runs it: x + skip + bias, gamma, beta; fp16 out) ---
print("layernorm (width 768, x + skip + bias), us per launch in a graph of 24:")
ln = {name: module.get_function(name) for name in ("kiln_layer_norm_warp", "kiln_layer_norm_warp_prefetch", "kiln_layer_norm_warp8")}
width = 768
gamma_t = torch.rand(width, device="cuda") + 0.5
beta_t = torch.randn(width, device="cuda") * 0.1
bias_t = torch.randn(width, device="cuda") * 0.1
for rows in (32, 512, 8192):
    xs = [(torch.randn(rows, width, device="cuda")).half() for _ in range(2)]
    skips = [(torch.randn(rows, width, device="cuda")).half() for _ in range(2)]
    ref = torch.nn.functional.layer_norm(xs[0].float() + skips[0].float() + bias_t, (width,), gamma_t, beta_t, 1e-12)
    lnouts = [torch.empty(rows, width, device="cuda", dtype=torch.half) for _ in range(2)]
    variants = [("kiln_layer_norm_warp", (rows + 7) // 8, 256), ("kiln_layer_norm_warp_prefetch", rows, 32),
                ("kiln_layer_norm_warp8", (rows + 7) // 8, 256), ("kiln_layer_norm_warp8", rows, 32), ("kiln_layer_norm_warp8", (rows + 3) // 4, 128)]
    for name, grid, block in variants:
        def run(s, name=name, grid=grid, block=block):
            cs = cp.cuda.ExternalStream(s.cuda_stream)
            for i in range(24):
                j = i % 2
                ln[name]((grid,), (block,), (xs[j].data_ptr(), skips[j].data_ptr(), bias_t.data_ptr(), gamma_t.data_ptr(), beta_t.data_ptr(),
                                             lnouts[j].data_ptr(), NULL, NULL, np.int32(rows), np.int32(width), np.float32(1e-12)), stream=cs)
        time_graph(run, f"  rows {rows:5d} {name} grid {grid} block {block}", count=24)
        err = (lnouts[0].float() - ref).abs().max().item()
        print(f"      max-abs vs torch fp32 {err:.2e}{'  FAIL' if not err < 1e-2 else ''}")

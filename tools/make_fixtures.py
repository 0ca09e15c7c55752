#!/usr/bin/env python3
"""Generate Kiln's golden test fixtures against ONNX Runtime.

Writes three trees under Tests/Fixtures/ (see tools/README.md):

  models/<name>/   small random-weight BERT-family models exported with both PyTorch
                   exporters (TorchScript and dynamo), with ONNX Runtime's outputs on a
                   ragged batch and a batch of one.
  ops/<case>/      single-op (or tiny) graphs built with onnx.helper, per-opset variants,
                   broadcasting, odd shapes, with ONNX Runtime's outputs.
  import/<case>/   importer edge cases: every initializer dtype in raw and typed form,
                   external data (present and missing), unsupported ops, an opset that is
                   too old, value_info with symbolic dims.

Every fixture folder holds model.onnx, inputs/<name>.npy, outputs/<name>.npy and a
manifest.json. Outputs always come from ONNX Runtime on CPUExecutionProvider with graph
optimizations DISABLED, so ORT runs the graph exactly as written. For model fixtures
the script also runs PyTorch on the same inputs and fails loudly when PyTorch and ORT
differ by more than the tolerance (1e-4 max-abs).

Deterministic: fixed seeds, single-threaded ORT and torch. Run from the repo root:

    nice -n 10 /work/venv-torch/bin/python tools/make_fixtures.py            # everything
    nice -n 10 /work/venv-torch/bin/python tools/make_fixtures.py --only ops # one tree
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "Tests" / "Fixtures"
TOLERANCE = 1e-4
INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


# ─────────────────────────────────────────────────────────────────────────────
# Shared helpers: ORT session, npy I/O, manifests
# ─────────────────────────────────────────────────────────────────────────────

def ort_session(model_path: Path | str) -> ort.InferenceSession:
    """A CPU session that runs the graph as written (no graph rewrites), single thread."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def run_ort(model_path: Path | str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort_session(model_path)
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, feeds)
    return dict(zip(names, values))


def tensor_desc(name: str, array: np.ndarray) -> dict:
    return {"name": name, "dtype": str(array.dtype), "shape": list(array.shape)}


def write_arrays(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        np.save(folder / f"{safe_file_name(name)}.npy", np.asarray(array), allow_pickle=False)


def safe_file_name(name: str) -> str:
    """Tensor names such as 'onnx::Add_3' or 'a/b' become file-system friendly."""
    return "".join(c if (c.isalnum() or c in "-_.") else "_" for c in name)


def compact_json(value, indent: int = 0) -> str:
    """JSON with one key per line but short scalar lists (shapes, values) kept on one line."""
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f'{pad}  {json.dumps(str(k))}: {compact_json(v, indent + 1)}' for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        items = [f"{pad}  {compact_json(v, indent + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(value)


def write_manifest(folder: Path, manifest: dict) -> None:
    with open(folder / "manifest.json", "w") as f:
        f.write(compact_json(manifest) + "\n")


def fresh_dir(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def op_histogram(model: onnx.ModelProto) -> collections.Counter:
    """Counts op types in the main graph and every subgraph (If/Loop bodies)."""
    counts: collections.Counter = collections.Counter()

    def visit(graph: onnx.GraphProto) -> None:
        for node in graph.node:
            key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"
            counts[key] += 1
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    visit(attr.g)
                for g in attr.graphs:
                    visit(g)

    visit(model.graph)
    return counts


def default_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    raise ValueError("model has no default-domain opset")


# ─────────────────────────────────────────────────────────────────────────────
# Op fixtures: one (or a few) ONNX nodes built with onnx.helper
# ─────────────────────────────────────────────────────────────────────────────

NP_TO_ONNX = {
    np.dtype("float32"): TensorProto.FLOAT,
    np.dtype("float16"): TensorProto.FLOAT16,
    np.dtype("float64"): TensorProto.DOUBLE,
    np.dtype("int64"): TensorProto.INT64,
    np.dtype("int32"): TensorProto.INT32,
    np.dtype("int8"): TensorProto.INT8,
    np.dtype("uint8"): TensorProto.UINT8,
    np.dtype("bool"): TensorProto.BOOL,
}


@dataclass
class OpCase:
    """One op fixture.

    inputs are graph inputs (fed at run time, saved under inputs/); params are
    initializers (constant operands such as shapes, axes, weights) stored in the model.
    outputs maps each graph output name to its numpy dtype.
    """

    name: str
    op: str
    opset: int
    nodes: list
    inputs: dict[str, np.ndarray]
    outputs: dict[str, str]
    params: dict[str, np.ndarray] = field(default_factory=dict)
    tolerance: float = TOLERANCE
    note: str = ""


def case_rng(name: str) -> np.random.Generator:
    """A generator seeded by the case name, so adding a case never changes another."""
    import zlib

    return np.random.default_rng(zlib.crc32(name.encode()))


def value_info(name: str, array_or_dtype, shape=None) -> onnx.ValueInfoProto:
    if isinstance(array_or_dtype, np.ndarray):
        return helper.make_tensor_value_info(name, NP_TO_ONNX[array_or_dtype.dtype], list(array_or_dtype.shape))
    return helper.make_tensor_value_info(name, NP_TO_ONNX[np.dtype(array_or_dtype)], shape)


def build_op_model(case: OpCase) -> onnx.ModelProto:
    graph = helper.make_graph(
        case.nodes,
        case.name,
        inputs=[value_info(n, a) for n, a in case.inputs.items()],
        outputs=[value_info(n, dt) for n, dt in case.outputs.items()],
        initializer=[numpy_helper.from_array(a, n) for n, a in case.params.items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", case.opset)], producer_name="kiln-make-fixtures"
    )
    model.ir_version = min(model.ir_version, 10)  # onnxruntime reads IR <= 10 everywhere
    return model


def set_output_shapes(model: onnx.ModelProto, outputs: dict[str, np.ndarray]) -> None:
    """Graph outputs get the concrete shapes ORT produced, so the saved model is fully typed."""
    for vi in model.graph.output:
        shape = vi.type.tensor_type.shape
        shape.Clear()
        for dim in outputs[vi.name].shape:
            shape.dim.add().dim_value = dim


def write_op_case(root: Path, case: OpCase) -> dict:
    folder = fresh_dir(root / case.name)
    model = build_op_model(case)
    onnx.save(model, folder / "model.onnx")
    outputs = run_ort(folder / "model.onnx", case.inputs)
    set_output_shapes(model, outputs)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, folder / "model.onnx")
    for name, dtype in case.outputs.items():
        if outputs[name].dtype != np.dtype(dtype):
            raise AssertionError(f"{case.name}: output {name} is {outputs[name].dtype}, declared {dtype}")
    write_arrays(folder / "inputs", case.inputs)
    write_arrays(folder / "outputs", outputs)
    small_params = {
        n: {"dtype": str(a.dtype), "shape": list(a.shape), "value": a.tolist()}
        for n, a in case.params.items()
        if a.size <= 16
    }
    write_manifest(
        folder,
        {
            "op": case.op,
            "opset": case.opset,
            "note": case.note,
            "tolerance": case.tolerance,
            "exact_for_integer_and_bool_outputs": True,
            "inputs": [tensor_desc(n, a) for n, a in case.inputs.items()],
            "outputs": [tensor_desc(n, outputs[n]) for n in case.outputs],
            "constant_operands": small_params,
            "nodes": [n.op_type for n in model.graph.node],
        },
    )
    return {"fixture": f"ops/{case.name}", "op": case.op, "opset": case.opset}


def node(op: str, inputs: list[str], outputs: list[str], **attrs) -> onnx.NodeProto:
    return helper.make_node(op, inputs, outputs, **attrs)


def i64(*values) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def unary_float_cases() -> list[OpCase]:
    cases = []
    specs = [
        # (op, opset, input builder)
        ("Sqrt", 13, lambda r: np.abs(r.standard_normal((3, 7))).astype(np.float32) * 4),
        ("Erf", 13, lambda r: (r.standard_normal((1, 7, 33)) * 2).astype(np.float32)),
        ("Tanh", 13, lambda r: (r.standard_normal((7, 33)) * 3).astype(np.float32)),
        ("Neg", 13, lambda r: r.standard_normal((7, 1)).astype(np.float32)),
        ("Abs", 13, lambda r: r.standard_normal((33,)).astype(np.float32)),
        ("Exp", 13, lambda r: (r.standard_normal((3, 7)) * 3).astype(np.float32)),
        ("Log", 13, lambda r: (np.abs(r.standard_normal((3, 7))) * 5 + 1e-3).astype(np.float32)),
        ("Sigmoid", 13, lambda r: (r.standard_normal((7, 33)) * 6).astype(np.float32)),
        ("Relu", 14, lambda r: r.standard_normal((1, 7, 33)).astype(np.float32)),
        ("Floor", 13, lambda r: (r.standard_normal((7, 7)) * 5).astype(np.float32)),
        ("Ceil", 13, lambda r: (r.standard_normal((7, 7)) * 5).astype(np.float32)),
        ("Identity", 16, lambda r: r.standard_normal((2, 7)).astype(np.float32)),
    ]
    for op, opset, build in specs:
        name = f"{op.lower()}_opset{opset}"
        x = build(case_rng(name))
        cases.append(OpCase(name, op, opset, [node(op, ["x"], ["y"])], {"x": x}, {"y": "float32"}))
    # Integer variants that BERT shape arithmetic uses.
    for op in ("Neg", "Abs", "Identity"):
        name = f"{op.lower()}_int64_opset{16 if op == 'Identity' else 13}"
        x = i64(-5, 0, 3, INT64_MAX, -7, 9, 1)
        cases.append(OpCase(name, op, 16 if op == "Identity" else 13, [node(op, ["x"], ["y"])], {"x": x}, {"y": "int64"}))
    # Edge values: exp overflow to inf, log(0) = -inf, sqrt(-1) = nan, sigmoid saturation.
    edge = np.array([0.0, -0.0, 1e-30, 88.0, 89.0, -104.0, 1e30, -1.0], dtype=np.float32)
    for op in ("Exp", "Log", "Sqrt", "Sigmoid", "Tanh", "Erf"):
        name = f"{op.lower()}_edge_values_opset13"
        cases.append(OpCase(name, op, 13, [node(op, ["x"], ["y"])], {"x": edge}, {"y": "float32"},
                            note="edge values: zeros, tiny, overflow, negative; expects inf/nan as ORT gives them"))
    return cases


def binary_cases() -> list[OpCase]:
    cases = []
    for op in ("Add", "Sub", "Mul", "Div"):
        name = f"{op.lower()}_broadcast_opset14"
        r = case_rng(name)
        a = r.standard_normal((2, 1, 7)).astype(np.float32)
        b = (r.standard_normal((3, 1)) + (3.0 if op == "Div" else 0.0)).astype(np.float32)
        cases.append(OpCase(name, op, 14, [node(op, ["a", "b"], ["c"])], {"a": a, "b": b}, {"c": "float32"},
                            note="bidirectional broadcast [2,1,7] op [3,1] -> [2,3,7]"))
        name = f"{op.lower()}_scalar_opset14"
        r = case_rng(name)
        a = r.standard_normal((1, 7, 33)).astype(np.float32)
        b = np.array(np.float32(2.5 if op != "Sub" else 10000.0))
        cases.append(OpCase(name, op, 14, [node(op, ["a", "b"], ["c"])], {"a": a, "b": b}, {"c": "float32"},
                            note="rank-0 operand"))
        name = f"{op.lower()}_int64_opset14"
        a = i64(7, -7, 9, 0, -1, 64, 33).reshape(7, 1)
        b = i64(2, -3, 5) if op == "Div" else i64(2, -3, 0)
        cases.append(OpCase(name, op, 14, [node(op, ["a", "b"], ["c"])], {"a": a, "b": b}, {"c": "int64"},
                            note="int64; Div truncates toward zero (C semantics) in ORT" if op == "Div" else "int64"))
    # Opset 7 style (multidirectional broadcast exists since 7): a realistic mask expression.
    name = "sub_mul_attention_mask_opset13"
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=np.float32).reshape(2, 1, 1, 5)
    cases.append(OpCase(
        name, "Sub", 13,
        [node("Sub", ["one", "mask"], ["inv"]), node("Mul", ["inv", "big"], ["bias"])],
        {"mask": mask}, {"bias": "float32"},
        params={"one": np.array(1.0, np.float32), "big": np.array(np.finfo(np.float32).min, np.float32)},
        note="(1 - mask) * finfo(float32).min, the HF extended attention mask",
    ))
    # Pow: float exponent, scalar exponent, int64 exponent (T2 differs from T since opset 12).
    r = case_rng("pow")
    base = (np.abs(r.standard_normal((3, 7))) + 0.1).astype(np.float32)
    cases.append(OpCase("pow_scalar_exponent_opset13", "Pow", 13, [node("Pow", ["x", "e"], ["y"])],
                        {"x": base}, {"y": "float32"}, params={"e": np.array(3.0, np.float32)}))
    cases.append(OpCase("pow_broadcast_exponent_opset15", "Pow", 15, [node("Pow", ["x", "e"], ["y"])],
                        {"x": base, "e": np.array([0.5, 2.0, -1.0, 0.0, 1.0, 3.0, 2.5], np.float32)},
                        {"y": "float32"}))
    cases.append(OpCase("pow_int64_exponent_opset13", "Pow", 13, [node("Pow", ["x", "e"], ["y"])],
                        {"x": (r.standard_normal((7,)) * 2).astype(np.float32)}, {"y": "float32"},
                        params={"e": np.array(2, np.int64)}, note="float base, int64 exponent; negative base"))
    # Max / Min: variadic with broadcasting, single input, int64.
    r = case_rng("maxmin")
    x1 = r.standard_normal((3, 1, 7)).astype(np.float32)
    x2 = r.standard_normal((1, 5, 7)).astype(np.float32)
    x3 = r.standard_normal((7,)).astype(np.float32)
    cases.append(OpCase("max_variadic_broadcast_opset13", "Max", 13, [node("Max", ["a", "b", "c"], ["y"])],
                        {"a": x1, "b": x2, "c": x3}, {"y": "float32"}))
    cases.append(OpCase("max_single_input_opset13", "Max", 13, [node("Max", ["a"], ["y"])], {"a": x1}, {"y": "float32"}))
    cases.append(OpCase("max_int64_opset13", "Max", 13, [node("Max", ["a", "b"], ["y"])],
                        {"a": i64(1, -5, 9, 0), "b": i64(3)}, {"y": "int64"}))
    cases.append(OpCase("min_broadcast_opset13", "Min", 13, [node("Min", ["a", "b"], ["y"])],
                        {"a": x1, "b": x2}, {"y": "float32"}))
    cases.append(OpCase("min_int64_opset13", "Min", 13, [node("Min", ["a", "b", "c"], ["y"])],
                        {"a": i64(1, -5, 9, 0), "b": i64(3), "c": i64(2, 2, 2, -9)}, {"y": "int64"}))
    # Mod: fmod=0 on int64 (sign follows the divisor), fmod=1 on float (sign follows the dividend).
    cases.append(OpCase("mod_int64_opset13", "Mod", 13, [node("Mod", ["a", "b"], ["y"])],
                        {"a": i64(7, -7, 7, -7, 0, 33), "b": i64(3, 3, -3, -3, 5, 7)}, {"y": "int64"},
                        note="fmod=0: result has the sign of the divisor (Python %)"))
    cases.append(OpCase("mod_fmod_float_opset13", "Mod", 13, [node("Mod", ["a", "b"], ["y"], fmod=1)],
                        {"a": np.array([7.5, -7.5, 7.5, -7.5, 0.25], np.float32),
                         "b": np.array([2.0, 2.0, -2.0, -2.0, 0.1], np.float32)}, {"y": "float32"},
                        note="fmod=1: C fmod, sign of the dividend"))
    return cases


def comparison_logic_cases() -> list[OpCase]:
    cases = []
    r = case_rng("compare")
    a = np.round(r.standard_normal((3, 7)), 1).astype(np.float32)
    b = np.round(r.standard_normal((7,)), 1).astype(np.float32)
    b[:3] = a[0, :3]  # some exact ties
    for op, opset in (("Equal", 13), ("Greater", 13), ("GreaterOrEqual", 16), ("Less", 13), ("LessOrEqual", 16)):
        cases.append(OpCase(f"{op.lower()}_float_broadcast_opset{opset}", op, opset, [node(op, ["a", "b"], ["y"])],
                            {"a": a, "b": b}, {"y": "bool"}))
    ia = i64(0, 1, 2, 1, 0, 5, -1).reshape(1, 7)
    ib = i64(1, 0, 2).reshape(3, 1)
    for op in ("Equal", "Greater", "Less"):
        cases.append(OpCase(f"{op.lower()}_int64_broadcast_opset13", op, 13, [node(op, ["a", "b"], ["y"])],
                            {"a": ia, "b": ib}, {"y": "bool"}))
    cases.append(OpCase("equal_bool_opset13", "Equal", 13, [node("Equal", ["a", "b"], ["y"])],
                        {"a": np.array([True, False, True, False]), "b": np.array([True, True, False, False])},
                        {"y": "bool"}))
    ba = np.array([[True, False, True, False, True, True, False]])
    bb = np.array([[True], [False], [True]])
    for op in ("And", "Or", "Xor"):
        cases.append(OpCase(f"{op.lower()}_broadcast_opset11", op, 11, [node(op, ["a", "b"], ["y"])],
                            {"a": ba, "b": bb}, {"y": "bool"}))
    cases.append(OpCase("not_opset11", "Not", 11, [node("Not", ["x"], ["y"])], {"x": bb}, {"y": "bool"}))
    x = np.array([1.0, np.nan, -np.inf, np.inf, 0.0, -np.nan, 3.0], np.float32)
    cases.append(OpCase("isnan_opset13", "IsNaN", 13, [node("IsNaN", ["x"], ["y"])], {"x": x}, {"y": "bool"}))
    cases.append(OpCase("isinf_opset10", "IsInf", 10, [node("IsInf", ["x"], ["y"])], {"x": x}, {"y": "bool"}))
    # Where with three-way broadcasting, float and int64.
    cond = r.random((3, 1, 7)) > 0.5
    xv = r.standard_normal((1, 5, 7)).astype(np.float32)
    cases.append(OpCase("where_broadcast_opset16", "Where", 16, [node("Where", ["c", "x", "y"], ["z"])],
                        {"c": cond, "x": xv, "y": np.array(-1e4, np.float32)}, {"z": "float32"},
                        note="[3,1,7] ? [1,5,7] : scalar -> [3,5,7]"))
    cases.append(OpCase("where_int64_opset9", "Where", 9, [node("Where", ["c", "x", "y"], ["z"])],
                        {"c": np.array([True, False, True]), "x": i64(1, 2, 3), "y": i64(-1)}, {"z": "int64"}))
    return cases


def matmul_gemm_cases() -> list[OpCase]:
    cases = []
    shapes = [
        ("matmul_2d", (7, 33), (33, 5)),
        ("matmul_3d_batched", (2, 7, 33), (2, 33, 5)),
        ("matmul_4d_batched", (2, 3, 7, 8), (2, 3, 8, 7)),
        ("matmul_4d_by_2d_broadcast", (2, 3, 7, 8), (8, 5)),
        ("matmul_batch_broadcast", (1, 3, 7, 8), (2, 1, 8, 5)),
        ("matmul_vector_left", (33,), (2, 33, 5)),
        ("matmul_vector_right", (2, 7, 33), (33,)),
        ("matmul_1x1", (1, 1), (1, 1)),
    ]
    for name, sa, sb in shapes:
        r = case_rng(name)
        a = r.standard_normal(sa).astype(np.float32)
        b = r.standard_normal(sb).astype(np.float32)
        cases.append(OpCase(f"{name}_opset13", "MatMul", 13, [node("MatMul", ["a", "b"], ["y"])],
                            {"a": a, "b": b}, {"y": "float32"}, note=f"{list(sa)} x {list(sb)}"))
    # Weight as an initializer, the way exporters write it.
    r = case_rng("matmul_weight")
    cases.append(OpCase("matmul_initializer_weight_opset13", "MatMul", 13, [node("MatMul", ["x", "w"], ["y"])],
                        {"x": r.standard_normal((3, 9, 32)).astype(np.float32)}, {"y": "float32"},
                        params={"w": (r.standard_normal((32, 17)) * 0.2).astype(np.float32)}))
    gemms = [
        ("gemm_transb_bias_vector", dict(transB=1), (7, 33), (5, 33), (5,)),
        ("gemm_transa_alpha_beta_column_bias", dict(transA=1, alpha=0.5, beta=2.0), (33, 7), (33, 5), (7, 1)),
        ("gemm_both_trans_scalar_bias", dict(transA=1, transB=1, alpha=-1.5), (33, 7), (5, 33), ()),
        ("gemm_full_bias", dict(beta=0.25), (7, 33), (33, 5), (7, 5)),
        ("gemm_no_bias", dict(), (1, 33), (33, 5), None),
    ]
    for name, attrs, sa, sb, sc in gemms:
        r = case_rng(name)
        feeds = {"a": r.standard_normal(sa).astype(np.float32), "b": r.standard_normal(sb).astype(np.float32)}
        ins = ["a", "b"]
        if sc is not None:
            feeds["c"] = np.asarray(r.standard_normal(sc), dtype=np.float32)
            ins.append("c")
        cases.append(OpCase(f"{name}_opset13", "Gemm", 13, [node("Gemm", ins, ["y"], **attrs)], feeds, {"y": "float32"},
                            note=json.dumps(attrs)))
    r = case_rng("gemm11")
    cases.append(OpCase("gemm_transb_opset11", "Gemm", 11, [node("Gemm", ["a", "w", "bias"], ["y"], transB=1)],
                        {"a": r.standard_normal((3, 32)).astype(np.float32)}, {"y": "float32"},
                        params={"w": r.standard_normal((7, 32)).astype(np.float32),
                                "bias": r.standard_normal((7,)).astype(np.float32)},
                        note="classifier head as the TorchScript exporter writes it for 2-D input"))
    return cases


def reduce_softmax_norm_cases() -> list[OpCase]:
    cases = []
    r = case_rng("reduce")
    x = r.standard_normal((3, 7, 33)).astype(np.float32)
    # ReduceMean: axes attribute before opset 18, axes input from 18.
    cases.append(OpCase("reducemean_axes_attr_keepdims1_opset13", "ReduceMean", 13,
                        [node("ReduceMean", ["x"], ["y"], axes=[-1], keepdims=1)], {"x": x}, {"y": "float32"}))
    cases.append(OpCase("reducemean_axes_attr_keepdims0_opset11", "ReduceMean", 11,
                        [node("ReduceMean", ["x"], ["y"], axes=[0, 2], keepdims=0)], {"x": x}, {"y": "float32"}))
    cases.append(OpCase("reducemean_no_axes_opset13", "ReduceMean", 13,
                        [node("ReduceMean", ["x"], ["y"])], {"x": x}, {"y": "float32"}, note="reduce over all axes"))
    cases.append(OpCase("reducemean_axes_input_keepdims1_opset18", "ReduceMean", 18,
                        [node("ReduceMean", ["x", "axes"], ["y"], keepdims=1)], {"x": x}, {"y": "float32"},
                        params={"axes": i64(-1)}))
    cases.append(OpCase("reducemean_axes_input_keepdims0_opset18", "ReduceMean", 18,
                        [node("ReduceMean", ["x", "axes"], ["y"], keepdims=0)], {"x": x}, {"y": "float32"},
                        params={"axes": i64(1)}))
    cases.append(OpCase("reducemean_axes_omitted_opset18", "ReduceMean", 18,
                        [node("ReduceMean", ["x"], ["y"], keepdims=0)], {"x": x}, {"y": "float32"},
                        note="no axes input: reduce all"))
    # ReduceSum moved its axes to an input at opset 13.
    cases.append(OpCase("reducesum_axes_attr_opset11", "ReduceSum", 11,
                        [node("ReduceSum", ["x"], ["y"], axes=[1], keepdims=1)], {"x": x}, {"y": "float32"}))
    cases.append(OpCase("reducesum_axes_input_opset13", "ReduceSum", 13,
                        [node("ReduceSum", ["x", "axes"], ["y"], keepdims=0)], {"x": x}, {"y": "float32"},
                        params={"axes": i64(-1, 0)}))
    cases.append(OpCase("reducesum_noop_empty_axes_opset13", "ReduceSum", 13,
                        [node("ReduceSum", ["x", "axes"], ["y"], noop_with_empty_axes=1)], {"x": x}, {"y": "float32"},
                        params={"axes": np.zeros((0,), np.int64)}, note="empty axes + noop_with_empty_axes=1: identity"))
    cases.append(OpCase("reducesum_int64_opset13", "ReduceSum", 13,
                        [node("ReduceSum", ["x", "axes"], ["y"], keepdims=0)],
                        {"x": np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], np.int64)}, {"y": "int64"},
                        params={"axes": i64(1)}, note="sequence lengths from an attention mask"))
    cases.append(OpCase("reducemax_axes_attr_opset13", "ReduceMax", 13,
                        [node("ReduceMax", ["x"], ["y"], axes=[-1], keepdims=1)], {"x": x}, {"y": "float32"}))
    cases.append(OpCase("reducemax_axes_input_opset18", "ReduceMax", 18,
                        [node("ReduceMax", ["x", "axes"], ["y"], keepdims=0)], {"x": x}, {"y": "float32"},
                        params={"axes": i64(1)}))
    # Softmax: opset < 13 flattens to 2-D at `axis`; opset 13 normalizes along `axis` only.
    s = (r.standard_normal((2, 3, 7)) * 4).astype(np.float32)
    s[1, 2, 4:] = np.finfo(np.float32).min  # masked positions as HF writes them
    for opset in (11, 13):
        for axis in (-1, 1):
            cases.append(OpCase(f"softmax_axis{axis}_opset{opset}".replace("-", "m"), "Softmax", opset,
                                [node("Softmax", ["x"], ["y"], axis=axis)], {"x": s}, {"y": "float32"},
                                note=("opset<13: coerce to 2-D [prod(d[:axis]), prod(d[axis:])]"
                                      if opset < 13 else "opset>=13: along one axis")))
    cases.append(OpCase("softmax_default_axis_opset11", "Softmax", 11, [node("Softmax", ["x"], ["y"])],
                        {"x": s}, {"y": "float32"}, note="default axis=1 before opset 13 (flattening)"))
    cases.append(OpCase("softmax_default_axis_opset13", "Softmax", 13, [node("Softmax", ["x"], ["y"])],
                        {"x": s}, {"y": "float32"}, note="default axis=-1 from opset 13"))
    big = np.array([[1000.0, 1001.0, 999.0, -1000.0, 0.0]], np.float32)
    cases.append(OpCase("softmax_large_logits_opset13", "Softmax", 13, [node("Softmax", ["x"], ["y"], axis=-1)],
                        {"x": big}, {"y": "float32"}, note="needs max-subtraction to avoid overflow"))
    cases.append(OpCase("logsoftmax_opset13", "LogSoftmax", 13, [node("LogSoftmax", ["x"], ["y"], axis=-1)],
                        {"x": s[:, :, :]}, {"y": "float32"}))
    # LayerNormalization (opset 17).
    h = (r.standard_normal((3, 7, 33)) * 3 + 1).astype(np.float32)
    gamma = (1 + 0.1 * r.standard_normal((33,))).astype(np.float32)
    beta = (0.1 * r.standard_normal((33,))).astype(np.float32)
    cases.append(OpCase("layernormalization_axis_m1_opset17", "LayerNormalization", 17,
                        [node("LayerNormalization", ["x", "gamma", "beta"], ["y"], axis=-1, epsilon=1e-12)],
                        {"x": h}, {"y": "float32"}, params={"gamma": gamma, "beta": beta}, note="BERT's epsilon 1e-12"))
    cases.append(OpCase("layernormalization_no_bias_eps1e5_opset17", "LayerNormalization", 17,
                        [node("LayerNormalization", ["x", "gamma"], ["y"], axis=-1, epsilon=1e-5)],
                        {"x": h}, {"y": "float32"}, params={"gamma": gamma}, note="no B input, epsilon 1e-5"))
    cases.append(OpCase("layernormalization_mean_invstd_outputs_opset17", "LayerNormalization", 17,
                        [node("LayerNormalization", ["x", "gamma", "beta"], ["y", "mean", "inv_std"], axis=-1)],
                        {"x": h}, {"y": "float32", "mean": "float32", "inv_std": "float32"},
                        params={"gamma": gamma, "beta": beta}, note="optional Mean and InvStdDev outputs"))
    # Gelu (opset 20).
    g = (r.standard_normal((3, 7, 33)) * 2).astype(np.float32)
    for approx in ("none", "tanh"):
        cases.append(OpCase(f"gelu_{approx}_opset20", "Gelu", 20, [node("Gelu", ["x"], ["y"], approximate=approx)],
                            {"x": g}, {"y": "float32"}))
    return cases


def gather_cases() -> list[OpCase]:
    cases = []
    r = case_rng("gather")
    table = r.standard_normal((11, 5)).astype(np.float32)
    cases.append(OpCase("gather_axis0_embedding_opset13", "Gather", 13, [node("Gather", ["table", "ids"], ["y"], axis=0)],
                        {"ids": i64(0, 3, 10, -1, -11, 4).reshape(2, 3)}, {"y": "float32"}, params={"table": table},
                        note="embedding lookup with negative indices (-1 -> 10, -11 -> 0)"))
    x = r.standard_normal((3, 7, 4)).astype(np.float32)
    cases.append(OpCase("gather_axis1_negative_indices_opset13", "Gather", 13,
                        [node("Gather", ["x", "idx"], ["y"], axis=1)],
                        {"x": x, "idx": i64(-1, 0, 6, -7, 2)}, {"y": "float32"}))
    cases.append(OpCase("gather_scalar_index_axis1_opset13", "Gather", 13, [node("Gather", ["x", "idx"], ["y"], axis=1)],
                        {"x": x}, {"y": "float32"}, params={"idx": np.array(0, np.int64)},
                        note="rank-0 index drops the axis: the first-token (CLS) pooling pattern"))
    cases.append(OpCase("gather_shape_dim_opset11", "Gather", 11,
                        [node("Shape", ["x"], ["s"]), node("Gather", ["s", "idx"], ["y"], axis=0)],
                        {"x": x}, {"y": "int64"}, params={"idx": np.array(1, np.int64)},
                        note="Shape -> Gather(scalar) as TorchScript exports x.size(1)"))
    cases.append(OpCase("gather_axis_m1_int32_indices_opset13", "Gather", 13,
                        [node("Gather", ["x", "idx"], ["y"], axis=-1)],
                        {"x": x, "idx": np.array([[3, -4], [0, 1]], np.int32)}, {"y": "float32"},
                        note="int32 indices, negative axis"))
    cases.append(OpCase("gather_int64_data_opset13", "Gather", 13, [node("Gather", ["x", "idx"], ["y"], axis=0)],
                        {"x": i64(3, 9, 32, 64), "idx": i64(2, 0, -1)}, {"y": "int64"}))
    cases.append(OpCase("gatherelements_axis1_position_ids_opset13", "GatherElements", 13,
                        [node("GatherElements", ["x", "idx"], ["y"], axis=1)],
                        {"x": np.arange(2, 66, dtype=np.int64).reshape(1, 64).repeat(3, axis=0),
                         "idx": np.array([[0, 1, 2, 3, 4, 5, 6, 7, 8], [0, 1, 2, 3, 4, 5, -64, -64, -64],
                                          [0, 1, -1, -1, -1, -1, -1, -1, -1]], np.int64)}, {"y": "int64"},
                        note="the RoBERTa position-id pattern; negative indices count from the end"))
    cases.append(OpCase("gatherelements_axis0_float_opset13", "GatherElements", 13,
                        [node("GatherElements", ["x", "idx"], ["y"], axis=0)],
                        {"x": r.standard_normal((3, 7)).astype(np.float32),
                         "idx": np.array([[2, 0, 1, 1, 0, -1, 2], [0, 0, 0, 2, 1, 1, -3]], np.int64)}, {"y": "float32"},
                        note="output has the shape of indices"))
    data = r.standard_normal((2, 3, 4)).astype(np.float32)
    cases.append(OpCase("gathernd_opset13", "GatherND", 13, [node("GatherND", ["x", "idx"], ["y"])],
                        {"x": data, "idx": np.array([[1, 2], [0, -1], [1, 0]], np.int64)}, {"y": "float32"},
                        note="indices [3,2] pick rows of the last axis; negative index"))
    cases.append(OpCase("gathernd_batch_dims1_opset13", "GatherND", 13,
                        [node("GatherND", ["x", "idx"], ["y"], batch_dims=1)],
                        {"x": data, "idx": np.array([[[2], [0]], [[1], [1]]], np.int64)}, {"y": "float32"}))
    cases.append(OpCase("gathernd_full_index_opset12", "GatherND", 12, [node("GatherND", ["x", "idx"], ["y"])],
                        {"x": data, "idx": np.array([[0, 1, 2], [1, 2, 3]], np.int64)}, {"y": "float32"},
                        note="index tuples as long as the rank give scalars"))
    return cases


def layout_cases() -> list[OpCase]:
    cases = []
    r = case_rng("layout")
    x4 = r.standard_normal((2, 7, 3, 5)).astype(np.float32)
    cases.append(OpCase("transpose_heads_0213_opset13", "Transpose", 13, [node("Transpose", ["x"], ["y"], perm=[0, 2, 1, 3])],
                        {"x": x4}, {"y": "float32"}))
    cases.append(OpCase("transpose_0231_opset13", "Transpose", 13, [node("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1])],
                        {"x": x4}, {"y": "float32"}, note="key transpose for QK^T"))
    cases.append(OpCase("transpose_default_perm_opset13", "Transpose", 13, [node("Transpose", ["x"], ["y"])],
                        {"x": x4}, {"y": "float32"}, note="no perm: reverse the axes"))
    x3 = r.standard_normal((2, 7, 15)).astype(np.float32)
    cases.append(OpCase("reshape_zero_and_minus1_opset13", "Reshape", 13, [node("Reshape", ["x", "shape"], ["y"])],
                        {"x": x3}, {"y": "float32"}, params={"shape": i64(0, 0, 3, -1)},
                        note="0 copies the input dim, -1 is inferred: [2,7,15] -> [2,7,3,5]"))
    cases.append(OpCase("reshape_minus1_first_opset11", "Reshape", 11, [node("Reshape", ["x", "shape"], ["y"])],
                        {"x": x3}, {"y": "float32"}, params={"shape": i64(-1, 15)}))
    cases.append(OpCase("reshape_shape_as_input_opset14", "Reshape", 14, [node("Reshape", ["x", "shape"], ["y"])],
                        {"x": x3, "shape": i64(2, -1)}, {"y": "float32"}, note="shape is a run-time input"))
    cases.append(OpCase("reshape_allowzero_opset14", "Reshape", 14,
                        [node("Reshape", ["x", "shape"], ["y"], allowzero=1)],
                        {"x": np.zeros((0, 3, 4), np.float32)}, {"y": "float32"}, params={"shape": i64(3, 0, 4)},
                        note="allowzero=1: a 0 in shape is a literal zero-sized dim"))
    cases.append(OpCase("reshape_allowzero0_copies_opset14", "Reshape", 14,
                        [node("Reshape", ["x", "shape"], ["y"], allowzero=0)],
                        {"x": x3}, {"y": "float32"}, params={"shape": i64(0, -1)},
                        note="allowzero=0 (default): 0 copies the input dim"))
    for axis in (1, 0, -1, 3):
        cases.append(OpCase(f"flatten_axis{axis}_opset13".replace("-", "m"), "Flatten", 13,
                            [node("Flatten", ["x"], ["y"], axis=axis)], {"x": x4}, {"y": "float32"}))
    # Squeeze / Unsqueeze: axes attribute up to opset 12, input from 13.
    xs = r.standard_normal((1, 7, 1, 3)).astype(np.float32)
    cases.append(OpCase("squeeze_axes_attr_opset11", "Squeeze", 11, [node("Squeeze", ["x"], ["y"], axes=[0, -2])],
                        {"x": xs}, {"y": "float32"}))
    cases.append(OpCase("squeeze_axes_input_opset13", "Squeeze", 13, [node("Squeeze", ["x", "axes"], ["y"])],
                        {"x": xs}, {"y": "float32"}, params={"axes": i64(2)}))
    cases.append(OpCase("squeeze_no_axes_opset13", "Squeeze", 13, [node("Squeeze", ["x"], ["y"])],
                        {"x": xs}, {"y": "float32"}, note="no axes: drop every size-1 dim"))
    mask = np.array([[1, 1, 0], [1, 1, 1]], np.int64)
    cases.append(OpCase("unsqueeze_axes_attr_opset11", "Unsqueeze", 11, [node("Unsqueeze", ["x"], ["y"], axes=[1, 2])],
                        {"x": mask}, {"y": "int64"}, note="attention mask [B,S] -> [B,1,1,S]"))
    cases.append(OpCase("unsqueeze_negative_axes_attr_opset12", "Unsqueeze", 12, [node("Unsqueeze", ["x"], ["y"], axes=[-1])],
                        {"x": mask}, {"y": "int64"}))
    cases.append(OpCase("unsqueeze_axes_input_unsorted_opset13", "Unsqueeze", 13, [node("Unsqueeze", ["x", "axes"], ["y"])],
                        {"x": mask}, {"y": "int64"}, params={"axes": i64(2, 1)}))
    cases.append(OpCase("unsqueeze_scalar_opset13", "Unsqueeze", 13, [node("Unsqueeze", ["x", "axes"], ["y"])],
                        {"x": np.array(7, np.int64)}, {"y": "int64"}, params={"axes": i64(0)},
                        note="scalar -> [1], used to build shapes for Concat"))
    # Concat: float, negative axis, int64 shape building.
    a = r.standard_normal((2, 3, 5)).astype(np.float32)
    b = r.standard_normal((2, 1, 5)).astype(np.float32)
    c = r.standard_normal((2, 7, 5)).astype(np.float32)
    cases.append(OpCase("concat_axis1_three_inputs_opset13", "Concat", 13, [node("Concat", ["a", "b", "c"], ["y"], axis=1)],
                        {"a": a, "b": b, "c": c}, {"y": "float32"}))
    cases.append(OpCase("concat_axis_m1_opset11", "Concat", 11, [node("Concat", ["a", "b"], ["y"], axis=-1)],
                        {"a": a[:, :1, :], "b": b}, {"y": "float32"}))
    cases.append(OpCase("concat_int64_shape_opset13", "Concat", 13, [node("Concat", ["a", "b", "c"], ["y"], axis=0)],
                        {"a": i64(3), "b": i64(9)}, {"y": "int64"}, params={"c": i64(4, 8)},
                        note="building a Reshape target [B,S,heads,head_dim]"))
    cases.append(OpCase("concat_with_empty_opset13", "Concat", 13, [node("Concat", ["a", "b"], ["y"], axis=0)],
                        {"a": i64(1, 2), "b": np.zeros((0,), np.int64)}, {"y": "int64"}, note="zero-length operand"))
    # Tile / Expand.
    cases.append(OpCase("tile_opset13", "Tile", 13, [node("Tile", ["x", "reps"], ["y"])],
                        {"x": r.standard_normal((2, 3)).astype(np.float32)}, {"y": "float32"}, params={"reps": i64(3, 2)}))
    cases.append(OpCase("tile_int64_opset13", "Tile", 13, [node("Tile", ["x", "reps"], ["y"])],
                        {"x": i64(1, 2, 3).reshape(1, 3)}, {"y": "int64"}, params={"reps": i64(2, 1)}))
    cases.append(OpCase("expand_rank_increase_opset13", "Expand", 13, [node("Expand", ["x", "shape"], ["y"])],
                        {"x": r.standard_normal((3, 1)).astype(np.float32)}, {"y": "float32"}, params={"shape": i64(2, 3, 5)}))
    cases.append(OpCase("expand_bidirectional_ones_opset13", "Expand", 13, [node("Expand", ["x", "shape"], ["y"])],
                        {"x": r.standard_normal((3, 4)).astype(np.float32)}, {"y": "float32"}, params={"shape": i64(1, 1)},
                        note="shape [1,1] smaller than input: output keeps [3,4]"))
    cases.append(OpCase("expand_int64_position_ids_opset13", "Expand", 13, [node("Expand", ["x", "shape"], ["y"])],
                        {"x": np.arange(9, dtype=np.int64).reshape(1, 9), "shape": i64(3, 9)}, {"y": "int64"},
                        note="position ids broadcast to the batch, shape given at run time"))
    # Pad (constant mode), a cheap extra.
    cases.append(OpCase("pad_constant_opset13", "Pad", 13, [node("Pad", ["x", "pads", "value"], ["y"], mode="constant")],
                        {"x": r.standard_normal((2, 3)).astype(np.float32)}, {"y": "float32"},
                        params={"pads": i64(0, 1, 1, 2), "value": np.array(-1.5, np.float32)}))
    return cases


def slice_split_cases() -> list[OpCase]:
    cases = []
    r = case_rng("slice")
    x = r.standard_normal((3, 7, 33)).astype(np.float32)

    def slice_case(name, opset, starts, ends, axes=None, steps=None, note="", data=x, out="float32"):
        ins = ["x", "starts", "ends"]
        params = {"starts": i64(*starts), "ends": i64(*ends)}
        if axes is not None:
            ins.append("axes")
            params["axes"] = i64(*axes)
        if steps is not None:
            if axes is None:
                ins.append("")
            ins.append("steps")
            params["steps"] = i64(*steps)
        return OpCase(name, "Slice", opset, [node("Slice", ins, ["y"])], {"x": data}, {out: out} if False else {"y": out},
                      params=params, note=note)

    cases.append(slice_case("slice_first_token_opset13", 13, [0], [1], axes=[1], note="CLS token: x[:, 0:1]"))
    cases.append(slice_case("slice_negative_starts_ends_opset13", 13, [-5, 1], [-1, INT64_MAX], axes=[1, 2],
                            note="negative start/end, INT64_MAX end"))
    cases.append(slice_case("slice_axes_omitted_opset10", 10, [1, 2, 0], [3, -2, 33], note="axes omitted: 0..n-1"))
    cases.append(slice_case("slice_steps_opset11", 11, [0, 1], [7, 33], axes=[1, 2], steps=[2, 3]))
    cases.append(slice_case("slice_negative_step_opset13", 13, [-1, INT64_MAX], [INT64_MIN, 0], axes=[1, 2],
                            steps=[-1, -4], note="reverse axis 1 fully; axis 2 from the clamped end, step -4"))
    cases.append(slice_case("slice_out_of_range_clamped_opset13", 13, [-100, 5], [100, 1000], axes=[0, 1],
                            note="starts/ends beyond the dims are clamped"))
    cases.append(slice_case("slice_empty_result_opset13", 13, [5], [2], axes=[1], note="start > end with step 1: empty"))
    cases.append(slice_case("slice_int64_shape_opset13", 13, [-2], [INT64_MAX], axes=[0], data=i64(3, 9, 4, 8),
                            out="int64", note="shape[-2:] pattern"))
    cases.append(slice_case("slice_steps_axes_omitted_opset13", 13, [0, 0, 32], [3, 7, 0], steps=[1, 3, -8],
                            note="steps given, axes omitted"))
    # Split: attribute up to 12, input from 13, num_outputs from 18.
    s = r.standard_normal((2, 7, 6)).astype(np.float32)
    outs3 = {"y0": "float32", "y1": "float32", "y2": "float32"}
    cases.append(OpCase("split_attr_opset11", "Split", 11, [node("Split", ["x"], ["y0", "y1", "y2"], axis=1, split=[2, 4, 1])],
                        {"x": s}, outs3))
    cases.append(OpCase("split_equal_no_split_opset12", "Split", 12, [node("Split", ["x"], ["y0", "y1", "y2"], axis=-1)],
                        {"x": s}, outs3, note="no split: equal parts"))
    cases.append(OpCase("split_input_opset13", "Split", 13, [node("Split", ["x", "split"], ["y0", "y1", "y2"], axis=1)],
                        {"x": s}, outs3, params={"split": i64(3, 3, 1)}))
    cases.append(OpCase("split_equal_no_split_opset13", "Split", 13, [node("Split", ["x"], ["y0", "y1", "y2"], axis=2)],
                        {"x": s}, outs3))
    cases.append(OpCase("split_num_outputs_uneven_opset18", "Split", 18,
                        [node("Split", ["x"], ["y0", "y1", "y2"], axis=1, num_outputs=3)],
                        {"x": s}, outs3, note="7 into 3 parts: ceil(7/3)=3 -> [3,3,1]"))
    cases.append(OpCase("split_num_outputs_even_opset18", "Split", 18,
                        [node("Split", ["x"], ["y0", "y1", "y2"], axis=-1, num_outputs=3)],
                        {"x": s}, outs3))
    return cases


def shape_cast_cases() -> list[OpCase]:
    cases = []
    r = case_rng("shape")
    x = r.standard_normal((3, 7, 1, 5)).astype(np.float32)
    cases.append(OpCase("shape_opset13", "Shape", 13, [node("Shape", ["x"], ["y"])], {"x": x}, {"y": "int64"}))
    cases.append(OpCase("shape_start_end_opset15", "Shape", 15, [node("Shape", ["x"], ["y"], start=1, end=-1)],
                        {"x": x}, {"y": "int64"}, note="dims[1:-1]"))
    cases.append(OpCase("shape_negative_start_opset15", "Shape", 15, [node("Shape", ["x"], ["y"], start=-2)],
                        {"x": x}, {"y": "int64"}))
    cases.append(OpCase("shape_start_clamped_opset19", "Shape", 19, [node("Shape", ["x"], ["y"], start=-10, end=2)],
                        {"x": x}, {"y": "int64"}, note="out-of-range start is clamped"))
    cases.append(OpCase("size_opset13", "Size", 13, [node("Size", ["x"], ["y"])], {"x": x}, {"y": "int64"},
                        note="rank-0 int64 output"))
    cases.append(OpCase("size_int64_input_opset13", "Size", 13, [node("Size", ["x"], ["y"])],
                        {"x": np.zeros((0, 4), np.int64)}, {"y": "int64"}, note="empty tensor has size 0"))
    # Cast.
    f = np.array([-2.7, -2.5, -0.5, 0.0, 0.5, 1.5, 2.5, 2.7, 1e6, -1e6, 7.999], np.float32)
    cases.append(OpCase("cast_float_to_int64_opset13", "Cast", 13, [node("Cast", ["x"], ["y"], to=TensorProto.INT64)],
                        {"x": f}, {"y": "int64"}, note="truncates toward zero"))
    cases.append(OpCase("cast_int64_to_float_opset13", "Cast", 13, [node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)],
                        {"x": i64(0, 1, -1, 16777217, INT64_MAX, -9)}, {"y": "float32"},
                        note="16777217 and INT64_MAX round to nearest float"))
    half_vals = np.array([0.1, 1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11, 65504.0, 65520.0, 70000.0, -1e6,
                          6e-8, 2.0 ** -25, 3e-5, 1e-8, np.pi], np.float32)
    cases.append(OpCase("cast_float_to_float16_to_float_opset13", "Cast", 13,
                        [node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16), node("Cast", ["h"], ["y"], to=TensorProto.FLOAT)],
                        {"x": half_vals}, {"y": "float32", "h": "float16"},
                        note="round-to-nearest-even, overflow to inf, subnormals, flush of tiny values"))
    cases.append(OpCase("cast_float_to_float16_to_float_opset19", "Cast", 19,
                        [node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16), node("Cast", ["h"], ["y"], to=TensorProto.FLOAT)],
                        {"x": half_vals}, {"y": "float32", "h": "float16"}, note="opset 19 Cast (saturate attr is float8 only)"))
    cases.append(OpCase("cast_float_to_bool_opset13", "Cast", 13, [node("Cast", ["x"], ["y"], to=TensorProto.BOOL)],
                        {"x": np.array([0.0, -0.0, 1.0, -2.5, 1e-30, np.nan, np.inf], np.float32)}, {"y": "bool"},
                        note="only +-0 is false; NaN is true"))
    cases.append(OpCase("cast_bool_to_float_opset13", "Cast", 13, [node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)],
                        {"x": np.array([[True, False, True], [False, False, True]])}, {"y": "float32"}))
    cases.append(OpCase("cast_int64_to_bool_to_int64_opset13", "Cast", 13,
                        [node("Cast", ["x"], ["b"], to=TensorProto.BOOL), node("Cast", ["b"], ["y"], to=TensorProto.INT64)],
                        {"x": i64(0, 1, 2, -1, 0)}, {"y": "int64", "b": "bool"}))
    cases.append(OpCase("cast_int64_to_int32_opset13", "Cast", 13, [node("Cast", ["x"], ["y"], to=TensorProto.INT32)],
                        {"x": i64(0, 5, -5, 2 ** 31 - 1)}, {"y": "int32"}))
    cases.append(OpCase("cast_float_to_float_opset13", "Cast", 13, [node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)],
                        {"x": f}, {"y": "float32"}, note="no-op cast"))
    return cases


def generator_cases() -> list[OpCase]:
    cases = []
    cases.append(OpCase("constantofshape_default_opset9", "ConstantOfShape", 9, [node("ConstantOfShape", ["s"], ["y"])],
                        {"s": i64(2, 3)}, {"y": "float32"}, note="no value: float32 zeros"))
    cases.append(OpCase("constantofshape_int64_one_opset9", "ConstantOfShape", 9,
                        [node("ConstantOfShape", ["s"], ["y"], value=numpy_helper.from_array(i64(1)))],
                        {"s": i64(3, 9)}, {"y": "int64"}, note="attention mask of ones"))
    cases.append(OpCase("constantofshape_float_empty_dim_opset20", "ConstantOfShape", 20,
                        [node("ConstantOfShape", ["s"], ["y"], value=numpy_helper.from_array(np.array([-np.inf], np.float32)))],
                        {"s": i64(4, 0)}, {"y": "float32"}, note="a zero dim gives an empty tensor"))
    cases.append(OpCase("constantofshape_rank0_opset9", "ConstantOfShape", 9,
                        [node("ConstantOfShape", ["s"], ["y"], value=numpy_helper.from_array(np.array([2.5], np.float32)))],
                        {"s": np.zeros((0,), np.int64)}, {"y": "float32"}, note="empty shape: a scalar"))
    consts = [
        ("constant_value_float_tensor_opset13", dict(value=numpy_helper.from_array(
            np.array([[1.5, -2.0, 0.25]], np.float32))), "float32"),
        ("constant_value_int64_tensor_opset13", dict(value=numpy_helper.from_array(i64(0, 0, 4, -1))), "int64"),
        ("constant_value_ints_opset13", dict(value_ints=[3, -1, 7]), "int64"),
        ("constant_value_int_opset13", dict(value_int=-7), "int64"),
        ("constant_value_float_opset13", dict(value_float=0.125), "float32"),
        ("constant_value_floats_opset13", dict(value_floats=[1.0, 2.5, -3.0]), "float32"),
        ("constant_scalar_tensor_opset11", dict(value=numpy_helper.from_array(np.array(8.0, np.float32))), "float32"),
    ]
    for name, attrs, dt in consts:
        opset = int(name.rsplit("opset", 1)[1])
        # The Constant feeds an Add with a run-time input so the graph is not input-free.
        zero = np.zeros((1,), np.dtype(dt))
        cases.append(OpCase(name, "Constant", opset, [node("Constant", [], ["k"], **attrs), node("Add", ["k", "z"], ["y"])],
                            {"z": zero}, {"y": dt, "k": dt}, note=json.dumps({k: (v if not isinstance(v, onnx.TensorProto) else "tensor") for k, v in attrs.items()})))
    cases.append(OpCase("range_int64_opset11", "Range", 11, [node("Range", ["start", "limit", "delta"], ["y"])],
                        {"start": np.array(0, np.int64), "limit": np.array(9, np.int64), "delta": np.array(1, np.int64)},
                        {"y": "int64"}, note="position ids"))
    cases.append(OpCase("range_int64_negative_delta_opset11", "Range", 11, [node("Range", ["start", "limit", "delta"], ["y"])],
                        {"start": np.array(10, np.int64), "limit": np.array(-3, np.int64), "delta": np.array(-3, np.int64)},
                        {"y": "int64"}))
    cases.append(OpCase("range_float_opset11", "Range", 11, [node("Range", ["start", "limit", "delta"], ["y"])],
                        {"start": np.array(0.5, np.float32), "limit": np.array(3.2, np.float32), "delta": np.array(0.7, np.float32)},
                        {"y": "float32"}, note="ceil((limit-start)/delta) elements"))
    cases.append(OpCase("range_empty_opset11", "Range", 11, [node("Range", ["start", "limit", "delta"], ["y"])],
                        {"start": np.array(5, np.int64), "limit": np.array(2, np.int64), "delta": np.array(1, np.int64)},
                        {"y": "int64"}, note="limit < start with positive delta: empty"))
    mask = np.array([[1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0, 0]], np.int64)
    for exclusive in (0, 1):
        for reverse in (0, 1):
            cases.append(OpCase(f"cumsum_int64_excl{exclusive}_rev{reverse}_opset14", "CumSum", 14,
                                [node("CumSum", ["x", "axis"], ["y"], exclusive=exclusive, reverse=reverse)],
                                {"x": mask}, {"y": "int64"}, params={"axis": np.array(1, np.int64)}))
    r = case_rng("cumsum")
    cases.append(OpCase("cumsum_float_axis_m1_int32_axis_opset11", "CumSum", 11, [node("CumSum", ["x", "axis"], ["y"])],
                        {"x": r.standard_normal((2, 3, 7)).astype(np.float32)}, {"y": "float32"},
                        params={"axis": np.array(-1, np.int32)}, note="int32 axis tensor"))
    a = np.array([[1.0, 3.0, 3.0, 0.5, 3.0], [2.0, 2.0, -1.0, 0.0, 1.0], [-5.0, -6.0, -5.0, -7.0, -5.0]], np.float32)
    cases.append(OpCase("argmax_keepdims1_opset13", "ArgMax", 13, [node("ArgMax", ["x"], ["y"], axis=-1, keepdims=1)],
                        {"x": a}, {"y": "int64"}, note="ties pick the first index"))
    cases.append(OpCase("argmax_keepdims0_opset13", "ArgMax", 13, [node("ArgMax", ["x"], ["y"], axis=1, keepdims=0)],
                        {"x": a}, {"y": "int64"}))
    cases.append(OpCase("argmax_select_last_index_opset13", "ArgMax", 13,
                        [node("ArgMax", ["x"], ["y"], axis=-1, keepdims=0, select_last_index=1)],
                        {"x": a}, {"y": "int64"}, note="ties pick the last index"))
    cases.append(OpCase("argmax_axis0_opset11", "ArgMax", 11, [node("ArgMax", ["x"], ["y"], axis=0)],
                        {"x": a}, {"y": "int64"}, note="default keepdims=1"))
    d = r.standard_normal((3, 7)).astype(np.float32)
    cases.append(OpCase("dropout_inference_ratio_input_opset13", "Dropout", 13, [node("Dropout", ["x", "ratio"], ["y"])],
                        {"x": d}, {"y": "float32"}, params={"ratio": np.array(0.1, np.float32)},
                        note="no training_mode input: identity"))
    cases.append(OpCase("dropout_inference_with_mask_opset12", "Dropout", 12, [node("Dropout", ["x"], ["y", "mask"])],
                        {"x": d}, {"y": "float32", "mask": "bool"}, note="mask output is all true"))
    cases.append(OpCase("dropout_ratio_attr_opset11", "Dropout", 11, [node("Dropout", ["x"], ["y"], ratio=0.5)],
                        {"x": d}, {"y": "float32"}))
    return cases


def op_cases() -> list[OpCase]:
    groups: list[Callable[[], list[OpCase]]] = [
        unary_float_cases, binary_cases, comparison_logic_cases, matmul_gemm_cases, reduce_softmax_norm_cases,
        gather_cases, layout_cases, slice_split_cases, shape_cast_cases, generator_cases,
    ]
    cases = [c for g in groups for c in g()]
    names = [c.name for c in cases]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise AssertionError(f"duplicate op case names: {sorted(duplicates)}")
    return cases


def make_op_fixtures(out: Path) -> list[dict]:
    root = fresh_dir(out / "ops")
    rows = [write_op_case(root, case) for case in op_cases()]
    print(f"ops: wrote {len(rows)} cases to {root}")
    return rows


# ─────────────────────────────────────────────────────────────────────────────
# Importer edge fixtures
# ─────────────────────────────────────────────────────────────────────────────

def bfloat16_bits(values: np.ndarray) -> np.ndarray:
    """Upper 16 bits of float32 values that are exactly representable in bfloat16."""
    bits = np.asarray(values, np.float32).view(np.uint32)
    if np.any(bits & 0xFFFF):
        raise ValueError("value is not exactly representable in bfloat16")
    return (bits >> 16).astype(np.uint16)


def typed_field_tensor(name: str, data_type: int, shape: list[int], **field_values) -> onnx.TensorProto:
    """A TensorProto that stores its values in float_data / int32_data / int64_data, not raw_data."""
    tensor = TensorProto()
    tensor.name = name
    tensor.data_type = data_type
    tensor.dims.extend(shape)
    for field_name, values in field_values.items():
        getattr(tensor, field_name).extend(values)
    return tensor


def initializer_dtype_specs() -> list[dict]:
    """Each dtype an exported BERT may carry, its values, and how to store it in typed fields."""
    bf16_values = np.array([1.0, -2.5, 0.0, 3.140625, -0.0078125, 65536.0, 1.5e-5], np.float32)
    bf16_values = (bf16_values.view(np.uint32) & 0xFFFF0000).view(np.float32)  # exact bfloat16 values
    return [
        dict(dtype="float32", onnx=TensorProto.FLOAT,
             values=np.array([[1.5, -2.25, 0.0], [1e-8, -65504.0, 3.4028235e38]], np.float32),
             typed=lambda v: dict(float_data=v.ravel().tolist()), output="identity"),
        dict(dtype="float16", onnx=TensorProto.FLOAT16,
             values=np.array([1.0, -2.5, 0.0, 65504.0, 6.1035156e-05, 5.9604645e-08, 0.0999755859375], np.float16),
             typed=lambda v: dict(int32_data=v.view(np.uint16).astype(np.int32).tolist()), output="identity",
             note="typed storage: IEEE half bit patterns in int32_data"),
        dict(dtype="bfloat16", onnx=TensorProto.BFLOAT16, values=bf16_values,
             typed=lambda v: dict(int32_data=bfloat16_bits(v).astype(np.int32).tolist()), output="cast_float",
             note="no numpy dtype: the expected output is the float32 value; typed storage: bit patterns in int32_data"),
        dict(dtype="int64", onnx=TensorProto.INT64,
             values=np.array([0, -1, 101, INT64_MAX, INT64_MIN, 2 ** 40], np.int64),
             typed=lambda v: dict(int64_data=v.tolist()), output="identity"),
        dict(dtype="int32", onnx=TensorProto.INT32,
             values=np.array([0, -1, 2 ** 31 - 1, -(2 ** 31), 77], np.int32),
             typed=lambda v: dict(int32_data=v.tolist()), output="identity"),
        dict(dtype="int8", onnx=TensorProto.INT8, values=np.array([0, -1, 127, -128, 5], np.int8),
             typed=lambda v: dict(int32_data=v.astype(np.int32).tolist()), output="identity",
             note="typed storage: sign-extended values in int32_data"),
        dict(dtype="uint8", onnx=TensorProto.UINT8, values=np.array([0, 1, 255, 128, 7], np.uint8),
             typed=lambda v: dict(int32_data=v.astype(np.int32).tolist()), output="identity"),
        dict(dtype="bool", onnx=TensorProto.BOOL, values=np.array([[True, False, True], [False, False, True]]),
             typed=lambda v: dict(int32_data=v.astype(np.int32).ravel().tolist()), output="identity",
             note="typed storage: 0/1 in int32_data"),
        dict(dtype="int64_scalar", onnx=TensorProto.INT64, values=np.array(-3, np.int64),
             typed=lambda v: dict(int64_data=[int(v)]), output="identity", note="rank-0 initializer"),
        dict(dtype="float32_scalar", onnx=TensorProto.FLOAT, values=np.array(0.125, np.float32),
             typed=lambda v: dict(float_data=[float(v)]), output="identity", note="rank-0 initializer"),
    ]


def raw_tensor(name: str, spec: dict) -> onnx.TensorProto:
    values = spec["values"]
    if spec["dtype"] == "bfloat16":
        tensor = TensorProto()
        tensor.name = name
        tensor.data_type = TensorProto.BFLOAT16
        tensor.dims.extend(values.shape)
        tensor.raw_data = bfloat16_bits(values).astype("<u2").tobytes()
        return tensor
    return numpy_helper.from_array(values, name)


def make_initializer_dtypes_fixture(root: Path) -> dict:
    folder = fresh_dir(root / "initializer-dtypes")
    initializers, nodes, outputs, entries, expected = [], [], [], [], {}
    for spec in initializer_dtype_specs():
        for storage in ("raw", "typed"):
            name = f"{spec['dtype']}_{storage}"
            values = spec["values"]
            if storage == "raw":
                tensor = raw_tensor(name, spec)
            else:
                tensor = typed_field_tensor(name, spec["onnx"], list(values.shape), **spec["typed"](values))
            initializers.append(tensor)
            out_name = f"out_{name}"
            if spec["output"] == "cast_float":
                nodes.append(node("Cast", [name], [out_name], to=TensorProto.FLOAT))
                expected[out_name] = values.astype(np.float32)
                out_type = TensorProto.FLOAT
            else:
                nodes.append(node("Identity", [name], [out_name]))
                expected[out_name] = values
                out_type = spec["onnx"]
            outputs.append(helper.make_tensor_value_info(out_name, out_type, list(values.shape)))
            entries.append({"initializer": name, "onnx_dtype": TensorProto.DataType.Name(spec["onnx"]),
                            "storage": "raw_data" if storage == "raw" else next(iter(spec["typed"](values))),
                            "shape": list(values.shape), "output": out_name,
                            "expected_dtype": str(expected[out_name].dtype), "note": spec.get("note", "")})
    # One real input so the fixture has an inputs/ folder (git keeps no empty folders, and the
    # Swift harness runs every inputs*/ set); it is copied straight to an output.
    feeds = {"x": np.array([7, -7], np.int64)}
    nodes.append(node("Identity", ["x"], ["x_copy"]))
    outputs.append(helper.make_tensor_value_info("x_copy", TensorProto.INT64, [2]))
    expected["x_copy"] = feeds["x"]
    graph = helper.make_graph(nodes, "initializer_dtypes", [helper.make_tensor_value_info("x", TensorProto.INT64, [2])],
                              outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="kiln-make-fixtures")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, folder / "model.onnx")
    got = run_ort(folder / "model.onnx", feeds)
    for name, want in expected.items():
        if got[name].dtype != want.dtype or not np.array_equal(got[name], want):
            raise AssertionError(f"initializer-dtypes: ORT gives {got[name]!r} for {name}, expected {want!r}")
    write_arrays(folder / "inputs", feeds)
    write_arrays(folder / "outputs", expected)
    write_manifest(folder, {
        "case": "initializer-dtypes",
        "opset": 17,
        "description": "Every initializer dtype a BERT export may carry, stored once as raw_data and once in the "
                       "typed field; each feeds an Identity (or a Cast to float for bfloat16) to a graph output. "
                       "The one input x is copied to x_copy. Outputs must match exactly.",
        "tolerance": 0.0,
        "initializers": entries,
        "inputs": [tensor_desc(n, a) for n, a in feeds.items()],
        "outputs": [tensor_desc(n, a) for n, a in expected.items()],
    })
    return {"fixture": "import/initializer-dtypes", "op": "Identity/Cast", "opset": 17}


def small_dense_graph(name: str, weight_input: bool = False) -> tuple[onnx.GraphProto, dict[str, np.ndarray]]:
    """x[batch, seq, 32] -> MatMul(W[32,17]) -> Add(b) -> Relu, with W and b as initializers."""
    r = case_rng(name)
    w = (r.standard_normal((32, 17)) * 0.2).astype(np.float32)
    b = (r.standard_normal((17,)) * 0.1).astype(np.float32)
    nodes = [node("MatMul", ["x", "W"], ["xw"]), node("Add", ["xw", "b"], ["xwb"]), node("Relu", ["xwb"], ["y"])]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 32])]
    if weight_input:
        inputs += [helper.make_tensor_value_info("W", TensorProto.FLOAT, [32, 17]),
                   helper.make_tensor_value_info("b", TensorProto.FLOAT, [17])]
    graph = helper.make_graph(
        nodes, name, inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 17])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
    )
    feeds = {"x": r.standard_normal((3, 7, 32)).astype(np.float32)}
    return graph, feeds


def write_run_fixture(folder: Path, model: onnx.ModelProto, feeds: dict[str, np.ndarray], manifest: dict,
                      **save_kwargs) -> None:
    onnx.save_model(model, str(folder / "model.onnx"), **save_kwargs)
    outputs = run_ort(folder / "model.onnx", feeds)
    write_arrays(folder / "inputs", feeds)
    write_arrays(folder / "outputs", outputs)
    manifest = dict(manifest)
    manifest.setdefault("tolerance", TOLERANCE)
    manifest["inputs"] = [tensor_desc(n, a) for n, a in feeds.items()]
    manifest["outputs"] = [tensor_desc(n, a) for n, a in outputs.items()]
    write_manifest(folder, manifest)


def make_import_fixtures(out: Path) -> list[dict]:
    root = fresh_dir(out / "import")
    rows = [make_initializer_dtypes_fixture(root)]

    # External data: weights in weights.bin beside model.onnx.
    folder = fresh_dir(root / "external-data")
    graph, feeds = small_dense_graph("external_data")
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="kiln-make-fixtures")
    model.ir_version = 8
    write_run_fixture(folder, model, feeds, {
        "case": "external-data", "opset": 17,
        "description": "W and b live in weights.bin (location, offset, length in each initializer's external_data).",
        "external_files": ["weights.bin"],
    }, save_as_external_data=True, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    rows.append({"fixture": "import/external-data", "op": "MatMul/Add/Relu", "opset": 17})

    # The same model.onnx without its weights.bin: the importer must name the missing file.
    missing = fresh_dir(root / "missing-external")
    shutil.copy(folder / "model.onnx", missing / "model.onnx")
    write_manifest(missing, {
        "case": "missing-external", "opset": 17,
        "description": "Copy of external-data/model.onnx without weights.bin.",
        "expect_error": "external data file 'weights.bin' not found", "missing_file": "weights.bin",
    })
    rows.append({"fixture": "import/missing-external", "op": "-", "opset": 17})

    # Unsupported ops: a real ONNX op Kiln does not implement (ORT can run it), and a custom-domain op.
    folder = fresh_dir(root / "unsupported-op-conv")
    r = case_rng("conv")
    graph = helper.make_graph(
        [node("Conv", ["x", "w"], ["y"], kernel_shape=[3], pads=[1, 1])], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 7])],
        initializer=[numpy_helper.from_array(r.standard_normal((2, 4, 3)).astype(np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="kiln-make-fixtures")
    model.ir_version = 8
    write_run_fixture(folder, model, {"x": r.standard_normal((1, 4, 7)).astype(np.float32)}, {
        "case": "unsupported-op-conv", "opset": 17, "unsupported_op": "Conv",
        "expect_error": "unsupported op Conv (opset 17)",
        "description": "A standard op outside Kiln's op set; ORT outputs are included in case Kiln gains Conv.",
    })
    rows.append({"fixture": "import/unsupported-op-conv", "op": "Conv", "opset": 17})

    folder = fresh_dir(root / "unsupported-op-custom-domain")
    graph = helper.make_graph(
        [node("Relu", ["x"], ["r"]), helper.make_node("Foo", ["r"], ["y"], domain="com.example", alpha=2.0)], "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 7])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)],
                              producer_name="kiln-make-fixtures")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, folder / "model.onnx")
    write_manifest(folder, {
        "case": "unsupported-op-custom-domain", "opset": 17, "unsupported_op": "com.example:Foo",
        "expect_error": "unsupported op com.example:Foo (domain com.example, version 1)",
        "description": "Custom-domain op; ONNX Runtime cannot run it either, so there are no outputs.",
    })
    rows.append({"fixture": "import/unsupported-op-custom-domain", "op": "com.example:Foo", "opset": 17})

    # Opset 7: older than anything Kiln accepts (ORT still runs it, outputs included).
    folder = fresh_dir(root / "opset7-too-old")
    r = case_rng("opset7")
    graph = helper.make_graph(
        [node("Add", ["x", "b"], ["s"]), node("Relu", ["s"], ["y"])], "opset7",
        # IR version 3 requires every initializer to be listed as a graph input too.
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 7]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 7])],
        initializer=[numpy_helper.from_array(r.standard_normal((7,)).astype(np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 7)], producer_name="kiln-make-fixtures")
    model.ir_version = 3
    onnx.checker.check_model(model)
    write_run_fixture(folder, model, {"x": r.standard_normal((3, 7)).astype(np.float32)}, {
        "case": "opset7-too-old", "opset": 7, "ir_version": 3,
        "expect_error": "opset 7 is older than the oldest supported opset",
        "description": "Default-domain opset 7, IR version 3.",
    })
    rows.append({"fixture": "import/opset7-too-old", "op": "Add/Relu", "opset": 7})

    # value_info with symbolic dims named batch and seq (and one exporter-style generated name).
    folder = fresh_dir(root / "value-info-symbolic-dims")
    graph, feeds = small_dense_graph("value_info")
    graph.value_info.extend([
        helper.make_tensor_value_info("xw", TensorProto.FLOAT, ["batch", "seq", 17]),
        helper.make_tensor_value_info("xwb", TensorProto.FLOAT, ["batch", "Addxwb_dim_1", 17]),
    ])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="kiln-make-fixtures")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    write_run_fixture(folder, model, feeds, {
        "case": "value-info-symbolic-dims", "opset": 17,
        "symbolic_dims": {"x": ["batch", "seq", 32], "xw": ["batch", "seq", 17], "xwb": ["batch", "Addxwb_dim_1", 17],
                          "y": ["batch", "seq", 17]},
        "description": "Inputs, outputs and value_info use dim_param 'batch' and 'seq'; value_info of xwb uses an "
                       "exporter-style generated name for a dim that is really 'seq'.",
    })
    rows.append({"fixture": "import/value-info-symbolic-dims", "op": "MatMul/Add/Relu", "opset": 17})

    # Initializers also listed as graph inputs (keep_initializers_as_inputs=True, IR < 4 habits).
    folder = fresh_dir(root / "initializers-as-inputs")
    graph, feeds = small_dense_graph("initializers_as_inputs", weight_input=True)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="kiln-make-fixtures")
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    write_run_fixture(folder, model, feeds, {
        "case": "initializers-as-inputs", "opset": 13,
        "description": "W and b are initializers AND graph inputs; only x is fed, W and b take their defaults.",
    })
    rows.append({"fixture": "import/initializers-as-inputs", "op": "MatMul/Add/Relu", "opset": 13})
    print(f"import: wrote {len(rows)} cases to {root}")
    return rows


# ─────────────────────────────────────────────────────────────────────────────
# Model fixtures: random-weight BERT-family encoders, JointBERT heads, both exporters
# ─────────────────────────────────────────────────────────────────────────────

NUM_INTENTS = 7
NUM_SLOTS = 11


@dataclass
class ModelSpec:
    """One model fixture: which encoder, which head, which exporter and opset."""

    name: str
    family: str  # bert | minilm | distilbert | roberta | xlm-roberta | albert | electra
    exporter: str  # torchscript | dynamo
    opset: int
    gelu: str  # HF hidden_act: gelu (exact erf) | gelu_new | gelu_pytorch_tanh
    head: str  # joint (intent_logits + slot_logits) | encoder (last_hidden_state [+ pooler_output])
    attention: str = "sdpa"  # HF attn_implementation used while exporting
    hidden: int = 32
    variant: str = ""  # "" | ort-basic-optimized | fp16-weights


MODEL_SPECS = [
    ModelSpec("bert-torchscript-opset14", "bert", "torchscript", 14, "gelu", "joint", "eager", hidden=64),
    ModelSpec("bert-torchscript-opset17", "bert", "torchscript", 17, "gelu", "encoder", "sdpa"),
    ModelSpec("bert-dynamo-opset18", "bert", "dynamo", 18, "gelu", "joint", "sdpa"),
    ModelSpec("bert-gelunew-torchscript-opset14", "bert", "torchscript", 14, "gelu_new", "joint", "sdpa"),
    ModelSpec("bert-gelutanh-dynamo-opset20", "bert", "dynamo", 20, "gelu_pytorch_tanh", "joint", "sdpa"),
    ModelSpec("minilm-torchscript-opset14", "minilm", "torchscript", 14, "gelu", "joint", "eager", hidden=48),
    ModelSpec("minilm-dynamo-opset18", "minilm", "dynamo", 18, "gelu", "encoder", "sdpa", hidden=48),
    ModelSpec("distilbert-torchscript-opset14", "distilbert", "torchscript", 14, "gelu", "joint", "eager"),
    ModelSpec("distilbert-dynamo-opset18", "distilbert", "dynamo", 18, "gelu", "encoder", "sdpa"),
    ModelSpec("roberta-torchscript-opset17", "roberta", "torchscript", 17, "gelu", "joint", "sdpa"),
    ModelSpec("roberta-dynamo-opset18", "roberta", "dynamo", 18, "gelu", "encoder", "sdpa"),
    ModelSpec("xlm-roberta-torchscript-opset17", "xlm-roberta", "torchscript", 17, "gelu_pytorch_tanh", "joint", "eager"),
    ModelSpec("xlm-roberta-dynamo-opset18", "xlm-roberta", "dynamo", 18, "gelu", "joint", "sdpa"),
    ModelSpec("albert-torchscript-opset14", "albert", "torchscript", 14, "gelu_new", "joint", "eager"),
    ModelSpec("albert-dynamo-opset18", "albert", "dynamo", 18, "gelu_new", "encoder", "sdpa"),
    ModelSpec("electra-torchscript-opset17", "electra", "torchscript", 17, "gelu", "encoder", "eager"),
    ModelSpec("electra-dynamo-opset18", "electra", "dynamo", 18, "gelu", "joint", "sdpa"),
    ModelSpec("bert-ortbasic-torchscript-opset17", "bert", "torchscript", 17, "gelu", "joint", "sdpa",
              variant="ort-basic-optimized"),
    ModelSpec("bert-fp16weights-torchscript-opset17", "bert", "torchscript", 17, "gelu", "joint", "eager",
              variant="fp16-weights"),
]

# Special token ids per family (the random inputs put them where a tokenizer would).
SPECIAL_TOKENS = {
    "bert": dict(cls=2, sep=3, pad=0), "minilm": dict(cls=2, sep=3, pad=0), "distilbert": dict(cls=2, sep=3, pad=0),
    "albert": dict(cls=2, sep=3, pad=0), "electra": dict(cls=2, sep=3, pad=0),
    "roberta": dict(cls=0, sep=2, pad=1), "xlm-roberta": dict(cls=0, sep=2, pad=1),
}
HAS_TOKEN_TYPES = {"bert", "minilm", "albert", "electra"}
HAS_POOLER = {"bert", "minilm", "albert", "roberta", "xlm-roberta"}


def encoder_config(spec: ModelSpec):
    """A tiny transformers config for the family (random weights, no hub access)."""
    import transformers as tf

    common = dict(vocab_size=160, max_position_embeddings=64, hidden_act=spec.gelu, hidden_dropout_prob=0.1,
                  attention_probs_dropout_prob=0.1, initializer_range=0.2)
    if spec.family == "bert":
        heads, inter = (4, 128) if spec.hidden == 64 else (4, 64)
        return tf.BertConfig(hidden_size=spec.hidden, num_hidden_layers=2, num_attention_heads=heads,
                             intermediate_size=inter, type_vocab_size=2, **common)
    if spec.family == "minilm":  # MiniLM-L6 shape, scaled down: many narrow heads, wide FFN
        return tf.BertConfig(hidden_size=spec.hidden, num_hidden_layers=2, num_attention_heads=3,
                             intermediate_size=128, type_vocab_size=2, **common)
    if spec.family == "distilbert":
        return tf.DistilBertConfig(vocab_size=160, max_position_embeddings=64, dim=spec.hidden, n_layers=2, n_heads=2,
                                   hidden_dim=64, activation=spec.gelu, dropout=0.1, attention_dropout=0.1,
                                   initializer_range=0.2, pad_token_id=0)
    if spec.family in ("roberta", "xlm-roberta"):
        cls = tf.RobertaConfig if spec.family == "roberta" else tf.XLMRobertaConfig
        common = dict(common, max_position_embeddings=66)  # positions start at pad_token_id + 1
        return cls(hidden_size=spec.hidden, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                   type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2, **common)
    if spec.family == "albert":
        return tf.AlbertConfig(embedding_size=16, hidden_size=spec.hidden, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64, type_vocab_size=2, pad_token_id=0, classifier_dropout_prob=0.1,
                               **common)
    if spec.family == "electra":
        return tf.ElectraConfig(embedding_size=16, hidden_size=spec.hidden, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64, type_vocab_size=2, pad_token_id=0, **common)
    raise ValueError(f"unknown family {spec.family}")


def build_encoder(spec: ModelSpec):
    import transformers as tf

    config = encoder_config(spec)
    config._attn_implementation = spec.attention
    model_class = {
        "bert": tf.BertModel, "minilm": tf.BertModel, "distilbert": tf.DistilBertModel, "roberta": tf.RobertaModel,
        "xlm-roberta": tf.XLMRobertaModel, "albert": tf.AlbertModel, "electra": tf.ElectraModel,
    }[spec.family]
    kwargs = {"add_pooling_layer": spec.head == "encoder"} if spec.family in ("bert", "minilm", "roberta", "xlm-roberta") else {}
    model = model_class(config, **kwargs)
    model.config._attn_implementation = spec.attention
    return model, config


def perturb_parameters(module, seed: int) -> None:
    """HF initializes LayerNorm to (1, 0) and biases to 0; make them random so a wrong bias or gamma shows."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith("bias"):
                param.copy_(0.1 * torch.randn(param.shape, generator=generator))
            elif "LayerNorm.weight" in name or "layer_norm.weight" in name or name.endswith("_layer_norm.weight"):
                param.copy_(1.0 + 0.1 * torch.randn(param.shape, generator=generator))


def make_torch_model(spec: ModelSpec, seed: int):
    import torch

    class JointNLU(torch.nn.Module):
        """JointBERT: encoder + intent head on the first token + slot head on every token."""

        def __init__(self, encoder, hidden_size: int, uses_token_types: bool):
            super().__init__()
            self.encoder = encoder
            self.uses_token_types = uses_token_types
            self.dropout = torch.nn.Dropout(0.1)
            self.intent_classifier = torch.nn.Linear(hidden_size, NUM_INTENTS)
            self.slot_classifier = torch.nn.Linear(hidden_size, NUM_SLOTS)

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            extra = {"token_type_ids": token_type_ids} if self.uses_token_types else {}
            sequence_output = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra)[0]
            intent_logits = self.intent_classifier(self.dropout(sequence_output[:, 0]))
            slot_logits = self.slot_classifier(self.dropout(sequence_output))
            return intent_logits, slot_logits

    class Encoder(torch.nn.Module):
        """The bare encoder: last_hidden_state, plus pooler_output where the family has a pooler."""

        def __init__(self, encoder, uses_token_types: bool, has_pooler: bool):
            super().__init__()
            self.encoder = encoder
            self.uses_token_types = uses_token_types
            self.has_pooler = has_pooler

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            extra = {"token_type_ids": token_type_ids} if self.uses_token_types else {}
            out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra)
            if self.has_pooler:
                return out.last_hidden_state, out.pooler_output
            return (out.last_hidden_state,)

    torch.manual_seed(seed)
    encoder, config = build_encoder(spec)
    uses_token_types = spec.family in HAS_TOKEN_TYPES
    if spec.head == "joint":
        model = JointNLU(encoder, spec.hidden, uses_token_types)
        torch.nn.init.normal_(model.intent_classifier.weight, std=0.2)
        torch.nn.init.normal_(model.slot_classifier.weight, std=0.2)
        output_names = ["intent_logits", "slot_logits"]
    else:
        has_pooler = spec.family in HAS_POOLER
        model = Encoder(encoder, uses_token_types, has_pooler)
        output_names = ["last_hidden_state"] + (["pooler_output"] if has_pooler else [])
    perturb_parameters(model, seed + 1)
    if spec.variant == "fp16-weights":
        with torch.no_grad():  # weights exactly representable in fp16, so fp32 PyTorch is the reference
            for param in model.parameters():
                param.copy_(param.half().float())
    model.eval()
    input_names = ["input_ids", "attention_mask"] + (["token_type_ids"] if uses_token_types else [])
    return model, config, input_names, output_names


def ragged_inputs(spec: ModelSpec, input_names: list[str], lengths: list[int], seq: int, seed: int) -> dict[str, np.ndarray]:
    """A padded batch: [CLS] w1 .. wn [SEP] [PAD]..., each row its own length; mask 0 on padding."""
    rng = np.random.default_rng(seed)
    special = SPECIAL_TOKENS[spec.family]
    batch = len(lengths)
    input_ids = np.full((batch, seq), special["pad"], np.int64)
    attention_mask = np.zeros((batch, seq), np.int64)
    token_type_ids = np.zeros((batch, seq), np.int64)
    for row, length in enumerate(lengths):
        input_ids[row, :length] = rng.integers(5, 160, size=length)
        input_ids[row, 0] = special["cls"]
        input_ids[row, length - 1] = special["sep"]
        attention_mask[row, :length] = 1
        if row == 0 and length >= 6:  # a sentence pair: segment B after the first [SEP]
            middle = length // 2
            input_ids[row, middle] = special["sep"]
            token_type_ids[row, middle + 1:length] = 1
    feeds = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
    return {name: feeds[name] for name in input_names}


def torch_outputs(model, feeds: dict[str, np.ndarray], output_names: list[str]) -> dict[str, np.ndarray]:
    import torch

    with torch.no_grad():
        outs = model(*[torch.from_numpy(v) for v in feeds.values()])
    return {name: t.detach().numpy() for name, t in zip(output_names, outs)}


def export_model(spec: ModelSpec, model, feeds: dict[str, np.ndarray], input_names, output_names, path: Path) -> None:
    import torch

    args = tuple(torch.from_numpy(v) for v in feeds.values())
    if spec.exporter == "torchscript":
        dynamic_axes = {name: {0: "batch", 1: "seq"} for name in input_names}
        for name in output_names:
            dynamic_axes[name] = {0: "batch"} if name in ("intent_logits", "pooler_output") else {0: "batch", 1: "seq"}
        torch.onnx.export(model, args, str(path), dynamo=False, opset_version=spec.opset, input_names=input_names,
                          output_names=output_names, dynamic_axes=dynamic_axes, do_constant_folding=True)
    elif spec.exporter == "dynamo":
        batch = torch.export.Dim("batch", min=1, max=256)
        seq = torch.export.Dim("seq", min=1, max=64)
        program = torch.onnx.export(model, args, dynamo=True, opset_version=spec.opset, input_names=input_names,
                                    output_names=output_names, dynamic_shapes=tuple({0: batch, 1: seq} for _ in args),
                                    external_data=False, verbose=False)
        program.save(str(path), external_data=False)
    else:
        raise ValueError(spec.exporter)


def strip_debug_metadata(path: Path) -> int:
    """Keeps only the 'namespace' entry of the dynamo exporter's per-node metadata_props.

    The stack traces, FX dumps, class hierarchies and name scopes are most of a small model's
    bytes, and the stack traces hold machine paths and line numbers of this script; the
    namespace entry stays, so the importer still sees metadata_props on nodes.
    """
    model = onnx.load(str(path))
    dropped = 0

    def visit(graph: onnx.GraphProto) -> None:
        nonlocal dropped
        for n in graph.node:
            keep = [p for p in n.metadata_props if p.key == "namespace"]
            dropped += len(n.metadata_props) - len(keep)
            del n.metadata_props[:]
            n.metadata_props.extend(keep)
            for attr in n.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    visit(attr.g)

    visit(model.graph)
    onnx.save(model, str(path))
    return dropped


def ort_basic_optimize(source: Path, target: Path) -> None:
    """ORT's offline basic-level optimization: constant folding and standard-op-only rewrites."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(target)
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])


def store_weights_as_fp16(path: Path) -> int:
    """Float32 weight initializers become float16 initializers followed by Cast(to=float)."""
    model = onnx.load(str(path))
    graph = model.graph
    casts, converted = [], 0
    for index, init in enumerate(list(graph.initializer)):
        if init.data_type != TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(init)
        if values.size < 16 or not np.array_equal(values.astype(np.float16).astype(np.float32), values):
            continue  # scalars and anything fp16 cannot hold exactly stay fp32
        name = init.name
        half_name = f"{name}_fp16"
        graph.initializer[index].CopyFrom(numpy_helper.from_array(values.astype(np.float16), half_name))
        casts.append(helper.make_node("Cast", [half_name], [name], name=f"{name}_cast", to=TensorProto.FLOAT))
        converted += 1
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return converted


def max_abs_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)))) for k in a)


def make_model_fixture(root: Path, spec: ModelSpec) -> dict:
    import torch
    import transformers
    import zlib

    seed = zlib.crc32(spec.name.encode()) % (2 ** 31)
    folder = fresh_dir(root / spec.name)
    model, config, input_names, output_names = make_torch_model(spec, seed)
    input_sets = {
        "ragged": ragged_inputs(spec, input_names, lengths=[9, 6, 2], seq=9, seed=seed),
        "batch1": ragged_inputs(spec, input_names, lengths=[5], seq=5, seed=seed + 1),
    }
    model_path = folder / "model.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        exported = Path(tmp) / "exported.onnx"
        try:
            export_model(spec, model, input_sets["ragged"], input_names, output_names, exported)
        except Exception as error:  # an exporter failure is recorded, not fatal; numeric mismatches are
            shutil.rmtree(folder)
            message = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
            print(f"  {spec.name:40s} EXPORT FAILED: {message}", flush=True)
            return {"fixture": f"models/{spec.name}", "exporter": spec.exporter, "opset": spec.opset,
                    "family": spec.family, "error": message}
        if spec.variant == "ort-basic-optimized":
            ort_basic_optimize(exported, model_path)
        else:
            shutil.copy(exported, model_path)
    notes = []
    if spec.exporter == "dynamo":
        dropped = strip_debug_metadata(model_path)
        notes.append(f"removed {dropped} node metadata_props (stack_trace, fx_node, class_hierarchy, name_scopes) "
                     "to keep the fixture small and machine-independent; 'namespace' kept")
    if spec.variant == "fp16-weights":
        converted = store_weights_as_fp16(model_path)
        notes.append(f"{converted} weight initializers stored as float16, each followed by Cast(to=FLOAT)")
    if spec.variant == "ort-basic-optimized":
        notes.append("TorchScript export re-saved by ONNX Runtime at ORT_ENABLE_BASIC (optimized_model_filepath)")
    onnx_model = onnx.load(str(model_path))
    onnx.checker.check_model(onnx_model)
    extra_files = [f.name for f in folder.iterdir() if f.name != "model.onnx"]
    if extra_files or onnx_model.graph.initializer and any(t.external_data for t in onnx_model.graph.initializer):
        raise AssertionError(f"{spec.name}: model is not self-contained (external data: {extra_files})")

    worst = 0.0
    per_set = {}
    set_meta = []
    for set_name, feeds in input_sets.items():
        expected = torch_outputs(model, feeds, output_names)
        got = run_ort(model_path, feeds)
        if list(got) != output_names:
            raise AssertionError(f"{spec.name}: ORT outputs {list(got)}, expected {output_names}")
        diff = max_abs_diff(expected, got)
        per_set[set_name] = diff
        worst = max(worst, diff)
        if not diff <= TOLERANCE:
            raise SystemExit(f"FAIL {spec.name} [{set_name}]: PyTorch vs ORT max-abs {diff:.3e} > {TOLERANCE}")
        suffix = "" if set_name == "ragged" else f"_{set_name}"
        write_arrays(folder / f"inputs{suffix}", feeds)
        write_arrays(folder / f"outputs{suffix}", got)
        set_meta.append({
            "name": set_name, "inputs_dir": f"inputs{suffix}", "outputs_dir": f"outputs{suffix}",
            "sequence_lengths": feeds["attention_mask"].sum(axis=1).tolist(),
            "inputs": [tensor_desc(n, a) for n, a in feeds.items()],
            "outputs": [tensor_desc(n, a) for n, a in got.items()],
            "torch_vs_ort_maxabs": diff,
        })
    histogram = op_histogram(onnx_model)
    encoder_fields = {k: v for k, v in config.to_dict().items() if k in (
        "model_type", "vocab_size", "hidden_size", "dim", "embedding_size", "num_hidden_layers", "n_layers",
        "num_attention_heads", "n_heads", "intermediate_size", "hidden_dim", "max_position_embeddings",
        "type_vocab_size", "hidden_act", "activation", "layer_norm_eps", "pad_token_id")}
    write_manifest(folder, {
        "family": spec.family,
        "exporter": spec.exporter,
        "opset": default_opset(onnx_model),
        "requested_opset": spec.opset,
        "ir_version": onnx_model.ir_version,
        "variant": spec.variant or None,
        "gelu": {"gelu": "exact (erf)", "gelu_new": "tanh approximation (explicit formula, gelu_new)",
                 "gelu_pytorch_tanh": "tanh approximation (F.gelu approximate='tanh')"}[spec.gelu],
        "hidden_act": spec.gelu,
        "head": spec.head,
        "attention_implementation": spec.attention,
        "num_intents": NUM_INTENTS if spec.head == "joint" else None,
        "num_slots": NUM_SLOTS if spec.head == "joint" else None,
        "config": encoder_fields,
        "seed": seed,
        "inputs": set_meta[0]["inputs"],
        "outputs": set_meta[0]["outputs"],
        "input_sets": set_meta,
        "tolerance": TOLERANCE,
        "torch_vs_ort_maxabs": worst,
        "ort": {"version": ort.__version__, "provider": "CPUExecutionProvider", "graph_optimization": "disabled"},
        "versions": {"torch": torch.__version__.split("+")[0], "transformers": transformers.__version__,
                     "onnx": onnx.__version__},
        "notes": notes,
        "op_histogram": dict(sorted(histogram.items())),
    })
    size = model_path.stat().st_size
    print(f"  {spec.name:40s} opset {default_opset(onnx_model):2d}  {size / 1024:7.1f} KiB  "
          f"max-abs ragged {per_set['ragged']:.2e} batch1 {per_set['batch1']:.2e}", flush=True)
    return {"fixture": f"models/{spec.name}", "exporter": spec.exporter + (f"+{spec.variant}" if spec.variant else ""),
            "opset": default_opset(onnx_model), "maxabs": worst, "histogram": histogram, "family": spec.family}


def make_model_fixtures(out: Path, only: set[str] | None = None) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    root = out / "models"
    if only is None:
        fresh_dir(root)
    root.mkdir(parents=True, exist_ok=True)
    specs = [s for s in MODEL_SPECS if only is None or s.name in only]
    print(f"models: exporting {len(specs)} fixtures to {root}", flush=True)
    rows = [make_model_fixture(root, spec) for spec in specs]
    failures = [r for r in rows if "error" in r]
    if only is None:
        write_manifest(root, {
            "description": "Index of model fixtures written by tools/make_fixtures.py",
            "fixtures": [{k: v for k, v in r.items() if k != "histogram"} for r in rows if "error" not in r],
            "export_failures": failures,
            "op_histogram_by_exporter": histograms_by_exporter(rows),
        })
        (root / "manifest.json").rename(root / "index.json")
    return rows


def histograms_by_exporter(rows: list[dict]) -> dict:
    by_exporter: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for row in rows:
        if "histogram" in row:
            by_exporter[row["exporter"]].update(row["histogram"])
    return {k: dict(sorted(v.items())) for k, v in sorted(by_exporter.items())}


# ─────────────────────────────────────────────────────────────────────────────
# Entry point
# ─────────────────────────────────────────────────────────────────────────────

def tree_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def print_summary(model_rows: list[dict], out: Path) -> None:
    if model_rows:
        print()
        print(f"{'fixture':48s} {'exporter':34s} {'opset':>5s}  torch-vs-ORT max-abs")
        print("-" * 110)
        for row in model_rows:
            result = f"{row['maxabs']:.3e}" if "maxabs" in row else f"FAILED: {row['error'][:60]}"
            print(f"{row['fixture']:48s} {row['exporter']:34s} {row['opset']:5d}  {result}")
        print()
        print("op histogram by exporter (all model fixtures):")
        for exporter, hist in histograms_by_exporter(model_rows).items():
            print(f"  {exporter}: " + ", ".join(f"{op}={n}" for op, n in sorted(hist.items())))
    for sub in ("models", "ops", "import"):
        if (out / sub).exists():
            print(f"{sub:8s} {tree_bytes(out / sub) / 1e6:6.2f} MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="fixture root (default: Tests/Fixtures)")
    parser.add_argument("--only", choices=["models", "ops", "import"], action="append",
                        help="generate only these trees (repeatable); default: all")
    parser.add_argument("--model", action="append", help="regenerate only the named model fixture(s)")
    args = parser.parse_args(argv)
    trees = set(args.only or ["models", "ops", "import"])
    model_rows: list[dict] = []
    if "ops" in trees:
        make_op_fixtures(args.out)
    if "import" in trees:
        make_import_fixtures(args.out)
    if "models" in trees:
        model_rows = make_model_fixtures(args.out, set(args.model) if args.model else None)
    print_summary(model_rows, args.out)
    return check_op_coverage(model_rows)


def check_op_coverage(model_rows: list[dict]) -> int:
    """Every op that appears in a model fixture must also have at least one op fixture."""
    if not model_rows:
        return 0
    model_ops = set().union(*(set(r["histogram"]) for r in model_rows if "histogram" in r))
    op_fixture_ops = {n.op_type for case in op_cases() for n in case.nodes}
    missing = sorted(model_ops - op_fixture_ops)
    if missing:
        print(f"FAIL: ops in model fixtures without an op fixture: {missing}")
        return 1
    print(f"op coverage: all {len(model_ops)} op types seen in model fixtures have op fixtures")
    return 0


if __name__ == "__main__":
    sys.exit(main())

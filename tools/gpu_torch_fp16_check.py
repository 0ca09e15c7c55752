"""How far PyTorch's own fp16 lands from fp32 on the inputs `kiln-gpu-probe check` saved: the
yardstick for Kiln's fp16 error (tools/gpu-check, step 2). If PyTorch `.half()` on the same GPU
differs from ONNX Runtime fp32 by as much as Kiln's CUDA engine does, the tolerance, not Kiln's
kernels, is what a model like support-en fails.

    python3 tools/gpu_torch_fp16_check.py MODEL.onnx CHECK_DIR

CHECK_DIR holds caseN.in.NAME.npy (inputs) and caseN.gpu.NAME.npy (Kiln's outputs). Prints one
line: max-abs vs ONNX Runtime of PyTorch fp16 and of Kiln, and intent argmax mismatches.
"""
from __future__ import annotations

import glob
import os
import sys

import numpy as np
import onnxruntime as ort
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "servers"))
import torch_bert  # noqa: E402


def forward_on_device(model, input_ids, attention_mask, token_type_ids):
    """torch_bert.JointBert.forward with the position ids made on the inputs' device."""
    positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
    hidden = (model.word_embeddings(input_ids) + model.position_embeddings(positions)
              + model.token_type_embeddings(token_type_ids))
    hidden = model.embedding_norm(hidden)
    mask = attention_mask.to(hidden.dtype)
    mask_bias = (1.0 - mask[:, None, None, :]) * -10000.0
    for layer in model.layers:
        hidden = layer(hidden, mask_bias)
    return model.intent_head(hidden[:, 0]), model.slot_head(hidden) * mask[:, :, None]


def main():
    model_path, folder = sys.argv[1], sys.argv[2]
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    model = torch_bert.load_from_onnx(model_path).to("cuda", torch.float16)
    names = [o.name for o in session.get_outputs()]
    worst = {"torch-fp16": 0.0, "kiln": 0.0}
    mismatches = {"torch-fp16": 0, "kiln": 0}
    cases = sorted({os.path.basename(p).split(".")[0] for p in glob.glob(f"{folder}/case*.in.*.npy")})
    for case in cases:
        feeds = {i.name: np.load(f"{folder}/{case}.in.{i.name}.npy") for i in session.get_inputs()}
        expected = dict(zip(names, session.run(names, feeds)))
        with torch.inference_mode():
            tensors = [torch.from_numpy(feeds[n]).cuda() for n in ("input_ids", "attention_mask", "token_type_ids")]
            torch_out = dict(zip(("intent_logits", "slot_logits"), (t.float().cpu().numpy() for t in forward_on_device(model, *tensors))))
        kiln_out = {n: np.load(f"{folder}/{case}.gpu.{n}.npy") for n in names}
        for label, got in (("torch-fp16", torch_out), ("kiln", kiln_out)):
            for name in names:
                worst[label] = max(worst[label], float(np.max(np.abs(got[name] - expected[name]))))
                if "intent" in name:
                    mismatches[label] += int(np.sum(got[name].argmax(-1) != expected[name].argmax(-1)))
    # The verdict: Kiln's fp16 engine may be as far from fp32 as PyTorch's own fp16 on the same GPU
    # and inputs (a fixed 2e-2 at least), and may flip no intent.
    bound = max(2e-2, worst["torch-fp16"])
    ok = worst["kiln"] <= bound and mismatches["kiln"] == 0
    print(f"FP16-YARDSTICK {'PASS' if ok else 'FAIL'} {os.path.basename(folder)}: max-abs vs onnxruntime fp32: pytorch fp16 {worst['torch-fp16']:.3g} "
          f"(intent argmax mismatches {mismatches['torch-fp16']}), kiln cuda fp16 {worst['kiln']:.3g} "
          f"(mismatches {mismatches['kiln']}, allowed max-abs {bound:.3g}) over {len(cases)} cases")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

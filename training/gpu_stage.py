"""Stage the base encoder and the data for a training run on the lent GPU machine, which has no
network and takes at most 64 MiB per call (repository included: models/ alone is 40 MB).

  python gpu_stage.py stage DIR --parts 3   # here: DIR/part1..3 (each ~11 MB) for three calls' carry
  python gpu_stage.py expand STAGE OUT       # there: STAGE/part.* -> OUT/base (KILN_BASE_MODEL), OUT/data (KILN_DATA)

What travels: the MiniLM weights in fp16 (as the shipped v1 models were trained: an init difference of
at most 1 fp16 ulp from the fp32 package), with the word-embedding matrix cut to the 11,775 rows that any
dataset's vocabulary (common.build_vocab, with and without --keep-top 3000) copies, plus the full
matrix's per-column mean/std (init_from_base uses them for new rows); the base tokenizer.json; the five
datasets (xz tar). `expand` puts the rows back at their ids in a full-shape matrix (unused rows zero,
never read), so init_from_base sees exactly what it would see with the fp16 package.
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def stage(out, parts):
    import torch
    from safetensors.torch import load_file, save
    import common as C
    rows = set()
    for ds, spec in C.DATASETS.items():
        texts = [e.text for e in spec.load("train-full")]
        for keep_top in (0, 3000):
            rows.update(i for i in C.build_vocab(texts, 1, keep_top)[1] if i >= 0)
    rows = sorted(rows)
    sd = load_file(os.path.join(C.base_model_dir(), "model.safetensors"))
    small = {}
    for k, v in sd.items():
        if k.startswith("pooler.") or not v.is_floating_point():
            continue  # the pooler is not used; position_ids is a buffer the model rebuilds
        v16 = v.half()
        if k == "embeddings.word_embeddings.weight":
            small["kiln.word_embeddings.mean"] = v16.float().mean(0)
            small["kiln.word_embeddings.std"] = v16.float().std(0)
            small["kiln.word_embeddings.rows"] = torch.tensor(rows, dtype=torch.int64)
            small["kiln.word_embeddings.num_rows"] = torch.tensor([v.shape[0]], dtype=torch.int64)
            v16 = v16[rows]
        elif k == "embeddings.position_embeddings.weight":
            v16 = v16[: C.MAX_SEQ]
        small[k] = v16.contiguous()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        tar.add(os.path.join(C.base_model_dir(), "tokenizer.json"), arcname="base/tokenizer.json")
        for name in sorted(C.DATASETS) + ["README.md"]:
            tar.add(os.path.join(C.DATA, name), arcname=f"data/{name}")
    blob = len(buf.getvalue()).to_bytes(8, "little") + buf.getvalue() + save(small)
    os.makedirs(out, exist_ok=True)
    step = (len(blob) + parts - 1) // parts
    for i in range(parts):
        d = os.path.join(out, f"part{i + 1}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"part.{i + 1}"), "wb") as f:
            f.write(blob[i * step:(i + 1) * step])
    print(f"{len(rows)} embedding rows; {len(blob) / 1e6:.1f} MB in {parts} parts under {out}")


def expand(stage_dir, out):
    import torch
    from safetensors.torch import load, save_file
    names = sorted((f for f in os.listdir(stage_dir) if f.startswith("part.")), key=lambda f: int(f.split(".")[1]))
    blob = b"".join(open(os.path.join(stage_dir, f), "rb").read() for f in names)
    n = int.from_bytes(blob[:8], "little")
    shutil.rmtree(out, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(blob[8:8 + n]), mode="r:xz") as tar:
        tar.extractall(out)
    small = load(blob[8 + n:])
    rows, num = small.pop("kiln.word_embeddings.rows"), int(small.pop("kiln.word_embeddings.num_rows")[0])
    w = small["embeddings.word_embeddings.weight"]
    full = torch.zeros(num, w.shape[1], dtype=w.dtype)
    full[rows] = w
    small["embeddings.word_embeddings.weight"] = full
    save_file(small, os.path.join(out, "base", "model.safetensors"))
    print(f"expanded {len(names)} parts: {out}/base (KILN_BASE_MODEL), {out}/data (KILN_DATA)")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("stage"); s.add_argument("out"); s.add_argument("--parts", type=int, default=3)
    e = sub.add_parser("expand"); e.add_argument("stage"); e.add_argument("out")
    a = ap.parse_args()
    stage(a.out, a.parts) if a.cmd == "stage" else expand(a.stage, a.out)


if __name__ == "__main__":
    main()

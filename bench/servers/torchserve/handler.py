"""TorchServe handler: the story's "before", a PyTorch eager model behind a Python model server.

Per request (or per TorchServe batch when batching is on): JSON {"text": ...} in, tokenization with
the model's tokenizer.json, the eager JointBERT forward pass, Kiln's intent + slot decoding, a
/v1/parse-shaped JSON answer out. Model archive files: this handler, ../nlu.py, ../torch_bert.py and
the model version directory (model.onnx, tokenizer.json, model.json); bench/servers/serve_torchserve.py
packs them.
"""
import json
import os

import torch

import nlu
import torch_bert


class NLUHandler:
    """TorchServe custom handler (initialize / handle), batch-aware."""

    def __init__(self):
        self.pipeline = None

    def initialize(self, context):
        directory = context.system_properties.get("model_dir")
        torch.set_num_threads(int(os.environ.get("KILN_BENCH_TORCH_THREADS", "1")))
        card = nlu.ModelCard(directory)
        model = torch_bert.load_from_onnx(card.onnx_path)
        names = ["input_ids", "attention_mask", "token_type_ids"]

        def run_model(feeds):
            with torch.inference_mode():
                inputs = [torch.from_numpy(feeds[n]) if n in feeds else torch.zeros_like(torch.from_numpy(feeds["input_ids"]))
                          for n in names]
                intent_logits, slot_logits = model(*inputs)
            return intent_logits.numpy(), slot_logits.numpy()

        self.pipeline = nlu.Pipeline(card, run_model)

    def handle(self, data, context):
        texts = []
        for request in data:
            body = request.get("body") if request.get("body") is not None else request.get("data")
            if isinstance(body, (bytes, bytearray)):
                body = json.loads(body)
            texts.append(body["text"])
        return self.pipeline.parse(texts)


_service = NLUHandler()


def handle(data, context):
    """Module-level entry point TorchServe calls (initializes on first use)."""
    if _service.pipeline is None:
        _service.initialize(context)
    if data is None:
        return None
    return _service.handle(data, context)

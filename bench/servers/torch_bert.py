"""The shipped JointBERT model as a plain PyTorch eager module: the "before" of the story.

The shipped models are ONNX only, with int8 (per-output-channel scale) and fp16 weights behind
Cast/Mul nodes. This module rebuilds the network (HF BertModel layout + intent and slot heads, as
training/common.py trains it) and loads fp32 weights computed from the ONNX graph itself: every
MatMul/Gemm/Gather weight is evaluated through its Cast/Mul/Transpose chain and named by the bias
initializer its Add consumes, so no weight layout is guessed. check_peers.py holds its logits to
ONNX Runtime's within 1e-3.
"""
from __future__ import annotations

import math

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import numpy_helper


# ---------------------------------------------------------------------------------------------
# Weights out of the ONNX graph
# ---------------------------------------------------------------------------------------------
def _constant_values(graph):
    """Evaluate every node computed only from initializers (Cast, Mul, Transpose, Constant)."""
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        elif node.op_type in ("Cast", "Mul", "Transpose") and all(x in values for x in node.input):
            a = values[node.input[0]]
            if node.op_type == "Cast":
                values[node.output[0]] = a.astype(np.float32)
            elif node.op_type == "Mul":
                values[node.output[0]] = (a * values[node.input[1]]).astype(np.float32)
            else:
                perm = next((list(x.ints) for x in node.attribute if x.name == "perm"), None)
                values[node.output[0]] = np.transpose(a, perm)
    return values


def state_dict_from_onnx(path: str) -> dict[str, torch.Tensor]:
    """fp32 parameters named like training/common.py's JointBert, read from the ONNX graph."""
    graph = onnx.load(path).graph
    values = _constant_values(graph)
    initializers = {i.name for i in graph.initializer}
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    state = {name: torch.from_numpy(np.array(values[name], dtype=np.float32))
             for name in initializers if values[name].dtype == np.float32 and values[name].ndim == 1}
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in values and node.input[1] not in initializers:
            # y = x @ W^T: the bias added right after names the Linear layer.
            add = next(n for n in consumers[node.output[0]] if n.op_type == "Add")
            bias = next(x for x in add.input if x in initializers)
            state[bias[:-len("bias")] + "weight"] = torch.from_numpy(np.ascontiguousarray(values[node.input[1]].T))
        elif node.op_type == "Gemm" and node.input[1] in values:
            trans_b = next((x.i for x in node.attribute if x.name == "transB"), 0)
            weight = values[node.input[1]] if trans_b else values[node.input[1]].T
            state[node.input[2][:-len("bias")] + "weight"] = torch.from_numpy(np.ascontiguousarray(weight))
        elif node.op_type == "Gather" and node.input[0] in values and node.input[0] not in initializers:
            # Embedding tables; load_from_onnx tells them apart by shape.
            state.setdefault("_gathers", []).append(values[node.input[0]])
    return state


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------
class EncoderLayer(nn.Module):
    """One BERT layer (post-LayerNorm, erf GELU), the HF parameter layout."""

    def __init__(self, hidden_size: int, num_heads: int, intermediate_size: int):
        super().__init__()
        self.num_heads, self.head_size = num_heads, hidden_size // num_heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.attention_output = nn.Linear(hidden_size, hidden_size)
        self.attention_norm = nn.LayerNorm(hidden_size, eps=1e-12)
        self.intermediate = nn.Linear(hidden_size, intermediate_size)
        self.output = nn.Linear(intermediate_size, hidden_size)
        self.output_norm = nn.LayerNorm(hidden_size, eps=1e-12)

    def forward(self, hidden: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        batch, length, _ = hidden.shape

        def heads(t):
            return t.view(batch, length, self.num_heads, self.head_size).transpose(1, 2)

        q, k, v = heads(self.query(hidden)), heads(self.key(hidden)), heads(self.value(hidden))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_size) + mask_bias
        context = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(batch, length, -1)
        hidden = self.attention_norm(hidden + self.attention_output(context))
        return self.output_norm(hidden + self.output(F.gelu(self.intermediate(hidden))))


class JointBert(nn.Module):
    """Embeddings, encoder layers, intent head on [CLS], slot head on every (unpadded) token."""

    def __init__(self, vocab_size, max_positions, num_intents, num_slots, num_layers, hidden_size=384,
                 num_heads=12, intermediate_size=1536):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, hidden_size)
        self.position_embeddings = nn.Embedding(max_positions, hidden_size)
        self.token_type_embeddings = nn.Embedding(2, hidden_size)
        self.embedding_norm = nn.LayerNorm(hidden_size, eps=1e-12)
        self.layers = nn.ModuleList(EncoderLayer(hidden_size, num_heads, intermediate_size) for _ in range(num_layers))
        self.intent_head = nn.Linear(hidden_size, num_intents)
        self.slot_head = nn.Linear(hidden_size, num_slots)

    def forward(self, input_ids, attention_mask, token_type_ids):
        positions = torch.arange(input_ids.shape[1]).unsqueeze(0)
        hidden = (self.word_embeddings(input_ids) + self.position_embeddings(positions)
                  + self.token_type_embeddings(token_type_ids))
        hidden = self.embedding_norm(hidden)
        mask = attention_mask.to(hidden.dtype)
        mask_bias = (1.0 - mask[:, None, None, :]) * -10000.0
        for layer in self.layers:
            hidden = layer(hidden, mask_bias)
        return self.intent_head(hidden[:, 0]), self.slot_head(hidden) * mask[:, :, None]


_LAYER_NAMES = {
    "attention.self.query": "query", "attention.self.key": "key", "attention.self.value": "value",
    "attention.output.dense": "attention_output", "attention.output.LayerNorm": "attention_norm",
    "intermediate.dense": "intermediate", "output.dense": "output", "output.LayerNorm": "output_norm",
}


def load_from_onnx(path: str, num_heads: int = 12) -> JointBert:
    """Build the eager model with the ONNX file's weights (fp32), in eval mode."""
    onnx_state = state_dict_from_onnx(path)
    gathers = onnx_state.pop("_gathers")
    # Embedding tables by shape: the word table is the tallest, token types have 2 rows.
    gathers.sort(key=lambda t: -t.shape[0])
    word, position, token_type = gathers[0], gathers[1], gathers[-1]
    num_layers = 1 + max(int(k.split(".")[2]) for k in onnx_state if k.startswith("encoder.layer."))
    hidden = word.shape[1]
    model = JointBert(word.shape[0], position.shape[0], onnx_state["intent_head.bias"].shape[0],
                      onnx_state["slot_head.bias"].shape[0], num_layers, hidden, num_heads,
                      onnx_state["encoder.layer.0.intermediate.dense.bias"].shape[0])
    state = {"word_embeddings.weight": torch.from_numpy(np.ascontiguousarray(word, dtype=np.float32)),
             "position_embeddings.weight": torch.from_numpy(np.ascontiguousarray(position, dtype=np.float32)),
             "token_type_embeddings.weight": torch.from_numpy(np.ascontiguousarray(token_type, dtype=np.float32))}
    for name, tensor in onnx_state.items():
        if name.startswith("embeddings.LayerNorm."):
            state["embedding_norm." + name.rsplit(".", 1)[1]] = tensor
        elif name.startswith("encoder.layer."):
            parts = name.split(".")
            state[f"layers.{parts[2]}.{_LAYER_NAMES['.'.join(parts[3:-1])]}.{parts[-1]}"] = tensor
        else:
            state[name] = tensor
    model.load_state_dict(state)
    return model.eval()

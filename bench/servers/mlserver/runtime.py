"""MLServer custom runtime: the model on ONNX Runtime behind the Open Inference Protocol (v2).

Request: a BYTES input "text" (one utterance per row). MLServer's adaptive batching concatenates
concurrent requests along the first axis before predict() sees them and splits the answer again.
Per call: tokenization with the model's tokenizer.json, ONNX Runtime (all graph optimizations, the
thread count from KILN_BENCH_ORT_THREADS), Kiln's intent + slot decoding; answer: a BYTES output
"result" holding one /v1/parse-shaped JSON document per row.
"""
import json
import os

import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import StringCodec
from mlserver.types import InferenceRequest, InferenceResponse

import nlu


class NLURuntime(MLModel):
    """Text in, intent + slots JSON out, on ONNX Runtime."""

    async def load(self) -> bool:
        card = nlu.ModelCard(self.settings.parameters.uri)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("KILN_BENCH_ORT_THREADS", "1"))
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(card.onnx_path, options, providers=["CPUExecutionProvider"])
        outputs = ["intent_logits", "slot_logits"]
        self.pipeline = nlu.Pipeline(card, lambda feeds: session.run(outputs, feeds))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        request_input = next(i for i in payload.inputs if i.name == "text")
        texts = StringCodec.decode_input(request_input)
        results = [json.dumps(r) for r in self.pipeline.parse(texts)]
        return InferenceResponse(model_name=self.name, model_version=self.version,
                                 outputs=[StringCodec.encode_output("result", results)])

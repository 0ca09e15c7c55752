"""MLServer runtime for perf_analyzer runs: bench/servers/mlserver/runtime.py's NLURuntime, unchanged,
plus Triton's model-configuration endpoint, GET /v2/models/NAME/config, and outputs without
per-output parameters (see predict).

Why: perf_analyzer (Triton's load generator) reads the model's metadata and then its Triton config
(max_batch_size) before it sends a request, and stops with "failed to get model config" on MLServer,
which serves the Open Inference Protocol's metadata but not that Triton extension. A custom handler is
part of MLServer's own HTTP app (no proxy in the request path) and is only hit at perf_analyzer's
start; predict() is NLURuntime's. max_batch_size 0: each request is sent as the input data gives it
([1] text); batching stays MLServer's adaptive batching, as in bench/run_all's MLServer row.
bench/servers/perf_analyzer_sweep selects this class and declares the text input in the model settings
(the metadata perf_analyzer reads to know what to send).
"""
from mlserver.handlers import custom_handler
from mlserver.types import InferenceRequest, InferenceResponse

from runtime import NLURuntime


class NLURuntimeWithTritonConfig(NLURuntime):
    """NLURuntime + GET /v2/models/{model_name}/config in Triton's model-configuration JSON, and
    outputs without MLServer's per-output parameters."""

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        # perf_analyzer's HTTP client reads an output's "parameters" as the binary tensor extension's
        # and fails on MLServer's {"content_type": "str"} ("attempt to access non-existing object
        # member 'binary_data_size'"); the protocol allows any parameters, so this is the client's
        # strictness. Dropping them costs nothing and changes no data.
        response = await super().predict(payload)
        for output in response.outputs:
            output.parameters = None
        return response

    @custom_handler(rest_path="/v2/models/{model_name}/config", rest_method="GET")
    async def triton_config(self, model_name: str) -> dict:
        return {"name": model_name, "platform": "mlserver", "backend": "python", "max_batch_size": 0,
                "input": [{"name": "text", "data_type": "TYPE_STRING", "dims": [-1]}],
                "output": [{"name": "result", "data_type": "TYPE_STRING", "dims": [-1]}]}

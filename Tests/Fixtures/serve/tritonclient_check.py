"""tritonclient (the Triton / KServe v2 HTTP client, unchanged) against `kiln serve`.

  python Tests/Fixtures/serve/tritonclient_check.py --kiln .build/debug/kiln

Starts `kiln serve` on the fixture repository (Tests/Fixtures/serve/models, tiny-nlu version 1) on a
free loopback port, then uses tritonclient.http for health, server and model metadata, model config,
repository index, inference with binary and JSON tensors (outputs checked against onnxruntime on the
same model.onnx when onnxruntime is installed, else for shape and finiteness), admin load/unload with
a bearer token, and the 401 without it. Stops the server with SIGTERM and checks it exits 0.
Exit status 0 when every check passes. Needs: tritonclient[http], numpy (onnxruntime optional).
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "models")
TOKEN = "tritonclient-check-token"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(kiln, port):
    env = dict(os.environ, KILN_ADMIN_TOKEN=TOKEN)
    process = subprocess.Popen(
        [kiln, "serve", "--model-repository", MODELS, "--config", os.path.join(HERE, "kiln-serve.json"),
         "--port", str(port), "--log-level", "warning"], env=env)
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{port}")
    for _ in range(300):
        try:
            if client.is_server_ready():
                return process, client
        except Exception:
            pass
        if process.poll() is not None:
            raise SystemExit(f"kiln serve exited with {process.returncode} before it was ready")
        time.sleep(0.1)
    process.kill()
    raise SystemExit("kiln serve did not become ready in 30 s")


def rows():
    # [CLS] tokens... [SEP] for two utterances, padded with 0 (ids from the fixture tokenizer's vocabulary).
    ids = np.array([[2, 10, 11, 12, 13, 3], [2, 14, 15, 3, 0, 0]], dtype=np.int64)
    mask = (ids != 0).astype(np.int64)
    return ids, mask, np.zeros_like(ids)


def reference(ids, mask, types):
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    session = ort.InferenceSession(os.path.join(MODELS, "tiny-nlu", "1", "model.onnx"), providers=["CPUExecutionProvider"])
    out = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
    return dict(zip([o.name for o in session.get_outputs()], out))


def infer(client, binary):
    ids, mask, types = rows()
    inputs = []
    for name, value in (("input_ids", ids), ("attention_mask", mask), ("token_type_ids", types)):
        tensor = httpclient.InferInput(name, list(value.shape), "INT64")
        tensor.set_data_from_numpy(value, binary_data=binary)
        inputs.append(tensor)
    outputs = [httpclient.InferRequestedOutput(name, binary_data=binary) for name in ("intent_logits", "slot_logits")]
    result = client.infer("tiny-nlu", inputs, outputs=outputs, request_id="check-1")
    return {name: result.as_numpy(name) for name in ("intent_logits", "slot_logits")}, result.get_response()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kiln", default=".build/debug/kiln", help="the kiln binary")
    args = parser.parse_args()
    port = free_port()
    process, client = start_server(args.kiln, port)
    failures = []

    def check(condition, what):
        print(("ok   " if condition else "FAIL ") + what)
        if not condition:
            failures.append(what)

    try:
        check(client.is_server_live(), "is_server_live")
        check(client.is_server_ready(), "is_server_ready")
        check(client.is_model_ready("tiny-nlu"), "is_model_ready")
        check(not client.is_model_ready("nope"), "is_model_ready(unknown) is false")
        server = client.get_server_metadata()
        check(server["name"] == "kiln" and "binary_tensor_data" in server["extensions"], "get_server_metadata")
        metadata = client.get_model_metadata("tiny-nlu")
        check({i["name"] for i in metadata["inputs"]} == {"input_ids", "attention_mask", "token_type_ids"}, "get_model_metadata inputs")
        config = client.get_model_config("tiny-nlu")
        check(config["max_batch_size"] >= 1, "get_model_config")
        index = client.get_model_repository_index()
        check(any(m["name"] == "tiny-nlu" and m["state"] == "READY" for m in index), "get_model_repository_index")

        expected = reference(*rows())
        for binary in (True, False):
            outputs, response = infer(client, binary)
            label = "binary" if binary else "JSON"
            check(outputs["intent_logits"].shape == (2, 6) and outputs["slot_logits"].shape == (2, 6, 7), f"infer ({label}) shapes")
            check(response.get("id") == "check-1", f"infer ({label}) echoes the request id")
            if expected is not None:
                worst = max(float(np.abs(outputs["intent_logits"] - expected["intent_logits"]).max()),
                            float(np.abs(outputs["slot_logits"][0] - expected["slot_logits"][0]).max()))
                check(worst <= 1e-4, f"infer ({label}) matches onnxruntime (max-abs {worst:.2e} <= 1e-4)")
            else:
                check(bool(np.isfinite(outputs["intent_logits"]).all()), f"infer ({label}) finite")

        try:
            client.unload_model("tiny-nlu")
            check(False, "unload without a token is refused")
        except InferenceServerException as error:
            check("401" in str(error.status()) or "Bearer" in str(error), "unload without a token is refused (401)")
        headers = {"Authorization": f"Bearer {TOKEN}"}
        client.load_model("tiny-nlu", headers=headers)
        check(client.is_model_ready("tiny-nlu"), "load_model (reload) with the token")
        client.unload_model("tiny-nlu", headers=headers)
        check(not client.is_model_ready("tiny-nlu"), "unload_model with the token")
        client.load_model("tiny-nlu", headers=headers)
        check(client.is_model_ready("tiny-nlu"), "load_model after unload")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            code = -9
        check(code == 0, f"kiln serve exits 0 on SIGTERM (got {code})")
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("all tritonclient checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The "before" of the story on a GPU: a plain Python HTTP server that calls a PyTorch eager model
once per request (no batching), for `kiln bench --api text` on the GPU machine (tools/gpu-check,
step 4). Same per-request work as `kiln serve`'s /v1/parse: tokenize with the model's
tokenizer.json, run the model, decode intent + slots (bench/servers/nlu.py, which matches Kiln's
decoding).

    python3 tools/gpu_torch_server.py --version-dir /tmp/repo/bertbase/1 --state /tmp/bertbase.pt \
        --port 8091 [--dtype fp16|fp32] [--layers 12 --hidden 768 --heads 12 --ffn 3072 --vocab 30522]

The model is training/common.py's JointBert with the weights saved by the export step (the same
weights as the served model.onnx). A ThreadingHTTPServer answers POST {"text": ...} on any path;
GET /health answers 200 once the model is warm.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "training"))
sys.path.insert(0, os.path.join(ROOT, "bench", "servers"))
import common as C  # noqa: E402
import nlu  # noqa: E402


def build_pipeline(args) -> nlu.Pipeline:
    card = nlu.ModelCard(args.version_dir)
    model = C.JointBert(args.vocab, len(card.intent_labels), len(card.slot_labels), layers=args.layers, hidden=args.hidden,
                        heads=args.heads, ffn=args.ffn)
    model.load_state_dict(torch.load(args.state, map_location="cpu"))
    dtype = torch.float16 if args.dtype == "fp16" else torch.float32
    model = model.to("cuda", dtype).eval()

    def run_model(feeds):
        with torch.inference_mode():
            tensors = [torch.from_numpy(feeds[name]).to("cuda", non_blocking=True)
                       for name in ("input_ids", "attention_mask", "token_type_ids")]
            intent, slots = model(*tensors)
            return intent.float().cpu().numpy(), slots.float().cpu().numpy()

    pipeline = nlu.Pipeline(card, run_model)
    for _ in range(20):
        pipeline.parse(["warm up the model please"])
    return pipeline


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--version-dir", required=True)
    parser.add_argument("--state", required=True, help="torch state_dict saved with the exported model")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--dtype", choices=["fp16", "fp32"], default="fp16")
    parser.add_argument("--vocab", type=int, default=30522)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--ffn", type=int, default=3072)
    args = parser.parse_args()
    pipeline = build_pipeline(args)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def _reply(self, status: int, body: dict):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._reply(200, {"status": "ready"})

        def do_POST(self):
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                text = body["text"]
                if not isinstance(text, str) or not text:
                    raise ValueError("text must be a non-empty string")
            except (ValueError, KeyError, TypeError) as error:
                self._reply(400, {"error": str(error)})
                return
            self._reply(200, pipeline.parse([text])[0])

    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"torch eager {args.dtype} server on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

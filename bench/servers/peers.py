"""The servers bench/run_all compares, each started the same way: on 127.0.0.1, serving one model
(a repository holding only that model version, so nobody pays for models it doesn't serve), with the
same thread budget (THREADS: worker processes x 1 intra-op thread for the Python servers, kernel
threads for Kiln), and a readiness probe. Each `Peer` knows how to start its server and how the load
generator must talk to it (`api`: kiln, v2 or text).

Start one by hand:  python bench/servers/peers.py torchserve --port 8081   (Ctrl-C stops it)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
WORK = os.path.join(HERE, "work")
THREADS = 2


@dataclass
class Peer:
    """How to start one server and how to load it."""
    name: str                  # row name in the results table
    api: str                   # kiln | v2 | text (kiln bench --api)
    command: list[str]
    ready_url: str
    url: str                   # what the load generator is pointed at
    model: str | None = None   # v2 model name
    env: dict = field(default_factory=dict)
    cwd: str | None = None
    settings: str = ""         # one line for the report: batching, workers, threads


def venv_python(peer: str) -> str:
    return os.path.join(HERE, f".venv-{peer}", "bin", "python")


def model_repository(model_dir: str) -> str:
    """bench/servers/work/repo/NAME/VERSION/ -> links to the model's files (only that model)."""
    name, version = os.path.basename(os.path.dirname(model_dir)), os.path.basename(model_dir)
    target = os.path.join(WORK, "repo", name, version)
    shutil.rmtree(os.path.join(WORK, "repo"), ignore_errors=True)
    os.makedirs(target)
    for entry in os.listdir(model_dir):
        os.symlink(os.path.join(os.path.abspath(model_dir), entry), os.path.join(target, entry))
    return os.path.join(WORK, "repo")


def kiln_peer(kiln: str, model_dir: str, port: int, precision: str = "fp32", instances: int = THREADS,
              max_batch: int = 32, delay_ms: float = 5, plan: str | None = None,
              tokens_per_thread: int | None = None) -> Peer:
    """kiln serve with the budget split like the Python peers' (THREADS instances x 1 kernel thread), or,
    with instances=1, one engine instance using all THREADS kernel threads (OpenMP passive waiting:
    spinning OpenMP threads collapse when the cores are oversubscribed, see bench/README.md).

    `plan`: a plan made by `kiln build` (the int8 row). `kiln serve` has no --precision int8; it serves
    whatever plan its cache holds for the model's SHA-256, so the plan is placed in a cache folder of
    its own under the name serve would give its fp32 plan (see `plan_cache`).

    `tokens_per_thread`: --max-batch-tokens = this x the instance's kernel threads (real tokens per
    engine call), so one call's time stays bounded whatever the thread layout (see bench/README.md)."""
    repository = model_repository(model_dir)
    threads = max(1, THREADS // instances)
    serve_precision = "fp32" if plan else precision
    command = [kiln, "serve", "--model-repository", repository, "--port", str(port), "--threads", str(threads),
               "--instances", str(instances), "--precision", serve_precision, "--max-batch-size", str(max_batch),
               "--max-queue-delay-ms", str(delay_ms), "--log-level", "warning"]
    budget = tokens_per_thread * threads if tokens_per_thread else None
    if budget:
        command += ["--max-batch-tokens", str(budget)]
    env = {"KILN_CACHE_DIR": plan_cache(model_dir, plan) if plan else os.path.join(WORK, "kiln-cache")}
    if threads > 1:
        env["OMP_WAIT_POLICY"] = "passive"
    layout = f"{instances} instances x {threads} thread" if instances > 1 else f"1 instance x {threads} threads"
    return Peer(f"Kiln {precision} ({layout})", "kiln", command, f"http://127.0.0.1:{port}/v2/health/ready",
                f"http://127.0.0.1:{port}", env=env,
                settings=f"compiled engine{' (plan from kiln build, served through the plan cache)' if plan else ''}, "
                         f"{layout}{', OMP_WAIT_POLICY=passive' if threads > 1 else ''}, "
                         f"dynamic batching <= {max_batch}{f' and <= {budget} real tokens' if budget else ''}, "
                         f"{delay_ms:g} ms window")


def plan_cache(model_dir: str, plan: str) -> str:
    """A cache folder holding only `plan`, named as `kiln serve --precision fp32` names the model's plan
    (EngineCache: SHA-256 prefix, precision, ISA level, plan format). The name is copied from the fp32
    plan that serve cached in WORK/kiln-cache (the checks and the fp32 row start serve first); serve
    accepts the plan because its header carries the same model SHA-256."""
    import hashlib
    with open(os.path.join(model_dir, "model.onnx"), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    shared = os.path.join(WORK, "kiln-cache")
    # The newest: an older kiln may have left plans of another plan format beside it.
    names = sorted((n for n in os.listdir(shared) if n.startswith(f"{digest}-fp32-") and n.endswith(".kiln")),
                   key=lambda n: os.path.getmtime(os.path.join(shared, n))) if os.path.isdir(shared) else []
    if not names:
        raise RuntimeError(f"no fp32 plan of {model_dir} in {shared} to name the plan after: run the kiln fp32 row first")
    folder = os.path.join(WORK, "kiln-cache-" + os.path.basename(plan).rsplit(".", 1)[0])
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    shutil.copyfile(plan, os.path.join(folder, names[-1]))
    return folder


def torchserve_peer(model_dir: str, port: int, batch_size: int = 1, delay_ms: int = 5) -> Peer:
    """TorchServe, PyTorch eager handler, THREADS workers x 1 torch thread; batch_size 1 = batching off."""
    name = os.path.basename(os.path.dirname(model_dir))
    root = os.path.join(WORK, "torchserve")
    store = os.path.join(root, "store")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(store)
    archiver = os.path.join(HERE, ".venv-torchserve", "bin", "torch-model-archiver")
    extra = [os.path.join(HERE, "nlu.py"), os.path.join(HERE, "torch_bert.py")]
    extra += [os.path.join(model_dir, f) for f in ("model.onnx", "tokenizer.json", "model.json")]
    subprocess.run([archiver, "--model-name", name, "--version", "1", "--handler",
                    os.path.join(HERE, "torchserve", "handler.py"), "--extra-files", ",".join(extra),
                    "--export-path", store, "--archive-format", "no-archive", "-f"], check=True)
    models = {name: {"1": {"defaultVersion": True, "marName": name, "minWorkers": THREADS, "maxWorkers": THREADS,
                           "batchSize": batch_size, "maxBatchDelay": delay_ms, "responseTimeout": 120}}}
    # Logging at WARN (TorchServe's default logs every request at INFO/DEBUG through log4j, which costs
    # CPU a tuned deployment would not spend), and no system-metrics collector process.
    log_config = os.path.join(root, "log4j2.xml")
    with open(log_config, "w") as f:
        f.write('<Configuration status="WARN"><Appenders><Console name="STDOUT" target="SYSTEM_OUT">'
                '<PatternLayout pattern="%d %p %c: %m%n"/></Console></Appenders><Loggers><Root level="warn">'
                '<AppenderRef ref="STDOUT"/></Root></Loggers></Configuration>')
    config = os.path.join(root, "config.properties")
    with open(config, "w") as f:
        f.write("\n".join([
            f"inference_address=http://127.0.0.1:{port}", f"management_address=http://127.0.0.1:{port + 1}",
            f"metrics_address=http://127.0.0.1:{port + 2}", f"model_store={store}", f"load_models={name}",
            f"default_workers_per_model={THREADS}", "disable_token_authorization=true",
            "install_py_dep_per_model=false", "job_queue_size=1000", "number_of_netty_threads=2",
            "netty_client_threads=2", f"vmargs=-Xmx1g -XX:+UseSerialGC -Dlog4j.configurationFile=file://{log_config}",
            "disable_system_metrics=true", "async_logging=true", f"models={json.dumps(models)}", ""]))
    bin_dir = os.path.join(HERE, ".venv-torchserve", "bin")
    command = [os.path.join(bin_dir, "torchserve"), "--start", "--foreground", "--ncs", "--disable-token-auth",
               "--ts-config", config, "--model-store", store]
    batching = "off" if batch_size == 1 else f"batch_size {batch_size}, max_batch_delay {delay_ms} ms"
    return Peer(f"TorchServe eager{'' if batch_size == 1 else ' + batching'}", "text", command,
                f"http://127.0.0.1:{port}/ping", f"http://127.0.0.1:{port}/predictions/{name}",
                env={"PATH": bin_dir + os.pathsep + os.environ["PATH"], "KILN_BENCH_TORCH_THREADS": "1",
                     "OMP_NUM_THREADS": "1", "LOG_LOCATION": os.path.join(root, "logs"),
                     "METRICS_LOCATION": os.path.join(root, "logs")},
                cwd=root, settings=f"PyTorch eager, {THREADS} workers x 1 thread, batching {batching}")


def mlserver_peer(model_dir: str, port: int, max_batch: int = 16, delay_ms: float = 5) -> Peer:
    """MLServer, custom ONNX Runtime runtime, adaptive batching, THREADS workers x 1 ORT thread."""
    name = os.path.basename(os.path.dirname(model_dir))
    root = os.path.join(WORK, "mlserver")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(os.path.join(root, name))
    with open(os.path.join(root, "settings.json"), "w") as f:
        json.dump({"host": "127.0.0.1", "http_port": port, "grpc_port": port + 1, "metrics_port": port + 2,
                   "parallel_workers": THREADS, "debug": False}, f)
    with open(os.path.join(root, name, "model-settings.json"), "w") as f:
        json.dump({"name": name, "implementation": "runtime.NLURuntime", "max_batch_size": max_batch,
                   "max_batch_time": delay_ms / 1000, "parameters": {"uri": os.path.abspath(model_dir)}}, f)
    command = [os.path.join(HERE, ".venv-mlserver", "bin", "mlserver"), "start", root]
    python_path = os.pathsep.join([os.path.join(HERE, "mlserver"), HERE])
    return Peer("MLServer + ONNX Runtime", "v2", command, f"http://127.0.0.1:{port}/v2/models/{name}/ready",
                f"http://127.0.0.1:{port}", model=name,
                env={"PYTHONPATH": python_path, "KILN_BENCH_ORT_THREADS": "1", "OMP_NUM_THREADS": "1"},
                cwd=root, settings=f"ONNX Runtime (all optimizations), {THREADS} workers x 1 thread, "
                                   f"adaptive batching max {max_batch}, {delay_ms:g} ms")


def start(peer: Peer, log_path: str, timeout: float = 300) -> subprocess.Popen:
    """Start the server in its own process group and wait until it answers its readiness probe."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    log = open(log_path, "w")
    process = subprocess.Popen(peer.command, stdout=log, stderr=subprocess.STDOUT, cwd=peer.cwd,
                               env={**os.environ, **peer.env}, start_new_session=True)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{peer.name} exited with {process.returncode} while starting; see {log_path}")
        if _answers(peer.ready_url) and _answers(*probe(peer)):
            return process
        time.sleep(1)
    stop(process)
    raise RuntimeError(f"{peer.name} not ready after {timeout:.0f} s; see {log_path}")


def probe(peer: Peer, text: str = "play some jazz in the kitchen") -> tuple[str, bytes]:
    """A real request in the peer's API: ready means it answers one (workers loaded, plan built)."""
    if peer.api == "kiln":
        return peer.url + "/v1/parse", json.dumps({"text": text}).encode()
    if peer.api == "v2":
        body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}]}
        return f"{peer.url}/v2/models/{peer.model}/infer", json.dumps(body).encode()
    return peer.url, json.dumps({"text": text}).encode()


def _answers(url: str, body: bytes | None = None) -> bool:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status == 200
    except Exception:  # noqa: BLE001 - not up yet
        return False


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group (only what we started), SIGKILL after 20 s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass
    # TorchServe's Java frontend and workers, MLServer's workers: anything left in the group.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("peer", choices=["torchserve", "torchserve-batching", "mlserver", "kiln", "kiln-1x2"])
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--model-dir", default=os.path.join(REPO, "models", "snips", "1"))
    parser.add_argument("--kiln", default=os.path.join(REPO, ".build", "release", "kiln"))
    args = parser.parse_args()
    peer = {"torchserve": lambda: torchserve_peer(args.model_dir, args.port),
            "torchserve-batching": lambda: torchserve_peer(args.model_dir, args.port, batch_size=8),
            "mlserver": lambda: mlserver_peer(args.model_dir, args.port),
            "kiln": lambda: kiln_peer(args.kiln, args.model_dir, args.port),
            "kiln-1x2": lambda: kiln_peer(args.kiln, args.model_dir, args.port, instances=1)}[args.peer]()
    process = start(peer, os.path.join(WORK, "logs", f"{args.peer}.log"))
    print(f"{peer.name} ready: {peer.url} (api {peer.api}); Ctrl-C stops it", flush=True)
    try:
        process.wait()
    except KeyboardInterrupt:
        stop(process)


if __name__ == "__main__":
    sys.exit(main())

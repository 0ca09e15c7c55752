"""Shared helpers of the tools/serve_* measurement scripts: start and stop `kiln serve`, read its
CPU time, memory and /metrics, percentiles. Standard library only."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("KILN_DATA_DIR", os.path.join(os.path.dirname(ROOT), "shared", "data"))


def latest_version_dir(repository: str, model: str) -> str:
    """The model's highest version folder in the repository."""
    versions = sorted(int(v) for v in os.listdir(os.path.join(repository, model)) if v.isdigit())
    return os.path.join(repository, model, str(versions[-1]))


def cpu_list(text: str) -> set[int]:
    """CPU numbers from a list like taskset's: "0", "0,1", "0-3,6"."""
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def pinned_to(cpus: set[int] | None):
    """A subprocess preexec_fn that confines the child (and its threads) to `cpus`; None: no pinning."""
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def bench_engine(kiln: str, model_dir: str, texts_file: str, batch: int, seconds: float, threads: int | None,
                 cpus: set[int] | None = None) -> dict:
    """`kiln bench-engine --texts` on the model's ONNX (compiled in memory, padding-free like the
    server): {"seq_per_s", "p50_ms", "p99_ms", ...} for batches of `batch` texts in file order,
    run on `cpus` only when given."""
    command = [kiln, "bench-engine", os.path.join(model_dir, "model.onnx"), "--texts", texts_file,
               "--tokenizer", os.path.join(model_dir, "tokenizer.json"), "--batch", str(batch),
               "--seconds", str(seconds), "--json"]
    if threads:
        command += ["--threads", str(threads)]
    output = subprocess.run(command, check=True, capture_output=True, text=True, preexec_fn=pinned_to(cpus)).stdout
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(f"no JSON from: {' '.join(command)}\n{output}")
    return lines[-1]


def kiln_bench(kiln: str, port: int, model: str, texts: str, clients: int, seconds: float,
               cpus: set[int] | None = None) -> dict:
    """`kiln bench` closed loop (the project's load generator, Swift): its run record
    (throughput_rps, errors, latency_ms{p50,p99,...}); on `cpus` only when given."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([kiln, "bench", f"http://127.0.0.1:{port}", "--model", model, "--texts", texts,
                        "--concurrency", str(clients), "--duration", str(seconds), "--warmup", "0", "--quiet",
                        "--json", out.name], check=True, capture_output=True, preexec_fn=pinned_to(cpus))
        with open(out.name) as file:
            return json.load(file)["runs"][0]


def histogram_sums(metrics: str, model: str) -> dict[str, float]:
    """Every *_sum and *_count of the model's kiln_* histograms in a /metrics text."""
    values: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("kiln_") and f'model="{model}"' in line and ("_sum{" in line or "_count{" in line):
            name = line.split("{", 1)[0]
            values[name] = values.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return values


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round((len(ordered) - 1) * p / 100)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`kiln serve` on a free loopback port with one model loaded (on `cpus` only, when given)."""

    def __init__(self, kiln: str, repository: str, model: str, delay_ms: float, threads: int | None, work: str,
                 extra: list[str] | tuple[str, ...] = (), cpus: set[int] | None = None):
        self.port = free_port()
        config = os.path.join(work, f"serve-{self.port}.json")
        with open(config, "w") as file:
            json.dump({"load": [model]}, file)
        command = [kiln, "serve", "--model-repository", repository, "--config", config, "--port", str(self.port),
                   "--max-queue-delay-ms", str(delay_ms), "--log-level", "warning"]
        if threads:
            command += ["--threads", str(threads)]
        command += list(extra)
        self.process = subprocess.Popen(command, env=dict(os.environ, KILN_CACHE_DIR=os.path.join(work, "plans")),
                                        preexec_fn=pinned_to(cpus))
        deadline = time.time() + 600
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"kiln serve exited with {self.process.returncode}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/v2/health/ready")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit("kiln serve not ready in 600 s")

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def metrics(self) -> str:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        connection.request("GET", "/metrics")
        return connection.getresponse().read().decode()

    def rss_bytes(self) -> int:
        """Resident set size of the server process."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()

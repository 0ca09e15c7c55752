"""Shared helpers of the tools/serve_* measurement scripts: start and stop `kiln serve`, read its
CPU time, memory and /metrics, percentiles. Standard library only."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round((len(ordered) - 1) * p / 100)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`kiln serve` on a free loopback port with one model loaded."""

    def __init__(self, kiln: str, repository: str, model: str, delay_ms: float, threads: int | None, work: str,
                 extra: list[str] | tuple[str, ...] = ()):
        self.port = free_port()
        config = os.path.join(work, f"serve-{self.port}.json")
        with open(config, "w") as file:
            json.dump({"load": [model]}, file)
        command = [kiln, "serve", "--model-repository", repository, "--config", config, "--port", str(self.port),
                   "--max-queue-delay-ms", str(delay_ms), "--log-level", "warning"]
        if threads:
            command += ["--threads", str(threads)]
        command += list(extra)
        self.process = subprocess.Popen(command, env=dict(os.environ, KILN_CACHE_DIR=os.path.join(work, "plans")))
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

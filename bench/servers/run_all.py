"""Server-level comparison in one go (issue 7): Kiln against TorchServe (PyTorch eager, batching off
and on) and MLServer (ONNX Runtime, adaptive batching), one server at a time, same model, same work
per request, same load, same thread budget (peers.THREADS).

Per server:
  1. start it (peers.py) and wait until ready; sample its whole process tree with psutil every
     0.25 s (RSS summed over processes, CPU as a share of the machine's cores) while it runs;
  2. capacity: closed-loop load at a few concurrencies; the best throughput is the server's "max";
  3. an open-loop (Poisson) rate sweep at fractions of that max: throughput vs P99 curve;
     "throughput at SLA" = the best throughput of a point with P99 <= SLA and no errors;
  4. the fixed load: open loop at TorchServe eager's max (the story's "before" at its limit), for
     every server (P99 there, and the latency CDF, taken with loadgen.py --raw-latencies);
  5. Kiln fp32 only: open loop at 80% of its own throughput at SLA (SLA attainment target).
Load comes from `kiln bench` (the Swift load generator) when the kiln binary has it, else from
loadgen.py; the report says which. Both share the 2 cores with the server: they are part of the
cost at high rates, equally for every server.

Writes bench/results/<date>-servers.md (+ .json summary, PNG plots) and prints the table.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402

REPO = peers.REPO
RESULTS = os.path.join(REPO, "bench", "results")


class ProcessSampler(threading.Thread):
    """Samples a process tree: peak RSS (sum over processes) and CPU utilization per window."""

    def __init__(self, pid: int, interval: float = 0.25):
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak_rss = 0
        self.samples: list[tuple[float, float]] = []  # (time, cpu % of all cores)
        self.running = True
        self.known: dict[int, psutil.Process] = {}

    def _tree(self):
        try:
            processes = [self.root] + self.root.children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        for process in processes:
            if process.pid not in self.known:
                self.known[process.pid] = process
                try:
                    process.cpu_percent(None)  # first call primes the counter
                except psutil.Error:
                    pass
        return [self.known[p.pid] for p in processes]

    def run(self):
        cores = psutil.cpu_count() or 1
        while self.running:
            rss, cpu = 0, 0.0
            for process in self._tree():
                try:
                    rss += process.memory_info().rss
                    cpu += process.cpu_percent(None)
                except psutil.Error:
                    pass
            self.peak_rss = max(self.peak_rss, rss)
            self.samples.append((time.time(), cpu / cores))
            time.sleep(self.interval)

    def cpu_between(self, start: float, end: float) -> float | None:
        values = [c for t, c in self.samples if start <= t <= end]
        return sum(values) / len(values) if values else None


class LoadGenerator:
    """`kiln bench` when the binary has it, else loadgen.py: same options, same JSON."""

    def __init__(self, kiln: str, texts: str, sla_ms: float, warmup: float, prefer: str):
        self.texts, self.sla_ms, self.warmup = texts, sla_ms, warmup
        self.python = [os.path.join(peers.HERE, ".venv-runner", "bin", "python"), os.path.join(peers.HERE, "loadgen.py")]
        # An older kiln answers `bench --help` with its top-level help (exit 0): look for bench's own option.
        has_bench = prefer != "python" and os.path.exists(kiln) and "--api" in subprocess.run(
            [kiln, "bench", "--help"], capture_output=True, text=True).stdout
        if prefer == "kiln" and not has_bench:
            raise SystemExit(f"{kiln} has no `bench` subcommand; rebuild kiln or use --generator python")
        self.command = [kiln, "bench"] if has_bench else self.python
        self.name = "kiln bench" if has_bench else "bench/servers/loadgen.py"

    def run(self, peer: peers.Peer, duration: float, concurrency=None, rate=None, raw=False) -> list[dict]:
        base = self.python if raw else self.command
        with tempfile.TemporaryDirectory() as scratch:
            out = os.path.join(scratch, "out.json")
            command = base + [peer.url, "--api", peer.api, "--texts", self.texts, "--duration", str(duration),
                              "--warmup", str(self.warmup), "--sla-ms", str(self.sla_ms), "--json", out, "--quiet"]
            if peer.model:
                command += ["--model", peer.model]
            if concurrency:
                command += ["--concurrency", ",".join(str(c) for c in concurrency)]
            else:
                command += ["--rate", ",".join(f"{r:.1f}" for r in rate)]
            if raw:
                command.append("--raw-latencies")
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0 or not os.path.exists(out):
                raise RuntimeError(f"load generator failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-2000:]}")
            with open(out) as f:
                return json.load(f)["runs"]


def throughput_at_sla(points: list[dict], sla_ms: float) -> float:
    good = [p["throughput_rps"] for p in points
            if p["errors"] == 0 and p["latency_ms"]["p99"] is not None and p["latency_ms"]["p99"] <= sla_ms]
    return max(good, default=0.0)


def measure(peer: peers.Peer, load: LoadGenerator, plan: dict, fixed_rate: float | None, log_dir: str) -> dict:
    """Everything one server is measured on, in one start of it."""
    print(f"== {peer.name}: {peer.settings}", flush=True)
    load_before = os.getloadavg()
    process = peers.start(peer, os.path.join(log_dir, peer.name.replace(" ", "_").replace("+", "") + ".log"))
    sampler = ProcessSampler(process.pid)
    sampler.start()
    result = {"name": peer.name, "settings": peer.settings, "api": peer.api, "load_before": load_before}
    try:
        began = time.time()
        closed = load.run(peer, plan["duration"], concurrency=plan["concurrency"])
        result["cpu_util"] = sampler.cpu_between(began, time.time())
        capacity = max(p["throughput_rps"] for p in closed)
        print(f"   capacity (closed loop {plan['concurrency']}): {capacity:.1f} req/s", flush=True)
        rates = [max(1.0, capacity * f) for f in plan["fractions"]]
        sweep = load.run(peer, plan["duration"], rate=rates)
        result.update(closed=closed, sweep=sweep, capacity_rps=capacity,
                      throughput_at_sla=throughput_at_sla(sweep, load.sla_ms))
        print(f"   throughput at P99 <= {load.sla_ms:g} ms: {result['throughput_at_sla']:.1f} req/s", flush=True)
        rate = fixed_rate if fixed_rate is not None else capacity
        result["fixed"] = load.run(peer, plan["duration"], rate=[rate])[0]
        result["cdf"] = load.run(peer, plan["duration"], rate=[rate], raw=True)[0].get("latencies_ms", [])
        if plan.get("sla_point"):
            # "80% of Kiln's max", read both ways: of its throughput at SLA, and of its closed-loop max.
            if result["throughput_at_sla"] > 0:
                result["at_80pct"] = load.run(peer, plan["duration"], rate=[0.8 * result["throughput_at_sla"]])[0]
            result["at_80pct_capacity"] = load.run(peer, plan["duration"], rate=[0.8 * capacity])[0]
    finally:
        sampler.running = False
        sampler.join()
        peers.stop(process)
    result["peak_rss_mb"] = sampler.peak_rss / 2**20
    result["load_after"] = os.getloadavg()
    return result


def kiln_precisions(kiln: str) -> list[str]:
    """fp32 always; int8 when `kiln serve --help` offers it (bf16 needs AVX512_BF16: not on this CPU)."""
    help_text = subprocess.run([kiln, "serve", "--help"], capture_output=True, text=True).stdout
    return ["fp32", "int8"] if "int8" in help_text else ["fp32"]


def kiln_description(kiln: str) -> str:
    """Which kiln binary was measured: its path and when it was built (it may predate HEAD)."""
    if not os.path.exists(kiln):
        return f"{kiln} (missing)"
    built = datetime.datetime.fromtimestamp(os.path.getmtime(kiln), datetime.timezone.utc)
    return f"{kiln} built {built:%Y-%m-%d %H:%M} UTC"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: short durations, few points")
    parser.add_argument("--model-dir", default=os.path.join(REPO, "models", "snips", "1"))
    parser.add_argument("--kiln", default=os.path.join(REPO, ".build", "release", "kiln"))
    parser.add_argument("--texts", default=os.path.join(REPO, "..", "shared", "data", "snips", "test", "seq.in"))
    parser.add_argument("--sla-ms", type=float, default=100)
    parser.add_argument("--duration", type=float, help="seconds per load point (default 15, quick 4)")
    parser.add_argument("--generator", choices=["auto", "kiln", "python"], default="auto")
    parser.add_argument("--peers", default="torchserve,torchserve-batching,mlserver,kiln,kiln-1x2",
                        help="comma-separated subset; torchserve runs first (its max sets the fixed load)")
    parser.add_argument("--port", type=int, default=18081)
    parser.add_argument("--kiln-max-batch", type=int, default=32, help="kiln serve --max-batch-size")
    parser.add_argument("--out", help="results file (default bench/results/<date>-servers.md)")
    args = parser.parse_args()

    duration = args.duration or (4 if args.quick else 12)
    plan = {"duration": duration, "concurrency": [16] if args.quick else [4, 16, 64],
            "fractions": [0.5, 0.9] if args.quick else [0.1, 0.25, 0.5, 0.7, 0.85, 1.0, 1.15]}
    load = LoadGenerator(args.kiln, args.texts, args.sla_ms, 1 if args.quick else 3, args.generator)
    log_dir = os.path.join(peers.WORK, "logs")
    wanted = args.peers.split(",")
    factories = []
    if "torchserve" in wanted:
        factories.append(("torchserve", lambda: peers.torchserve_peer(args.model_dir, args.port)))
    if "torchserve-batching" in wanted:
        factories.append(("torchserve-batching", lambda: peers.torchserve_peer(args.model_dir, args.port, batch_size=8)))
    if "mlserver" in wanted:
        factories.append(("mlserver", lambda: peers.mlserver_peer(args.model_dir, args.port)))
    if "kiln" in wanted:
        for precision in kiln_precisions(args.kiln):
            factories.append((f"kiln-{precision}", lambda p=precision: peers.kiln_peer(
                args.kiln, args.model_dir, args.port, p, max_batch=args.kiln_max_batch)))
    if "kiln-1x2" in wanted:
        factories.append(("kiln-fp32-1x2", lambda: peers.kiln_peer(
            args.kiln, args.model_dir, args.port, instances=1, max_batch=args.kiln_max_batch)))

    started = datetime.datetime.now(datetime.timezone.utc)
    results, fixed_rate, failures = [], None, []
    for key, factory in factories:
        peer_plan = dict(plan, sla_point=key.startswith("kiln"))
        try:
            result = measure(factory(), load, peer_plan, fixed_rate, log_dir)
        except Exception as error:  # noqa: BLE001 - one broken peer must not sink the comparison
            print(f"   FAILED: {error}", flush=True)
            failures.append((key, str(error).splitlines()[0]))
            continue
        result["key"] = key
        results.append(result)
        if key == "torchserve":
            fixed_rate = result["capacity_rps"]
    import report  # matplotlib is only needed here
    out = args.out or os.path.join(RESULTS, f"{started:%Y-%m-%d}-servers.md")
    text = report.write(results, failures, out, {
        "command": " ".join(["bench/servers/run_all.py"] + sys.argv[1:]), "started": started.isoformat(timespec="seconds"),
        "generator": load.name, "sla_ms": args.sla_ms, "duration": duration, "plan": plan, "fixed_rate": fixed_rate,
        "model_dir": os.path.relpath(args.model_dir, REPO), "threads": peers.THREADS, "kiln": kiln_description(args.kiln)})
    print(text)
    print(f"wrote {out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Server-level comparison in one go (issue 7): Kiln against TorchServe (PyTorch eager, batching off
and on) and MLServer (ONNX Runtime, adaptive batching), one server at a time, same model, same work
per request, same load, same thread budget (peers.THREADS). Two model shapes (--model-shape):
minilm (the shipped snips model, SLA 100 ms) and bert-base (bench/make_bert_base.py, SLA 300 ms).
Kiln rows: fp32, int8 (calibrated on the snips train split, `kiln build --precision int8`), fp32 with
1 instance x 2 threads; bf16 is listed as not run when the CPU lacks AVX512_BF16/AMX.

Per server:
  1. start it (peers.py) and wait until ready; sample its whole process tree with psutil every
     0.25 s (RSS summed over processes, CPU as a share of the machine's cores) while it runs;
  2. capacity: closed-loop load at a few concurrencies; the best throughput is the server's "max";
  3. an open-loop (Poisson) rate sweep at fractions of that max: throughput vs P99 curve;
     "throughput at SLA" = the best throughput of a point with P99 <= SLA and no errors;
  4. the fixed load: open loop at TorchServe eager's max (the story's "before" at its limit), for
     every server (P99 there, and the latency CDF from the same run's raw latencies); for Kiln also
     its /metrics before and after (queue wait, engine time, rows per call: where the time goes);
  5. Kiln rows only: open loop at 80% of its own throughput at SLA and of its closed-loop max (SLA
     attainment target);
(Triton's perf_analyzer, the second load generator, runs after this script from bench/run_all:
bench/servers/perf_analyzer_sweep.)
Load comes from `kiln bench` (the Swift load generator) when the kiln binary has it, else from
loadgen.py; the report says which. Both share the 2 cores with the server: they are part of the
cost at high rates, equally for every server (bench/servers/loadgen_cost.py measures that cost).

Writes bench/results/<date>-servers[-bert-base][-quick].md (+ .json summary, PNG plots) and prints the table.
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
        self.raw_capable = not has_bench or "--raw-latencies" in subprocess.run(
            [kiln, "bench", "--help"], capture_output=True, text=True).stdout

    def run(self, peer: peers.Peer, duration: float, concurrency=None, rate=None, raw=False) -> list[dict]:
        # kiln bench writes raw latencies itself (--raw-latencies); old binaries fall back to loadgen.py for them.
        base = self.python if raw and not self.raw_capable else self.command
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


def metric_sums(peer: peers.Peer) -> dict[str, float] | None:
    """Every *_sum / *_count of kiln serve's kiln_* histograms (None for other servers or on error)."""
    if peer.api != "kiln":
        return None
    import urllib.request
    try:
        with urllib.request.urlopen(peer.url + "/metrics", timeout=10) as reply:
            text = reply.read().decode()
    except Exception:  # noqa: BLE001 - the breakdown is extra information
        return None
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("kiln_") and ("_sum{" in line or "_count{" in line):
            name = line.split("{", 1)[0]
            values[name] = values.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return values


def breakdown(before: dict | None, after: dict | None) -> dict | None:
    """Where a Kiln request's time went over one run, from the server's own histograms: mean queue wait,
    mean engine time of the batch it ran in, mean server-side request time, mean rows/tokens per call.
    Client latency minus the server-side time is HTTP + the load generator on the shared cores."""
    if not before or not after:
        return None
    d = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    def mean(name, scale=1000.0):
        count = d.get(name + "_count", 0.0)
        return scale * d.get(name + "_sum", 0.0) / count if count else None
    return {"queue_ms": mean("kiln_queue_duration_seconds"), "compute_ms": mean("kiln_compute_duration_seconds"),
            "server_ms": mean("kiln_request_duration_seconds"), "rows_per_call": mean("kiln_batch_size", 1.0),
            "tokens_per_call": mean("kiln_batch_tokens", 1.0), "calls": d.get("kiln_batch_size_count", 0.0)}


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
        # One run gives the fixed-load row and its latency CDF.
        before = metric_sums(peer)
        result["fixed"] = load.run(peer, plan["duration"], rate=[rate], raw=True)[0]
        result["fixed_breakdown"] = breakdown(before, metric_sums(peer))
        result["cdf"] = result["fixed"].pop("latencies_ms", [])
        if plan.get("sla_point"):
            # "80% of Kiln's max", read both ways: of its throughput at SLA, and of its closed-loop max.
            if result["throughput_at_sla"] > 0:
                before = metric_sums(peer)
                result["at_80pct"] = load.run(peer, plan["duration"], rate=[0.8 * result["throughput_at_sla"]])[0]
                result["at_80pct_breakdown"] = breakdown(before, metric_sums(peer))
            result["at_80pct_capacity"] = load.run(peer, plan["duration"], rate=[0.8 * capacity])[0]
    finally:
        sampler.running = False
        sampler.join()
        peers.stop(process)
    result["peak_rss_mb"] = sampler.peak_rss / 2**20
    result["load_after"] = os.getloadavg()
    return result


SHAPES = {
    # name: (model folder, SLA ms, words for the report, Kiln batch tokens per kernel thread)
    "minilm": (os.path.join(REPO, "models", "snips", "1"), 100, "snips, MiniLM-L6-shaped JointBERT (6 x 384, shipped weights)", 96),
    "bert-base": (os.path.join(REPO, "bench", ".models", "bert-base-snips", "1"), 300,
                  "BERT-base-shaped JointBERT (12 x 768, FFN 3072, random weights, snips tokenizer/labels; bench/make_bert_base.py)", 40),
}
# Why a token budget: a request's latency under load is about (the batch running when it arrives) + (its own
# batch), so one engine call must cost well under SLA/2. Fp32 costs ~0.4 ms per real token per kernel thread on
# MiniLM-L6 (engine-2026-11-25-1140-quiet.md: 437.7 seq/s of ~11 tokens on 2 threads) and ~8x that on BERT-base
# (170 vs 21 MFLOP per token): 96 tokens ~ 38 ms of 100, 40 tokens ~ 130 ms of 300 per thread. Estimates, not
# tuned by measurement; --kiln-batch-tokens-per-thread 0 turns the budget off.


def cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any("avx512_bf16" in line or "amx_bf16" in line for line in f if line.startswith("flags"))
    except OSError:
        return False


def int8_plan(kiln: str, model_dir: str, calibration_data: str, samples: int) -> str:
    """`kiln calibrate` on the calibration utterances, then `kiln build --precision int8` (kept in
    WORK/int8/, rebuilt when the model or the kiln binary is newer than the plan)."""
    name = os.path.basename(os.path.dirname(model_dir))
    folder = os.path.join(peers.WORK, "int8")
    os.makedirs(folder, exist_ok=True)
    calibration = os.path.join(folder, f"{name}-{samples}.calibration.json")
    plan = os.path.join(folder, f"{name}-int8-c{samples}.kiln")
    model = os.path.join(model_dir, "model.onnx")
    newest_input = max(os.path.getmtime(model), os.path.getmtime(kiln))
    if os.path.exists(plan) and os.path.getmtime(plan) > newest_input:
        return plan
    began = time.time()
    for command in ([kiln, "calibrate", model, "--data", calibration_data, "--samples", str(samples), "-o", calibration],
                    [kiln, "build", model, "--precision", "int8", "--calibration", calibration, "-o", plan, "--no-verify"]):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {(done.stderr or done.stdout)[-1500:]}")
    print(f"   int8 plan {plan}: calibrated on {samples} utterances of {calibration_data}, built in "
          f"{time.time() - began:.0f} s", flush=True)
    return plan


def kiln_description(kiln: str) -> str:
    """Which kiln binary was measured: its path and when it was built (it may predate HEAD)."""
    if not os.path.exists(kiln):
        return f"{kiln} (missing)"
    built = datetime.datetime.fromtimestamp(os.path.getmtime(kiln), datetime.timezone.utc)
    return f"{kiln} built {built:%Y-%m-%d %H:%M} UTC"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: short durations, few points")
    parser.add_argument("--model-shape", choices=sorted(SHAPES), default="minilm",
                        help="minilm: the shipped snips model, SLA 100 ms; bert-base: bench/.models/bert-base-snips, SLA 300 ms")
    parser.add_argument("--model-dir", help="model folder (default: the shape's)")
    parser.add_argument("--kiln", default=os.path.join(REPO, ".build", "release", "kiln"))
    parser.add_argument("--texts", default=os.path.join(REPO, "..", "shared", "data", "snips", "test", "seq.in"))
    parser.add_argument("--calibration-data", default=os.path.join(REPO, "..", "shared", "data", "snips", "train"),
                        help="utterances `kiln calibrate` uses for the int8 row (the snips train split)")
    parser.add_argument("--calibration-samples", type=int, help="utterances for kiln calibrate (default 1000, quick 200)")
    parser.add_argument("--sla-ms", type=float, help="default: the shape's (100 minilm, 300 bert-base)")
    parser.add_argument("--duration", type=float, help="seconds per load point (default 10, quick 4)")
    parser.add_argument("--generator", choices=["auto", "kiln", "python"], default="auto")
    parser.add_argument("--peers", default="torchserve,torchserve-batching,mlserver,kiln,kiln-int8,kiln-1x2",
                        help="comma-separated subset; torchserve runs first (its max sets the fixed load)")
    parser.add_argument("--port", type=int, default=18081)
    parser.add_argument("--kiln-max-batch", type=int, default=32, help="kiln serve --max-batch-size")
    parser.add_argument("--kiln-batch-tokens-per-thread", type=int,
                        help="kiln serve --max-batch-tokens per kernel thread (default: the shape's, 96 minilm, 40 bert-base; 0 = none)")
    parser.add_argument("--out", help="results file (default bench/results/<date>-servers[-bert-base].md)")
    args = parser.parse_args()
    model_dir, default_sla, shape_words, default_tokens = SHAPES[args.model_shape]
    tokens = default_tokens if args.kiln_batch_tokens_per_thread is None else args.kiln_batch_tokens_per_thread
    model_dir = args.model_dir or model_dir
    sla_ms = args.sla_ms or default_sla

    duration = args.duration or (4 if args.quick else 10)
    plan = {"duration": duration, "concurrency": [16] if args.quick else [4, 16, 64],
            "fractions": [0.5, 0.9] if args.quick else [0.1, 0.25, 0.5, 0.7, 0.85, 1.0, 1.15]}
    load = LoadGenerator(args.kiln, args.texts, sla_ms, 1 if args.quick else 2, args.generator)
    log_dir = os.path.join(peers.WORK, "logs")
    wanted = args.peers.split(",")
    factories, skipped = [], []

    def kiln(**options):
        return peers.kiln_peer(args.kiln, model_dir, args.port, max_batch=args.kiln_max_batch,
                               tokens_per_thread=tokens or None, **options)
    if "torchserve" in wanted:
        factories.append(("torchserve", lambda: peers.torchserve_peer(model_dir, args.port)))
    if "torchserve-batching" in wanted:
        factories.append(("torchserve-batching", lambda: peers.torchserve_peer(model_dir, args.port, batch_size=8)))
    if "mlserver" in wanted:
        factories.append(("mlserver", lambda: peers.mlserver_peer(model_dir, args.port)))
    if "kiln" in wanted:
        factories.append(("kiln-fp32", lambda: kiln()))
    if "kiln-int8" in wanted:
        factories.append(("kiln-int8", lambda: kiln(
            precision="int8", plan=int8_plan(args.kiln, model_dir, args.calibration_data, args.calibration_samples or (200 if args.quick else 1000)))))
    if "kiln" in wanted or "kiln-bf16" in wanted:
        if cpu_has_bf16():
            factories.append(("kiln-bf16", lambda: kiln(precision="bf16")))
        else:
            skipped.append(("Kiln bf16", "not run: this CPU has no AVX512_BF16 or AMX (kiln build/serve refuse bf16 "
                                         "plans on it; /proc/cpuinfo flags checked)"))
    if "kiln-1x2" in wanted:
        factories.append(("kiln-fp32-1x2", lambda: kiln(instances=1)))

    started = datetime.datetime.now(datetime.timezone.utc)
    # The code measured is the checkout at the start (others may commit while it runs).
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "bench"], capture_output=True, text=True, cwd=REPO).stdout.strip()
    commit += " (bench/ modified)" if dirty else ""
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
    suffix = ("" if args.model_shape == "minilm" else f"-{args.model_shape}") + ("-quick" if args.quick else "")
    out = args.out or os.path.join(RESULTS, f"{started:%Y-%m-%d}-servers{suffix}.md")
    text = report.write(results, failures, out, {
        "command": " ".join(["bench/servers/run_all.py"] + sys.argv[1:]), "started": started.isoformat(timespec="seconds"),
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "generator": load.name, "sla_ms": sla_ms, "duration": duration, "plan": plan, "fixed_rate": fixed_rate,
        "model_dir": os.path.relpath(model_dir, REPO), "shape": shape_words, "threads": peers.THREADS,
        "kiln": kiln_description(args.kiln), "skipped": skipped, "commit": commit})
    print(text)
    print(f"wrote {out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

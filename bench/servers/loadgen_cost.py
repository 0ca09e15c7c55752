"""Is the load generator itself a bottleneck? `kiln bench` (and loadgen.py) against a trivial endpoint.

  bench/servers/.venv-runner/bin/python bench/servers/loadgen_cost.py --kiln .build/release/kiln \
      [--rates 200,500,1000,2000] [--concurrency 1,16] [--duration 5] [--stall-ms 100]

A trivial HTTP server (asyncio, one process, a fixed JSON answer per POST, keep-alive) stands in for the
model server, so what is measured is the generator: its CPU time per request (user+sys of the generator
process from wait4's rusage, divided by the requests it finished, warm-up included), the share of one
core it used, whether it achieved the offered rate, and the latency it saw (the trivial server's own
cost is ~0.1 ms). On the 2 shared cores, every CPU-ms the generator spends per request is taken from the
server under test at that rate: the report of bench/run_all quotes this figure.

Coordinated omission check (--stall-ms S): the server stops answering for S ms once a second (all
connections). An open-loop generator that times requests from their scheduled send must then report
~S/1000 of requests late by up to S ms (P99 near S when S >= 10 ms at any rate); a generator that
waits for answers before sending (closed loop, or a coordinated one) sees only the few requests in flight.

Pattern: one generator run per (generator, mode, load) point, in a subprocess; the server runs in a
child process so its CPU is not counted against the generator.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
ANSWER = b'{"intent":{"name":"x","confidence":1.0},"slots":[]}'


class Trivial(asyncio.Protocol):
    """HTTP/1.1 keep-alive: answers every complete request (headers + Content-Length body) at once,
    unless the server is in a stall window (then the answer waits for its end)."""
    stall_until = 0.0

    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""

    def data_received(self, data):
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            length = 0
            for line in self.buffer[:head_end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < head_end + 4 + length:
                return
            self.buffer = self.buffer[head_end + 4 + length:]
            reply = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(ANSWER)).encode() + b"\r\n\r\n" + ANSWER)
            delay = Trivial.stall_until - time.monotonic()
            if delay > 0:
                asyncio.get_running_loop().call_later(delay, self.transport.write, reply)
            else:
                self.transport.write(reply)


def serve(port: int, stall_ms: float) -> None:
    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Trivial, "127.0.0.1", port, backlog=1024)

        async def stalls():
            while stall_ms > 0:
                await asyncio.sleep(1.0)
                Trivial.stall_until = time.monotonic() + stall_ms / 1000
        asyncio.ensure_future(stalls())
        async with server:
            await server.serve_forever()
    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_generator(command: list[str]) -> tuple[dict, float]:
    """Runs one generator process; returns its JSON run and its CPU seconds (user + sys, from wait4)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} -> {process.returncode}: {process.stderr.read().decode()[-1000:]}")
    return command, usage.ru_utime + usage.ru_stime


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kiln", default=os.path.join(REPO, ".build", "release", "kiln"))
    parser.add_argument("--rates", default="200,500,1000,2000")
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--stall-ms", type=float, default=0, help="server stalls this long once a second (CO check)")
    parser.add_argument("--generators", default="kiln,python", help="kiln (kiln bench), python (loadgen.py)")
    parser.add_argument("--texts", default=os.path.join(REPO, "..", "shared", "data", "snips", "test", "seq.in"))
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(args.stall_ms)])
    time.sleep(1.0)
    bases = {"kiln": [args.kiln, "bench"], "python": [sys.executable, os.path.join(HERE, "loadgen.py")]}
    loads = [("closed", int(c)) for c in args.concurrency.split(",") if c] + \
            [("open", float(r)) for r in args.rates.split(",") if r]
    print(f"trivial endpoint http://127.0.0.1:{port} (stall {args.stall_ms:g} ms/s); load "
          f"{' '.join(open('/proc/loadavg').read().split()[:3])}; {args.duration:g} s + {args.warmup:g} s warm-up per point")
    print("| generator | load | achieved req/s | P50 ms | P99 ms | P99.9 ms | errors | generator CPU ms/request | "
          "generator CPU (% of one core) |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    try:
        for name in args.generators.split(","):
            for mode, value in loads:
                with tempfile.TemporaryDirectory() as scratch:
                    out = os.path.join(scratch, "out.json")
                    command = bases[name] + [f"http://127.0.0.1:{port}/", "--api", "text", "--texts", args.texts,
                                             "--duration", str(args.duration), "--warmup", str(args.warmup),
                                             "--json", out, "--quiet",
                                             "--concurrency" if mode == "closed" else "--rate", f"{value:g}"]
                    began = time.time()
                    _, cpu = run_generator(command)
                    wall = time.time() - began
                    run = json.load(open(out))["runs"][0]
                # Requests over warm-up + measured window: the CPU covers both.
                finished = run.get("succeeded", run.get("requests", 0) - run["errors"]) + run["errors"]
                total = finished * (args.duration + args.warmup) / args.duration
                lat = run["latency_ms"]
                row = {"generator": name, "mode": mode, "load": value, "throughput_rps": run["throughput_rps"],
                       "p50": lat["p50"], "p99": lat["p99"], "p999": lat["p999"], "errors": run["errors"],
                       "cpu_ms_per_request": 1000 * cpu / max(1, total), "cpu_share": 100 * cpu / wall}
                rows.append(row)
                label = f"closed, {value} clients" if mode == "closed" else f"open, {value:g} req/s offered"
                print(f"| {name} | {label} | {row['throughput_rps']:.0f} | {row['p50']:.2f} | {row['p99']:.2f} | "
                      f"{row['p999']:.2f} | {row['errors']} | {row['cpu_ms_per_request']:.3f} | {row['cpu_share']:.0f}% |",
                      flush=True)
    finally:
        server.terminate()
        server.wait()
    print(f"load after: {' '.join(open('/proc/loadavg').read().split()[:3])}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), float(sys.argv[3]))
        sys.exit(0)
    sys.exit(main())

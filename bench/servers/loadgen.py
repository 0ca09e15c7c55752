"""A small Python load generator with `kiln bench`'s command line and JSON output, for two uses:
run_all falls back to it when the kiln binary has no `bench` subcommand, and it can keep every
latency (--raw-latencies) for the latency CDF plot.

  python loadgen.py URL --api kiln|v2|text [--model NAME] [--texts FILE] (--concurrency 1,4 | --rate 10,20)
                    [--duration 20] [--warmup 3] [--sla-ms 100] [--json OUT.json] [--raw-latencies]

Closed loop: N clients, each sends its next request when the previous answer arrives. Open loop:
Poisson arrivals at R requests/s, latency measured from the scheduled send time (so a server that
falls behind is charged for the queueing it causes, not hidden by coordinated omission).
Python's own overhead caps what it can offer (a few hundred requests/s on one core): results say
which generator measured them.
"""
import argparse
import asyncio
import json
import os
import random
import sys
import time


def request_for(api, url, model, text):
    if api == "kiln":
        return url.rstrip("/") + "/v1/parse", {"text": text}
    if api == "v2":
        body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}]}
        return f"{url.rstrip('/')}/v2/models/{model}/infer", body
    return url, {"text": text}


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def summarize(mode, concurrency, rate, latencies, errors, elapsed, sla_ms, keep_raw):
    ordered = sorted(latencies)
    total = len(latencies) + errors
    run = {"mode": mode, "concurrency": concurrency, "rate": rate, "requests": total, "errors": errors,
           "throughput_rps": len(latencies) / elapsed if elapsed > 0 else 0.0,
           "latency_ms": {"p50": percentile(ordered, 0.5), "p90": percentile(ordered, 0.9),
                          "p99": percentile(ordered, 0.99), "p999": percentile(ordered, 0.999),
                          "max": ordered[-1] if ordered else None,
                          "mean": sum(ordered) / len(ordered) if ordered else None},
           "sla_ms": sla_ms,
           "sla_attainment": sum(1 for v in latencies if v <= sla_ms) / total if total else 0.0,
           "generator": "bench/servers/loadgen.py"}
    if keep_raw:
        run["latencies_ms"] = ordered
    return run


async def one(session, api, url, model, text):
    target, body = request_for(api, url, model, text)
    async with session.post(target, json=body) as reply:
        await reply.read()
        return reply.status == 200


async def closed_loop(session, args, texts, concurrency, duration):
    latencies, errors = [], 0
    stop_at = time.perf_counter() + duration

    async def client(seed):
        nonlocal errors
        rng = random.Random(seed)
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            try:
                ok = await one(session, args.api, args.url, args.model, rng.choice(texts))
            except Exception:  # noqa: BLE001 - a failed request is an error, not a crash
                ok = False
            if ok:
                latencies.append((time.perf_counter() - start) * 1000)
            else:
                errors += 1

    began = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    return latencies, errors, time.perf_counter() - began


async def open_loop(session, args, texts, rate, duration):
    latencies, errors, tasks = [], 0, []
    rng = random.Random(rate)
    began = time.perf_counter()

    async def send(scheduled, text):
        nonlocal errors
        try:
            ok = await one(session, args.api, args.url, args.model, text)
        except Exception:  # noqa: BLE001
            ok = False
        if ok:
            latencies.append((time.perf_counter() - scheduled) * 1000)
        else:
            errors += 1

    scheduled = began
    while scheduled - began < duration:
        scheduled += rng.expovariate(rate)
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(scheduled, rng.choice(texts))))
    await asyncio.gather(*tasks)
    return latencies, errors, time.perf_counter() - began


async def run(args):
    import aiohttp  # here, so the summary code is importable (and testable) without it

    texts = [line.strip() for line in open(args.texts, encoding="utf-8") if line.strip()]
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=60)
    runs = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        points = [("closed", int(c)) for c in args.concurrency.split(",")] if args.concurrency else \
                 [("open", float(r)) for r in args.rate.split(",")]
        for mode, value in points:
            if args.warmup > 0:
                if mode == "closed":
                    await closed_loop(session, args, texts, value, args.warmup)
                else:
                    await open_loop(session, args, texts, value, args.warmup)
            if mode == "closed":
                latencies, errors, elapsed = await closed_loop(session, args, texts, value, args.duration)
                result = summarize(mode, value, None, latencies, errors, elapsed, args.sla_ms, args.raw_latencies)
            else:
                latencies, errors, elapsed = await open_loop(session, args, texts, value, args.duration)
                result = summarize(mode, None, value, latencies, errors, elapsed, args.sla_ms, args.raw_latencies)
            runs.append(result)
            if not args.quiet:
                lat = result["latency_ms"]
                print(f"{mode} {value}: {result['throughput_rps']:.1f} req/s, p50 {lat['p50']}, p99 {lat['p99']}, "
                      f"errors {errors}", file=sys.stderr)
    return {"runs": runs}


def main():
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--api", choices=["kiln", "v2", "text"], default="kiln")
    parser.add_argument("--model")
    parser.add_argument("--texts", default=os.path.join(repo, "..", "shared", "data", "snips", "test", "seq.in"))
    parser.add_argument("--concurrency")
    parser.add_argument("--rate")
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--sla-ms", type=float, default=100)
    parser.add_argument("--json")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--raw-latencies", action="store_true", help="keep every latency in the JSON (for CDFs)")
    args = parser.parse_args()
    if not args.concurrency and not args.rate:
        args.concurrency = "1,4,16"
    report = asyncio.run(run(args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f)
    else:
        print(json.dumps(report))


if __name__ == "__main__":
    main()

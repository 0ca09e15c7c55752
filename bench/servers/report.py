"""The report of bench/run_all: a markdown table with the issue-7 targets checked against what was
measured in this run, a JSON summary, and two PNG plots (throughput vs P99 per server; latency CDF
of every server at the same fixed load). Ratios are same-run ratios: single absolute numbers on this
shared machine prove nothing.
"""
from __future__ import annotations

import json
import os
import subprocess

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _fmt(value, digits=1):
    return "—" if value is None else f"{value:.{digits}f}"


def _by_key(results):
    return {r["key"]: r for r in results}


def targets(results, sla_ms, kiln_key="kiln-fp32"):
    """Issue 7's targets for one Kiln configuration, each as (target, measured, met)."""
    found = _by_key(results)
    kiln, torchserve = found.get(kiln_key), found.get("torchserve")
    if not kiln:
        return []
    rows = []
    others = [r for r in results if not r["key"].startswith("kiln") and r["key"] != "torchserve"]
    def at_sla_ratio(target, peer, wanted):
        ours, theirs = kiln["throughput_at_sla"], peer["throughput_at_sla"]
        if theirs > 0:
            rows.append((target, f"{ours / theirs:.2f}x ({ours:.1f} vs {theirs:.1f} req/s)", ours / theirs >= wanted))
        elif ours > 0:
            rows.append((target, f"Kiln {ours:.1f} req/s; {peer['name']} met the SLA at no load point (ratio unbounded)", True))
        else:
            rows.append((target, "neither met the SLA at any load point: undefined", None))

    if torchserve:
        at_sla_ratio(f"throughput at P99 <= {sla_ms:g} ms >= 3.2x TorchServe eager", torchserve, 3.2)
    if others:
        best = max(others, key=lambda r: (r["throughput_at_sla"], r["capacity_rps"]))
        at_sla_ratio(f">= 1.5x the best other peer ({best['name']})", best, 1.5)
    if torchserve:
        theirs, ours = torchserve["fixed"]["latency_ms"]["p99"], kiln["fixed"]["latency_ms"]["p99"]
        if theirs and ours:
            ratio = ours / theirs
            rows.append(("P99 at TorchServe's max load <= 0.4x TorchServe's", f"{ratio:.2f}x ({ours:.1f} vs {theirs:.1f} ms)",
                         ratio <= 0.4))
        ratio = kiln["peak_rss_mb"] / torchserve["peak_rss_mb"]
        rows.append(("peak RSS <= 0.6x TorchServe's", f"{ratio:.2f}x ({kiln['peak_rss_mb']:.0f} vs "
                     f"{torchserve['peak_rss_mb']:.0f} MB)", ratio <= 0.6))
    for field, which in (("at_80pct", "throughput at SLA"), ("at_80pct_capacity", "closed-loop max")):
        if kiln.get(field):
            attainment = kiln[field]["sla_attainment"] * 100
            rows.append((f"SLA attainment >= 99.6% at 80% of Kiln's max ({which})",
                         f"{attainment:.2f}% at {kiln[field]['rate']:.0f} req/s", attainment >= 99.6))
    return rows


def plot_curves(results, sla_ms, path, shape="snips"):
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for result in results:
        # In offered-rate order: on a noisy machine achieved throughput is not monotonic in the offer.
        points = [(p["throughput_rps"], p["latency_ms"]["p99"]) for p in sorted(result["sweep"], key=lambda p: p["rate"])
                  if p["latency_ms"]["p99"]]
        axes.plot([x for x, _ in points], [y for _, y in points], marker="o", label=result["name"])
    axes.axhline(sla_ms, color="grey", linestyle="--", linewidth=1, label=f"SLA {sla_ms:g} ms")
    axes.set_yscale("log")
    axes.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes.set_xlabel("throughput (requests/s, open-loop Poisson load)")
    axes.set_ylabel("P99 latency (ms)")
    axes.set_title(f"Throughput vs P99, {shape.split(' (')[0]}, 2 threads per server", fontsize=9)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_cdf(results, fixed_rate, path):
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for result in results:
        latencies = result.get("cdf") or []
        if latencies:
            n = len(latencies)
            axes.plot(latencies, [(i + 1) / n for i in range(n)], label=f"{result['name']} (n={n})")
    axes.set_xscale("log")
    axes.set_xlabel("latency (ms)")
    axes.set_ylabel("share of requests")
    rate = f"{fixed_rate:.0f} req/s, TorchServe eager's max" if fixed_rate else "each server's own max"
    axes.set_title(f"Latency CDF at a fixed load ({rate})")
    axes.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def table(results, sla_ms):
    baseline = _by_key(results).get("torchserve")
    lines = [f"| server | max req/s (closed loop) | max vs TorchServe eager | req/s at P99 <= {sla_ms:g} ms | "
             "vs TorchServe eager | P50 / P99 at fixed load (ms) | SLA attainment at fixed load | peak RSS (MB) | "
             "CPU util (% of 2 cores) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        ratio, max_ratio = "—", "—"
        if baseline and baseline["throughput_at_sla"] > 0:
            ratio = f"{r['throughput_at_sla'] / baseline['throughput_at_sla']:.2f}x"
        if baseline and baseline["capacity_rps"] > 0:
            max_ratio = f"{r['capacity_rps'] / baseline['capacity_rps']:.2f}x"
        fixed = r["fixed"]
        lines.append(f"| {r['name']} | {r['capacity_rps']:.1f} | {max_ratio} | {r['throughput_at_sla']:.1f} | {ratio} | "
                     f"{_fmt(fixed['latency_ms']['p50'])} / {_fmt(fixed['latency_ms']['p99'])} | "
                     f"{fixed['sla_attainment'] * 100:.2f}% | {r['peak_rss_mb']:.0f} | {_fmt(r.get('cpu_util'), 0)} |")
    return "\n".join(lines)


def relaxed_table(results, sla_ms):
    """Throughput at looser P99 bounds, from the same sweep: on an overloaded machine nobody may meet
    the real SLA, and the ranking at looser bounds still says something."""
    bounds = [sla_ms, 2.5 * sla_ms, 5 * sla_ms, 10 * sla_ms]
    lines = ["| server | " + " | ".join(f"req/s at P99 <= {b:g} ms" for b in bounds) + " |",
             "|---|" + "---|" * len(bounds)]
    for r in results:
        lines.append(f"| {r['name']} | " + " | ".join(f"{throughput_at(r['sweep'], b):.1f}" for b in bounds) + " |")
    return "\n".join(lines)


def throughput_at(points, bound):
    good = [p["throughput_rps"] for p in points if p["errors"] == 0 and p["latency_ms"]["p99"] is not None
            and p["latency_ms"]["p99"] <= bound]
    return max(good, default=0.0)


def sweep_table(results):
    lines = ["| server | offered req/s | achieved req/s | P50 | P90 | P99 | P99.9 | errors | SLA attainment |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for p in r["closed"] + r["sweep"]:
            offered = f"{p['rate']:.1f}" if p.get("rate") else f"closed, {p['concurrency']} clients"
            lat = p["latency_ms"]
            lines.append(f"| {r['name']} | {offered} | {p['throughput_rps']:.1f} | {_fmt(lat['p50'])} | {_fmt(lat['p90'])} | "
                         f"{_fmt(lat['p99'])} | {_fmt(lat['p999'])} | {p['errors']} | {p['sla_attainment'] * 100:.2f}% |")
    return "\n".join(lines)


def write(results, failures, out, meta):
    base = out[:-3] if out.endswith(".md") else out
    os.makedirs(os.path.dirname(out), exist_ok=True)
    curves, cdf = base + "-curves.png", base + "-cdf.png"
    if results:
        plot_curves(results, meta["sla_ms"], curves, meta.get("shape", "snips"))
        plot_cdf(results, meta["fixed_rate"], cdf)
    commit = meta.get("commit") or subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    kiln_results = [r for r in results if r["key"].startswith("kiln")]
    parts = [
        f"# Server-level comparison ({meta['started']} to {meta.get('finished', '?')})", "",
        f"Command: `{meta['command']}` at commit {commit}; kiln binary {meta.get('kiln', '?')}. Model `{meta['model_dir']}` ({meta.get('shape', 'snips, MiniLM-shaped JointBERT')}). "
        f"Load generator: {meta['generator']} (same machine, same 2 cores as the server). "
        f"{meta['duration']:g} s per load point; capacity from closed loop at {meta['plan']['concurrency']} clients; "
        f"open-loop Poisson sweep at {meta['plan']['fractions']} x capacity. Fixed load: "
        f"{_fmt(meta['fixed_rate'])} req/s (TorchServe eager's max). Thread budget: {meta['threads']} per server. "
        f"SLA {meta['sla_ms']:g} ms.", "",
        f"Machine: {os.cpu_count()} cores, the load generator on the same cores; load average (1 min) "
        "before/after each server (above ~2.5 on 2 cores, something else was running): " + ", ".join(f"{r['name']} {r['load_before'][0]:.1f}/{r['load_after'][0]:.1f}" for r in results)
        + ". Treat absolute numbers as noisy; ratios are from this one run.", "",
        table(results, meta["sla_ms"]), "",
    ]
    for kiln in kiln_results:
        rows = targets(results, meta["sla_ms"], kiln["key"])
        if not rows:
            continue
        parts += [f"## Issue 7 targets: {kiln['name']}", "", "| target | measured | met |", "|---|---|---|"]
        parts += [f"| {t} | {m} | {'n/a' if ok is None else 'yes' if ok else 'NO'} |" for t, m, ok in rows]
        parts.append("")
    if failures or meta.get("skipped"):
        parts += ["## Servers and steps that did not run", ""] + [f"- {k}: FAILED: {e}" for k, e in failures]
        parts += [f"- {k}: {why}" for k, why in meta.get("skipped", [])] + [""]
    split = [r for r in kiln_results if r.get("fixed_breakdown") or r.get("at_80pct_breakdown")]
    if split:
        parts += ["## Where Kiln's time goes (kiln serve's /metrics over the same runs)", "",
                  "Means per request. Client mean minus server time = HTTP, the load generator and scheduling on the "
                  "shared cores; server time minus queue and engine = tokenization, decoding, hand-offs. The server-side means "
                  "also cover the run's warm-up seconds (same load).", "",
                  "| server | run | client mean (ms) | server time (ms) | queue wait (ms) | engine time of its batch (ms) | "
                  "rows / tokens per engine call |", "|---|---|---|---|---|---|---|"]
        for r in split:
            for run, field in ((r.get("fixed"), "fixed_breakdown"), (r.get("at_80pct"), "at_80pct_breakdown")):
                b = r.get(field)
                if not b or not run:
                    continue
                label = "fixed load" if field == "fixed_breakdown" else "80% of its throughput at SLA"
                parts.append(f"| {r['name']} | {label}, {run['rate']:.0f} req/s | {_fmt(run['latency_ms'].get('mean'))} | "
                             f"{_fmt(b['server_ms'])} | {_fmt(b['queue_ms'])} | {_fmt(b['compute_ms'])} | "
                             f"{_fmt(b['rows_per_call'])} / {_fmt(b['tokens_per_call'], 0)} |")
        parts.append("")
    parts += ["Second load generator: Triton's perf_analyzer drives the v2-capable servers after this run "
              "(bench/run_all, bench/servers/perf_analyzer_sweep): bench/results/perf-analyzer-*.md.", ""]
    if results:
        parts += ["## Throughput at looser P99 bounds (same open-loop sweep)", "", relaxed_table(results, meta["sla_ms"]), ""]
        parts += [f"![throughput vs P99]({os.path.basename(curves)})", "", f"![latency CDF]({os.path.basename(cdf)})", "",
                  "## Every load point", "", sweep_table(results), ""]
    text = "\n".join(parts)
    with open(out, "w") as f:
        f.write(text)
    summary = [{k: v for k, v in r.items() if k != "cdf"} for r in results]
    with open(base + ".json", "w") as f:
        json.dump({"meta": meta, "results": summary, "failures": failures}, f, indent=1)
    return text

"""Times GPU work captured once in a CUDA graph (the GPU benchmark scripts' shared helper).

`graph_microseconds(run, replays)` runs `run(stream)` once eagerly (compiles, warms caches), captures
a second call in a CUDA graph on a side stream, and returns the median over 5 batches of
`replays / 5` graph replays, in microseconds per replay: launch gaps inside the graph count, host
launch overhead does not, as in a Kiln engine's captured forward.
"""
import numpy as np
import torch


def graph_microseconds(run, replays=300):
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        run(stream)
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            run(stream)
    graph.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    per_batch = max(1, replays // 5)
    times = []
    for _ in range(5):
        start.record()
        for _ in range(per_batch):
            graph.replay()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / per_batch)
    return float(np.median(times)) * 1000

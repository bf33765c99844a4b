"""How an LLM uses every GPU of an instance: tensor parallelism, replicas per node, nodes for the load.

A node group never pays for a GPU it leaves idle: on an instance of G GPUs an LLM runs G / tp
replicas of tp GPUs each (tp = G is tensor parallelism across all of them). Of the layouts that fit
in memory, the one needing the fewest nodes for the replicas the service needs wins (ties: the most
serving capacity per node). A pinned `gpu` or `gpuCount` may force a layout with more replicas than
needed: then GPUs would be paid for and idle, and the pin is refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    """One way to run an LLM on an instance type: tp GPUs per replica, per_node replicas on each node."""

    tensor_parallel: int
    per_node: int
    replicas: int  # replicas the load (or the configured minimum) needs on this hardware
    capacity: float = 0.0  # requests/s one replica serves (0: no load configured)

    @property
    def nodes(self) -> int:
        return math.ceil(self.replicas / self.per_node)

    @property
    def idle_replicas(self) -> int:
        """Replica slots that would run without being needed (with a pin, GPUs paid for and idle)."""
        return self.nodes * self.per_node - self.replicas


def divides(gpus: int, tensor_parallel: int) -> bool:
    """tp GPUs per replica use every GPU of the instance only when tp divides its GPU count."""
    return tensor_parallel <= gpus and gpus % tensor_parallel == 0


def best_layout(layouts: Sequence[Layout], pinned: bool) -> Layout | None:
    """The layout with the fewest nodes (then the most capacity per node, then the smaller tp); with a pin,
    only layouts without idle replicas count."""
    allowed = [layout for layout in layouts if not (pinned and layout.idle_replicas)]
    return min(allowed, key=lambda layout: (layout.nodes, -layout.capacity * layout.per_node, layout.tensor_parallel),
               default=None)


def idle_reason(layouts: Sequence[Layout], gpus: int, gpu: str) -> str:
    """Why every layout of a pinned service would pay for idle GPUs on an instance of `gpus` GPUs."""
    layout = min(layouts, key=lambda candidate: candidate.idle_replicas)
    idle = layout.idle_replicas * layout.tensor_parallel
    return (f"{gpus}x {gpu}: {layout.nodes * layout.per_node} replicas of {layout.tensor_parallel} GPUs for "
            f"{layout.replicas} needed, {idle} GPUs idle")  # ends as placement.IDLE_GPUS says


def layouts(gpus: int, sizes: Sequence[int], fits: Callable[[int], bool],
            replicas_for: Callable[[int], tuple[int, float]]) -> list[Layout]:
    """Every tensor-parallel size that uses all `gpus` GPUs and fits, with the replicas it needs.

    `replicas_for(tp)` gives (replicas needed, requests/s per replica) at that size.
    """
    return [Layout(tp, gpus // tp, *replicas_for(tp)) for tp in sizes if divides(gpus, tp) and fits(tp)]

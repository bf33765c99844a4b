"""The node a stack keeps while asleep where its cloud's load balancer cannot answer by itself (data/asleep_nodes.csv:
DigitalOcean's only forwards): its size, image and price, and what it costs over a schedule's asleep hours."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from infra.data_files import data_rows


@dataclass(frozen=True)
class AsleepNode:
    cloud: str
    instance_type: str
    image: str
    vcpus: int
    memory_gb: float
    hourly_usd: float
    source: str
    as_of: str


@functools.cache
def asleep_nodes() -> dict[str, AsleepNode]:
    return {row["cloud"]: AsleepNode(row["cloud"], row["instance_type"], row["image"], int(row["vcpus"]), float(row["memory_gb"]),
                                     float(row["hourly_usd"]), row["source"], row["as_of"]) for row in data_rows("asleep_nodes.csv")}


def asleep_node(cloud: str) -> AsleepNode | None:
    """The cloud's asleep node; None where the load balancer itself answers while asleep (AWS, Alibaba Cloud)."""
    return asleep_nodes().get(cloud)

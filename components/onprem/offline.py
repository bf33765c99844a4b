"""Plausible answers for the offline plan of an on-prem stack (no SSH): the id a HostFiles create returns."""

from __future__ import annotations

INVOKES: dict = {}


def _host_files(name: str, inputs: dict) -> dict:
    host = inputs["host"]
    label = host["address"] if int(host["port"]) == 22 else f"[{host['address']}]:{host['port']}"
    return {"id": f"{label}/{inputs['kind']}", "before": {"nginx": "absent", "docker.io": "absent"}}


OUTPUTS = {"pulumi-python:dynamic/onprem:HostFiles": _host_files}

"""No secret store on the team's hosts: the API key and HF token are written 0600 over SSH (the node tool's
`secrets.env`, read as on DigitalOcean) and stay Pulumi secrets in state (components.base.inline_delivery)."""

from __future__ import annotations

from components.base import inline_delivery

__all__ = ["inline_delivery"]

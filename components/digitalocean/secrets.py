"""DigitalOcean has no secret store: the API key and HF token travel in the droplet's user-data, which
stays a Pulumi secret in state (components.base.inline_delivery)."""

from __future__ import annotations

from components.base import inline_delivery

__all__ = ["inline_delivery"]

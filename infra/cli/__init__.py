"""The drivers of the core: the command line, the offline (mock-engine) run of the Pulumi program and
the Automation API environments. They import `components`; the core in `infra/` imports nothing from here."""

from infra.cli.main import app, main

__all__ = ["app", "main"]

"""Cloud-agnostic core: config, catalog, model sizing, placement, cost preview, offline plan, CLI.

Nothing here creates a Pulumi resource, and `cost` never imports a cloud SDK.
"""

"""Pulumi ComponentResources: one package per cloud behind the interface in `components.base`."""

"""cloud-init rendering: a node group of the plan becomes `#cloud-config` user-data."""

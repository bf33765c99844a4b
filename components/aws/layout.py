"""Names and tags shared by the AWS components: pure helpers (no Pulumi resources, no SDK)."""

from __future__ import annotations

import re

from infra.plan import DeploymentPlan

# Autonamed AWS resources get "-" plus 7 random characters; ALB and target group names allow 32 in all.
MAX_LB_LOGICAL_NAME = 24


def short_name(*parts: str, limit: int = MAX_LB_LOGICAL_NAME) -> str:
    """Letters, digits and '-' only (what ALB / target group names allow), cut to `limit`."""
    text = re.sub(r"[^A-Za-z0-9-]+", "-", "-".join(parts))
    return text[:limit].strip("-")


def stack_tags(plan: DeploymentPlan) -> dict[str, str]:
    """Default tags on every resource, so a stack's resources can be found (and billed) together."""
    return {"llm-deploy:stack": plan.stack, "managed-by": "pulumi"}


def parameter_prefix(plan: DeploymentPlan) -> str:
    """Where the stack's secrets live in SSM Parameter Store."""
    return f"/llm-deploy/{plan.stack}"

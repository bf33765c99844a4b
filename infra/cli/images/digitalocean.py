"""DigitalOcean's newest base image per node group: `GET /v2/images/<slug>` for the group's size, its numeric id.

A slug (gpu-h100x1-base, ubuntu-22-04-x64) always names the newest image of its kind; the id names one image
for good, so a pin of it keeps droplets on that image until the next `llm-deploy images --update`.
"""

from __future__ import annotations

from infra.cli.refresh import RefreshError
from infra.errors import LlmDeployError
from infra.plan import DeploymentPlan


def latest(plan: DeploymentPlan) -> dict[str, str]:
    """Node group → the id of the image its size's slug names now, available in the plan's region.

    Raises MissingCredentials without DIGITALOCEAN_TOKEN, LlmDeployError when the API refuses or the image
    is not usable in the region."""
    from components.digitalocean.layout import image_slug
    from infra.cli.refresh import digitalocean as do

    token = do.api_token()
    base = do.api_base()
    found: dict[str, dict] = {}
    ids = {}
    for group in plan.node_groups:
        slug = image_slug(group.offer)
        if slug not in found:
            try:
                found[slug] = do.get(f"{base}/v2/images/{slug}", token)["image"]
            except RefreshError as error:
                raise LlmDeployError(str(error)) from None
        image = found[slug]
        if image.get("status", "available") != "available":
            raise LlmDeployError(f"digitalocean: image {slug} (id {image['id']}) is {image['status']}, not available")
        if plan.region not in image.get("regions", ()):
            where = ", ".join(sorted(image.get("regions", ()))) or "no region"
            raise LlmDeployError(f"digitalocean: image {slug} (id {image['id']}) is not in {plan.region} (only {where}); "
                                 f"node group {group.name!r} could not boot it there")
        ids[group.name] = str(image["id"])
    return ids

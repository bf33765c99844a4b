"""AWS image resolver: the AMI each node group's public SSM parameter names today (`llm-deploy images --update`).

The parameters are the ones the components' look-up step reads (data/aws_images.csv, through
components/aws/layout.py): GPU groups the Deep Learning Base OSS Nvidia Driver AMI, CPU groups Canonical's
Ubuntu 22.04. SSM GetParameter in the plan's region, with boto3's credentials (the environment, a profile
or a role; AWS_ENDPOINT_URL points it elsewhere).
"""

from __future__ import annotations

from infra.cli.refresh import RefreshError
from infra.plan import DeploymentPlan


def latest(plan: DeploymentPlan) -> dict[str, str]:
    """Node group → the AMI id its kind's SSM parameter names now. MissingCredentials without credentials;
    RefreshError naming the parameter when SSM refuses or has none."""
    from components.aws.layout import image_parameters  # the look-up step's own parameters
    from infra.cli.refresh.aws import credentialed_session

    session = credentialed_session()
    import botocore.exceptions

    ssm = session.client("ssm", region_name=plan.region)
    parameters = image_parameters()
    found: dict[str, str] = {}
    for group in plan.node_groups:
        name = parameters[group.accelerator].parameter
        try:
            found[group.name] = ssm.get_parameter(Name=name)["Parameter"]["Value"]
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise RefreshError(f"aws: SSM GetParameter {name} in {plan.region}: {error}") from None
    return found

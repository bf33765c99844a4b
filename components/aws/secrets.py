"""SSM SecureString parameters for the stack's secrets, and the node role that may read exactly those."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from bootstrap.delivery import SecretStore
from components.base import StackSecrets
from infra.plan import DeploymentPlan
from infra.service_metrics import METRICS_LOG_RETENTION_DAYS, log_group

from .layout import parameter_prefix


def secret_store(plan: DeploymentPlan) -> SecretStore:
    """Where the nodes find the stack's secrets; the names follow from the plan alone."""
    prefix = parameter_prefix(plan)
    return SecretStore(
        kind="aws-ssm",
        region=plan.region,
        api_key_name=f"{prefix}/api-key",
        hf_token_name=f"{prefix}/hf-token" if plan.has_hf_token else None,
    )


EC2_TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
)


def read_secrets_policy(parameter_arns: Sequence[str], region: str) -> str:
    """Read these parameters and nothing else.

    SecureStrings use the AWS managed key aws/ssm, whose key policy already lets account principals
    decrypt through SSM; the kms:Decrypt statement makes that explicit and narrows it to calls made
    by SSM for these parameters (Parameter Store's encryption context is `PARAMETER_ARN`: the parameter's ARN).
    """
    arns = sorted(parameter_arns)
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ReadStackSecrets",
                    "Effect": "Allow",
                    "Action": ["ssm:GetParameter", "ssm:GetParameters"],
                    "Resource": arns,
                },
                {
                    "Sid": "DecryptStackSecrets",
                    "Effect": "Allow",
                    "Action": "kms:Decrypt",
                    "Resource": "*",
                    "Condition": {
                        "StringEquals": {"kms:ViaService": f"ssm.{region}.amazonaws.com", "kms:EncryptionContext:PARAMETER_ARN": arns}
                    },
                },
            ],
        },
        sort_keys=True,
    )


def publish_metrics_policy(group: str) -> str:
    """The CloudWatch agent's embedded-metric-format logs (bootstrap/cloudwatch.py), into the stack's log group (its
    ARN): CloudWatch makes the metrics from those logs, so the nodes need no cloudwatch:PutMetricData. No
    logs:CreateLogGroup: Pulumi creates the group with its retention, and a node never makes one without."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "PublishServiceMetrics",
                    "Effect": "Allow",
                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    "Resource": [group, f"{group}:*"],
                }
            ],
        },
        sort_keys=True,
    )


class AwsSecrets(pulumi.ComponentResource):
    """`llm-deploy:aws:Secrets`: the parameters, the node role and its instance profile."""

    def __init__(
        self, name: str, plan: DeploymentPlan, secrets: StackSecrets, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("llm-deploy:aws:Secrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        prefix = parameter_prefix(plan)
        values = {"api-key": secrets.api_key, "hf-token": secrets.hf_token}
        self.parameters = {
            key: aws.ssm.Parameter(
                f"{name}-{key}",
                name=f"{prefix}/{key}",
                type="SecureString",
                value=pulumi.Output.secret(value),
                description=f"llm-deploy {plan.stack}: {key}, read by the nodes at boot",
                opts=child,
            )
            for key, value in values.items()
            if value is not None
        }
        self.role = aws.iam.Role(
            f"{name}-node",
            assume_role_policy=EC2_TRUST_POLICY,
            description=f"llm-deploy {plan.stack} nodes: read the stack's secrets",
            opts=child,
        )
        self.policy = aws.iam.RolePolicy(
            f"{name}-read",
            role=self.role.id,
            policy=pulumi.Output.all(*(p.arn for p in self.parameters.values())).apply(
                lambda arns: read_secrets_policy(arns, plan.region)
            ),
            opts=child,
        )
        self.metrics_log_group = aws.cloudwatch.LogGroup(
            f"{name}-metrics", name=log_group(plan.stack), retention_in_days=METRICS_LOG_RETENTION_DAYS, opts=child
        )
        # The nodes' profile waits for this policy, so the group exists before any node's agent writes to it.
        self.metrics_policy = aws.iam.RolePolicy(
            f"{name}-metrics", role=self.role.id, policy=self.metrics_log_group.arn.apply(publish_metrics_policy), opts=child
        )
        self.instance_profile = aws.iam.InstanceProfile(
            f"{name}-node", role=self.role.name, opts=pulumi.ResourceOptions(parent=self, depends_on=[self.policy, self.metrics_policy])
        )
        # Changes when a secret's value does (SSM bumps the version): nodes read secrets only at boot.
        self.versions = pulumi.Output.all(*(p.version for p in self.parameters.values())).apply(
            lambda versions: "-".join(str(v) for v in versions)
        )
        self.store = secret_store(plan)
        self.register_outputs({"instance_profile": self.instance_profile.arn})

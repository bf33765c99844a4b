"""One node group: its target group, a launch template and an autoscaling group that keeps `count` nodes serving."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from bootstrap import encode_user_data
from infra.plan import GATEWAY_PORT, HEALTH_PATH, DeploymentPlan, NodeGroup

from .naming import short_name, stack_tags
from .network import AwsNetwork
from .secrets import AwsSecrets

# A cold node checks the driver, pulls the vLLM/TEI images (~10 GB) and downloads the weights before
# /healthz answers; the ELB health check must not replace it meanwhile.
HEALTH_CHECK_GRACE_S = 1800


@dataclass(frozen=True)
class MachineImage:
    """An AMI published as a public SSM parameter, and the account that must own it."""

    parameter: str
    owner: str
    has_driver: bool


# Deep Learning Base OSS NVIDIA driver AMI: driver, Docker and the NVIDIA Container Toolkit preinstalled.
GPU_IMAGE = MachineImage(
    "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id", "amazon", True
)
# Canonical's Ubuntu 22.04 (099720109477 is Canonical's AWS account); bootstrap installs Docker.
CPU_IMAGE = MachineImage(
    "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id", "099720109477", False
)


def image_for(group: NodeGroup) -> MachineImage:
    return GPU_IMAGE if group.accelerator == "gpu" else CPU_IMAGE


def root_volume(ami: aws.ec2.GetAmiResult, disk_gb: int) -> list[dict]:
    """The AMI's root device, resized to the plan's disk (never below the AMI's own snapshot), gp3, encrypted."""
    snapshot_gb = next(
        (int(m.ebs.get("volume_size") or 0) for m in ami.block_device_mappings if m.device_name == ami.root_device_name), 0
    )
    return [
        {
            "device_name": ami.root_device_name,
            "ebs": {
                "volume_size": max(disk_gb, snapshot_gb),
                "volume_type": "gp3",
                "encrypted": "true",
                "delete_on_termination": "true",
            },
        }
    ]


class AwsNodeGroup(pulumi.ComponentResource):
    """`llm-deploy:aws:NodeGroup`: identical nodes behind one target group, rolled (not stopped) on change."""

    def __init__(
        self,
        group: NodeGroup,
        plan: DeploymentPlan,
        network: AwsNetwork,
        secrets: AwsSecrets,
        user_data: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("llm-deploy:aws:NodeGroup", group.name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        image = image_for(group)
        ami_id = aws.ssm.get_parameter_output(name=image.parameter, opts=invoke).insecure_value
        ami = aws.ec2.get_ami_output(owners=[image.owner], filters=[{"name": "image-id", "values": [ami_id]}], opts=invoke)
        tags = {**stack_tags(plan), "llm-deploy:node-group": group.name, "Name": f"llm-deploy-{plan.stack}-{group.name}"}

        self.target_group = aws.lb.TargetGroup(
            short_name(group.name),
            port=GATEWAY_PORT,
            protocol="HTTP",
            target_type="instance",
            vpc_id=network.vpc.id,
            health_check={
                "path": HEALTH_PATH,
                "port": "traffic-port",
                "protocol": "HTTP",
                "matcher": "200",
                "interval": 15,
                "timeout": 5,
                "healthy_threshold": 2,
                "unhealthy_threshold": 3,
            },
            deregistration_delay=300,  # lets in-flight (streamed) requests finish when a node is rolled
            tags={"llm-deploy:node-group": group.name},
            opts=child,
        )
        self.launch_template = aws.ec2.LaunchTemplate(
            f"{group.name}-lt",
            description=f"llm-deploy {plan.stack}/{group.name}: {', '.join(s.name for s in group.services)}",
            image_id=ami.id,
            instance_type=group.offer.instance_type,
            iam_instance_profile={"arn": secrets.instance_profile.arn},
            vpc_security_group_ids=[network.node_security_group.id],
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",  # IMDSv2 only
                "http_put_response_hop_limit": 2,  # containers sit one hop behind the host
            },
            block_device_mappings=ami.apply(lambda a: root_volume(a, group.disk_gb)),
            user_data=encode_user_data(user_data),
            tag_specifications=[
                # The secrets' versions make a new template version when a key is rotated, and so roll the nodes.
                {"resource_type": "instance", "tags": {**tags, "llm-deploy:secrets-version": secrets.versions}},
                {"resource_type": "volume", "tags": tags},
            ],
            update_default_version=True,
            opts=child,
        )
        self.autoscaling_group = aws.autoscaling.Group(
            f"{group.name}-asg",
            desired_capacity=group.count,
            min_size=group.count,
            max_size=group.count,
            launch_template={"id": self.launch_template.id, "version": self.launch_template.latest_version.apply(str)},
            vpc_zone_identifiers=network.subnet_ids_offering(group.offer.instance_type),
            target_group_arns=[self.target_group.arn],
            health_check_type="ELB",
            health_check_grace_period=HEALTH_CHECK_GRACE_S,
            # A new launch template version (config, image, user-data) replaces nodes one by one, new before old.
            instance_refresh={
                "strategy": "Rolling",
                "preferences": {"min_healthy_percentage": 100, "max_healthy_percentage": 200},
            },
            wait_for_capacity_timeout="15m",
            tags=[{"key": k, "value": v, "propagate_at_launch": False} for k, v in tags.items()],
            opts=child,
        )
        self.register_outputs({"autoscaling_group": self.autoscaling_group.name, "target_group": self.target_group.arn})

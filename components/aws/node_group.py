"""One node group: a target group per service, a launch template and an autoscaling group that keeps `count` nodes serving.

Health: each service's target group checks the gateway's `/healthz/<service>`, so the load balancer
stops sending a service's paths to a node where that service is down, while the node's other
services keep serving. The autoscaling group uses those checks too (`ELB`): every target group must
call a node healthy. So that a restarting service (systemd brings it back) does not get its node
replaced, a service's check counts it failed only after its estimated restart time with a margin
(`BootEstimate.restart_seconds`: restart delay + weights from disk + warm-up); a service that stays
down longer does get its node replaced. The grace after launch is the node group's estimated time to
healthy with a margin (`BootEstimate.grace_seconds`), so a booting node is never judged.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from bootstrap import encode_user_data
from infra.plan import GATEWAY_PORT, DeploymentPlan, NodeGroup, Storage

from .layout import health_check, short_name, stack_tags
from .network import AwsNetwork
from .secrets import AwsSecrets


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


def look_up_ami(image: MachineImage, invoke: pulumi.InvokeOptions) -> aws.ec2.GetAmiResult:
    """The AMI the image's SSM parameter names now, read from its owner (the look-up step calls this)."""
    ami_id = aws.ssm.get_parameter(name=image.parameter, opts=invoke).insecure_value
    return aws.ec2.get_ami(owners=[image.owner], filters=[{"name": "image-id", "values": [ami_id]}], opts=invoke)


def root_volume(ami: aws.ec2.GetAmiResult, disk_gb: int, storage: Storage) -> list[dict]:
    """The AMI's root device, resized to the plan's disk (never below the AMI's own snapshot), gp3 at the
    plan's throughput and IOPS (gp3's default 125 MiB/s would take minutes per 10 GB of images or weights), encrypted."""
    snapshot_gb = next(
        (int(m.ebs.get("volume_size") or 0) for m in ami.block_device_mappings if m.device_name == ami.root_device_name), 0
    )
    ebs = {
        "volume_size": max(disk_gb, snapshot_gb),
        "volume_type": "gp3",
        "encrypted": "true",
        "delete_on_termination": "true",
    }
    if storage.throughput_mibps:
        ebs |= {"throughput": storage.throughput_mibps, "iops": storage.iops}
    return [{"device_name": ami.root_device_name, "ebs": ebs}]


class AwsNodeGroup(pulumi.ComponentResource):
    """`llm-deploy:aws:NodeGroup`: identical nodes behind a target group per service, rolled (not stopped) on change."""

    def __init__(
        self,
        name: str,
        plan: DeploymentPlan,
        group: NodeGroup,
        network: AwsNetwork,
        secrets: AwsSecrets,
        user_data: str,
        ami: aws.ec2.GetAmiResult,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """ami: the machine image the look-up step found for the group's `image_for`."""
        super().__init__("llm-deploy:aws:NodeGroup", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {**stack_tags(plan), "llm-deploy:node-group": group.name, "Name": f"llm-deploy-{plan.stack}-{group.name}"}

        assert group.boot is not None and group.storage is not None, "placement sizes and estimates every node group"
        # Service names are unique in the plan, so they name the target groups.
        self.target_groups = {
            service.name: aws.lb.TargetGroup(
                short_name(service.name),
                port=GATEWAY_PORT,
                protocol="HTTP",
                target_type="instance",
                vpc_id=network.vpc.id,
                health_check=health_check(service, group.boot),
                deregistration_delay=300,  # lets in-flight (streamed) requests finish when a node is rolled
                tags={"llm-deploy:node-group": group.name, "llm-deploy:service": service.name},
                opts=child,
            )
            for service in group.services
        }
        self.launch_template = aws.ec2.LaunchTemplate(
            f"{name}-lt",
            description=f"llm-deploy {plan.stack}/{group.name}: {', '.join(s.name for s in group.services)}",
            image_id=ami.id,
            instance_type=group.offer.instance_type,
            iam_instance_profile={"arn": secrets.instance_profile.arn},
            vpc_security_group_ids=[network.node_security_group.id],
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",  # IMDSv2 only
                "http_put_response_hop_limit": 2,  # containers sit one hop behind the host
                # The node reads its autoscaling group's name (aws:autoscaling:groupName) to key its metrics.
                "instance_metadata_tags": "enabled",
            },
            block_device_mappings=root_volume(ami, group.disk_gb, group.storage),
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
            f"{name}-asg",
            desired_capacity=group.count,
            min_size=group.count,
            max_size=group.count,
            launch_template={"id": self.launch_template.id, "version": self.launch_template.latest_version.apply(str)},
            vpc_zone_identifiers=network.subnet_ids_offering(group.offer.instance_type),
            target_group_arns=[tg.arn for tg in self.target_groups.values()],
            health_check_type="ELB",
            health_check_grace_period=group.boot.grace_seconds,
            # A new launch template version (config, image, user-data) replaces nodes one by one, new before old.
            instance_refresh={
                "strategy": "Rolling",
                "preferences": {"min_healthy_percentage": 100, "max_healthy_percentage": 200},
            },
            wait_for_capacity_timeout="15m",
            tags=[{"key": k, "value": v, "propagate_at_launch": False} for k, v in tags.items()],
            opts=child,
        )
        self.register_outputs(
            {"autoscaling_group": self.autoscaling_group.name, "target_groups": {n: tg.arn for n, tg in self.target_groups.items()}}
        )

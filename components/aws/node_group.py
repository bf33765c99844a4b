"""One node group: a target group per service, a launch template and an autoscaling group that keeps `count` nodes serving.

Health: each service's target group checks the gateway's `/healthz/<service>`, so the load balancer
stops sending a service's paths to a node where that service is down, while the node's other
services keep serving. The autoscaling group uses those checks too (`ELB`): every target group must
call a node healthy. So that a restarting service (systemd brings it back) does not get its node
replaced, a service's check counts it failed only after its estimated restart time with a margin
(`BootEstimate.restart_seconds`: restart delay + weights from disk + warm-up); a service that stays
down longer does get its node replaced. The grace after launch is the node group's estimated time to
healthy with a margin (`BootEstimate.grace_seconds`), so a booting node is never judged.

Change: a new launch template version (user-data, secrets, image) or instance types start an instance
refresh, launch before terminate, `rollout.batchSize` nodes at a time (`layout.rollout`). The provider
starts the refresh and returns (its docs: "This resource does not wait for the instance refresh to
complete"), so a `RolloutGate` of the program's own waits for it: `pulumi up` ends when the refresh
succeeds, and fails, stopping the refresh, when it fails or outlasts the plan's bound; the old nodes
keep serving. Capacity: a mixed instances policy with the placed type and the plan's fallback types,
in that order, on-demand and Spot as `spotPolicy` says (`layout.instances_distribution`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pulumi
import pulumi.dynamic
import pulumi_aws as aws

from bootstrap import encode_user_data
from infra.boot_time import node_image
from infra.plan import GATEWAY_PORT, DeploymentPlan, NodeGroup, Storage

from .layout import health_check, image_parameters, instance_types, instances_distribution, rollout, short_name, stack_tags
from .network import AwsNetwork
from .secrets import AwsSecrets


@dataclass(frozen=True)
class MachineImage:
    """An AMI published as a public SSM parameter, and the account that must own it."""

    parameter: str
    owner: str
    has_driver: bool


def machine_image(accelerator: str) -> MachineImage:
    """data/aws_images.csv's parameter and owner; whether the image brings the driver, data/node_images.csv."""
    image = image_parameters()[accelerator]
    return MachineImage(image.parameter, image.owner, node_image("aws", accelerator).has_driver)


# Deep Learning Base OSS NVIDIA driver AMI (driver, Docker, NVIDIA Container Toolkit); Canonical's Ubuntu 22.04.
GPU_IMAGE, CPU_IMAGE = machine_image("gpu"), machine_image("cpu")


def image_for(group: NodeGroup) -> MachineImage:
    return GPU_IMAGE if group.accelerator == "gpu" else CPU_IMAGE


def look_up_ami(group: NodeGroup, invoke: pulumi.InvokeOptions) -> aws.ec2.GetAmiResult:
    """The group's pinned AMI (`nodeImages`), else the one its image's SSM parameter names now, from its owner
    (the look-up step calls this). The launch template keeps the first AMI it got (AwsNodeGroup)."""
    if group.image:
        return aws.ec2.get_ami(filters=[{"name": "image-id", "values": [group.image]}], opts=invoke)
    image = image_for(group)
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


# Instance refresh statuses (DescribeInstanceRefreshes): still moving; anything else but Successful ended without it.
REFRESH_RUNNING = frozenset({"Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking"})
REFRESH_DONE = "Successful"
POLL_SECONDS = 30
DRAIN_SECONDS = 300  # target groups' deregistration delay: in-flight (streamed) requests finish on a leaving node


class RolloutFailed(Exception):
    """An instance refresh failed, was stopped, or outlasted its bound; the nodes the group had keep serving."""


def newest_refresh(client, group_name: str) -> dict | None:
    """The group's most recently started instance refresh (AWS keeps six weeks of them), or None."""
    refreshes = client.describe_instance_refreshes(AutoScalingGroupName=group_name)["InstanceRefreshes"]
    return max(refreshes, key=lambda r: r["StartTime"], default=None)


def finished_refresh(client, group_name: str) -> str | None:
    """The newest refresh's id when it has ended (a gate created beside a running group judges none of the past)."""
    refresh = newest_refresh(client, group_name)
    return refresh["InstanceRefreshId"] if refresh and refresh["Status"] not in REFRESH_RUNNING else None


def stop_refresh(client, group_name: str) -> str:
    """Roll the refresh back (AWS's undo, where the refresh has a desired configuration), else cancel it."""
    from botocore.exceptions import ClientError

    for verb, call in (("rolled back", client.rollback_instance_refresh), ("cancelled", client.cancel_instance_refresh)):
        try:
            call(AutoScalingGroupName=group_name)
            return verb
        except ClientError as error:
            last = error
    return f"not stopped ({last})"


def wait_for_refresh(
    client,
    group_name: str,
    seen: str | None,
    timeout_seconds: float,
    poll_seconds: float = POLL_SECONDS,
) -> str | None:
    """Wait for the group's newest instance refresh unless it is `seen` (the last one judged, or None): its id once
    Successful. RolloutFailed when it ends any other way, or when it runs past `timeout_seconds` (it is then
    stopped). A group with no new refresh returns `seen` at once."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        refresh = newest_refresh(client, group_name)
        if refresh is None or refresh["InstanceRefreshId"] == seen:
            return seen
        refresh_id, status = refresh["InstanceRefreshId"], refresh["Status"]
        if status == REFRESH_DONE:
            return refresh_id
        where = f"{group_name}: instance refresh {refresh_id}"
        keep = "the nodes the group had keep serving; fix the cause and run `pulumi up` again"
        if status not in REFRESH_RUNNING:
            raise RolloutFailed(f"{where} ended {status}: {refresh.get('StatusReason') or 'no reason given'}; {keep}")
        if time.monotonic() >= deadline:
            stopped = "" if status in ("Cancelling", "RollbackInProgress") else f"; {stop_refresh(client, group_name)}"
            raise RolloutFailed(f"{where} not done after {timeout_seconds:g} s (the new nodes were not healthy within the "
                                f"plan's bound; {refresh.get('PercentageComplete', 0)} % replaced){stopped}; {keep}")
        time.sleep(max(0.0, min(poll_seconds, deadline - time.monotonic())))


def _autoscaling(region: str):
    import boto3  # credentials as the AWS provider's: the environment, a profile or a role

    return boto3.client("autoscaling", region_name=region)


class RefreshWaiter(pulumi.dynamic.ResourceProvider):
    """Waits for the instance refresh its autoscaling group's change started (`pulumi up` runs it after the group)."""

    WATCHED = ("region", "group", "launch_template_version", "instance_types", "spot_policy", "timeout_seconds")

    def __init__(self, poll_seconds: float = POLL_SECONDS) -> None:
        self.poll_seconds = poll_seconds

    def create(self, props: dict) -> pulumi.dynamic.CreateResult:
        client = _autoscaling(props["region"])
        seen = wait_for_refresh(client, props["group"], finished_refresh(client, props["group"]), props["timeout_seconds"],
                                self.poll_seconds)
        return pulumi.dynamic.CreateResult(id_=props["group"], outs={**props, "refresh": seen or ""})

    def diff(self, _id: str, olds: dict, news: dict) -> pulumi.dynamic.DiffResult:
        changed = [key for key in self.WATCHED if olds.get(key) != news.get(key)]
        return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=[k for k in changed if k in ("region", "group")])

    def update(self, _id: str, olds: dict, news: dict) -> pulumi.dynamic.UpdateResult:
        seen = wait_for_refresh(_autoscaling(news["region"]), news["group"], olds.get("refresh") or None, news["timeout_seconds"],
                                self.poll_seconds)
        return pulumi.dynamic.UpdateResult(outs={**news, "refresh": seen or ""})


class RolloutGate(pulumi.dynamic.Resource, module="llm-deploy", name="RolloutGate"):
    """`pulumi-python:dynamic/llm-deploy:RolloutGate`: `pulumi up` waits here until the group's refresh is done."""

    refresh: pulumi.Output[str]  # the id of the last refresh it saw succeed ("" before the first)

    def __init__(self, name: str, inputs: dict, opts: pulumi.ResourceOptions) -> None:
        super().__init__(RefreshWaiter(), name, {**inputs, "refresh": None}, opts)


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
        """ami: the machine image the look-up step found for the group (`look_up_ami`)."""
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
                deregistration_delay=DRAIN_SECONDS,
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
            # Unpinned, the AMI is the one the first `pulumi up` found, kept: a new Deep Learning AMI release does
            # not roll the nodes. `nodeImages` (or `llm-deploy images --update`) takes a new one, and that rolls them.
            opts=child if group.image else pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(ignore_changes=["image_id"])),
        )
        types = instance_types(group)
        plan_rollout = rollout(group, plan.batch_size(group), DRAIN_SECONDS)
        version = self.launch_template.latest_version.apply(str)
        self.autoscaling_group = aws.autoscaling.Group(
            f"{name}-asg",
            desired_capacity=group.count,
            min_size=group.count,
            max_size=group.count,
            mixed_instances_policy={
                "launch_template": {
                    "launch_template_specification": {"launch_template_id": self.launch_template.id, "version": version},
                    # on-demand tries them in this order when EC2 has no capacity of one (InsufficientInstanceCapacity)
                    "overrides": [{"instance_type": t} for t in types],
                },
                "instances_distribution": instances_distribution(group.spot_policy, group.count),
            },
            capacity_rebalance=group.spot_policy != "on-demand",  # replaces a Spot node at elevated risk ahead of its reclaim
            vpc_zone_identifiers=network.subnet_ids_offering(types),
            target_group_arns=[tg.arn for tg in self.target_groups.values()],
            health_check_type="ELB",
            health_check_grace_period=group.boot.grace_seconds,
            instance_refresh={"strategy": "Rolling", "preferences": plan_rollout.preferences},
            # create and update end only when every node answers every target group's health check
            wait_for_elb_capacity=group.count,
            wait_for_capacity_timeout=f"{plan_rollout.timeout_seconds}s",  # a new group: its nodes boot at once
            tags=[{"key": k, "value": v, "propagate_at_launch": False} for k, v in tags.items()],
            opts=child,
        )
        self.rollout_gate = RolloutGate(
            f"{name}-rollout",
            {
                "region": plan.region,
                "group": self.autoscaling_group.name,
                "launch_template_version": version,
                "instance_types": types,
                "spot_policy": group.spot_policy,
                "timeout_seconds": plan_rollout.timeout_seconds,
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.autoscaling_group]),
        )
        self.register_outputs(
            {"autoscaling_group": self.autoscaling_group.name, "target_groups": {n: tg.arn for n, tg in self.target_groups.items()}}
        )

"""One frozen record per cloud: what it can do, what it refuses, and where its facts live.

Config, catalog, placement, bootstrap, the components, the offline engine and the Automation API read
these records, so a difference between clouds is a field here (or one method of the deployment
template, components/base.py), never a branch on a cloud's name. Facts that are data stay in data
files with a source per row (NVIDIA base images per GPU count: data/gpu_base_images.csv; machine
images: data/node_images.csv; disk and bandwidth figures: data/boot_time.csv); a record reads them.
Adding a cloud: README "Adding a cloud".
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from infra.boot_time import NodeImage, node_image
from infra.data_files import data_rows
from infra.node_metadata import ALICLOUD_METADATA, AWS_IMDS, MetadataService

# How a cloud's root disk (and the model cache on it) performs; infra/node_storage.py has one model per kind.
ROOT_DISKS = ("ebs-gp3", "essd-pl1", "droplet", "host")


@dataclass(frozen=True)
class Cloud:
    """A cloud's traits. Placement refuses what its components could not build, from these fields."""

    name: str  # as stack files, catalogs and priceOverrides spell it
    deployment: str  # "package:Class" of its components.base.CloudDeployment, imported only when the stack uses it
    managed_tls: bool  # its load balancer can get a certificate for `domain` by itself
    user_data_limit: int  # most user-data bytes an instance accepts, as sent (before base64)
    gzip_user_data: bool  # user-data goes as base64 with gzip inside (cloud-init unzips it); else plain text
    secret_store: str | None  # bootstrap.delivery.SecretStore kind; None: no store, secrets travel in user-data
    spot: bool  # the cloud rents spot (interruptible) capacity
    autoscaling: bool  # the component runs each node group as a managed group that replaces failed nodes
    regions: str  # where the catalog's regions of this cloud come from
    credentials: tuple[tuple[str, ...], ...]  # what its provider reads from the environment: any one alternative, all of it
    root_disk: str  # one of ROOT_DISKS
    # The compute resource types that name an instance type, with the inputs that hold it (the policy pack
    # allows only the catalog's types there).
    instance_type_inputs: tuple[tuple[str, tuple[str, ...]], ...]
    bandwidth_limit: str | None = None  # data/boot_time.csv constant (Mbit/s) capping a node's downloads; None: no cap
    # What sends the stack's alarms to `alertEmail`; its components package then has monitoring.py (dashboard,
    # alarms). None: llm-deploy builds no alarms there, so a stack with alertEmail is not placed on it.
    alarms: str | None = None
    # Where its offers come from: "catalog" (rented instance types, data/catalog.csv) or "hosts" (the stack's
    # own servers, `hosts`, each usable once); a "hosts" cloud is a target of `cloud:`, never of `auto`.
    offers: str = "catalog"
    # How a node gets its files: "user-data" (cloud-init at first boot) or "ssh" (copied to a running host by
    # the package's delivery.py, a dynamic provider; its load balancer is a front gateway on one of the hosts).
    delivery: str = "user-data"
    # The instance types it sells as spot (a regular expression, whole name), where spot is sizes of their own;
    # None: any instance type can be rented as spot (with `spot`). `spotPolicy` spot/auto is refused elsewhere.
    spot_instance_types: str | None = None
    # What a machine image id looks like (a regular expression, whole id): `nodeImages` pins are checked
    # against it; None: the cloud takes no image pins.
    image_id_pattern: str | None = None
    # Its managed groups have no rolling update that waits for load-balancer health, so the component gates a
    # replaced group with a poller of its own (`<package>/rollout.py`, a Pulumi dynamic resource).
    rollout_gate: bool = False
    # On-demand nodes a group under `spotPolicy: auto` keeps below its spot ones (at most its count): where the
    # cloud never falls back from spot to on-demand by itself, the nodes spot cannot take away. 0: all spot.
    auto_on_demand_nodes: int = 0
    metadata: MetadataService | None = None  # what a node's watcher polls for notices of its end; None: nothing to poll
    metrics_agent: str | None = None  # the agent a node publishes its services' metrics with (bootstrap/files/llm-deploy-<agent>)
    # The `llm-deploy images --update` resolver: `infra.cli.images.<name>` (see infra/cli/images/__init__.py).

    def spot_problem(self, instance_type: str) -> str | None:
        """Why a node of this instance type cannot be rented as spot here, or None."""
        if not self.spot:
            return f"{self.name} rents no spot capacity"
        if self.spot_instance_types and not re.fullmatch(self.spot_instance_types, instance_type):
            return f"{self.name} sells spot only as its own sizes ({self.spot_instance_types}), not {instance_type}"
        return None

    def image_id_problem(self, image_id: str) -> str | None:
        """Why `image_id` cannot be a machine image id of this cloud, or None."""
        if self.image_id_pattern is None:
            return f"{self.name} takes no image pins"
        if not re.fullmatch(self.image_id_pattern, image_id):
            return f"{image_id!r} is not a machine image id of {self.name} ({self.image_id_pattern})"
        return None

    @property
    def package(self) -> str:
        """The components package: network, secrets, node_group, load_balancer, layout and offline modules."""
        return self.deployment.partition(":")[0]

    @property
    def queue_metric(self) -> bool:
        """Autoscaling's signal: the nodes' queue depth reaches the cloud's scaler (published by its metrics agent),
        else requests per node."""
        return self.metrics_agent is not None

    @property
    def offline_module(self) -> str:
        """Fakes for the offline plan (no SDK import): INVOKES and OUTPUTS."""
        return f"{self.package}.offline"

    @property
    def base_images(self) -> dict[int, str]:
        """GPU count → its NVIDIA base image, where the image depends on the count (data/gpu_base_images.csv);
        empty: one image for every count."""
        return _base_images().get(self.name, {})

    def node_image(self, accelerator: str) -> NodeImage:
        """What its machine image for "gpu" or "cpu" nodes brings (data/node_images.csv)."""
        return node_image(self.name, accelerator)

    def gpu_count_problem(self, gpu_count: int) -> str | None:
        """Why a CUDA instance with this many GPUs cannot boot here (no NVIDIA base image for the count), or None."""
        images = self.base_images
        if not images or gpu_count in images:
            return None
        counts = " or ".join(str(n) for n in sorted(images))
        return f"{self.name} has NVIDIA base images for {counts} GPUs only, not {gpu_count} (data/gpu_base_images.csv)"


@functools.cache
def _base_images() -> dict[str, dict[int, str]]:
    images: dict[str, dict[int, str]] = {}
    for row in data_rows("gpu_base_images.csv"):
        images.setdefault(row["cloud"], {})[int(row["gpu_count"])] = row["image"]
    return images


AWS = Cloud(
    name="aws",
    deployment="components.aws:AwsDeployment",
    managed_tls=True,  # ACM certificate, DNS-validated
    user_data_limit=16384,  # EC2: 16 KiB
    gzip_user_data=True,
    secret_store="aws-ssm",
    spot=True,  # EC2 Spot (autoscaling.Group mixed_instances_policy); the catalog carries spot prices (SkyPilot's catalog)
    autoscaling=True,  # an EC2 Auto Scaling group per node group
    regions="one catalog row per region: SkyPilot's catalog (../shared/data/aws.csv), or `catalog refresh` (EC2 offerings)",
    credentials=(("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), ("AWS_PROFILE",)),
    root_disk="ebs-gp3",
    instance_type_inputs=(("aws:ec2/launchTemplate:LaunchTemplate", ("instanceType",)), ("aws:ec2/instance:Instance", ("instanceType",))),
    alarms="CloudWatch alarms to an SNS topic with an email subscription; a CloudWatch dashboard",
    image_id_pattern=r"ami-[0-9a-f]{8}([0-9a-f]{9})?",  # EC2 AMI ids: 8 or 17 hex digits
    auto_on_demand_nodes=1,  # an Auto Scaling group keeps asking for Spot, never launches on-demand in its place
    metadata=AWS_IMDS,
    metrics_agent="cloudwatch",  # the CloudWatch agent: queue depth per autoscaling group, for target tracking
)
DIGITALOCEAN = Cloud(
    name="digitalocean",
    deployment="components.digitalocean:DigitalOceanDeployment",
    managed_tls=True,  # Let's Encrypt certificate on the load balancer
    user_data_limit=65536,  # Droplets: 64 KiB
    gzip_user_data=False,
    secret_store=None,
    spot=True,  # "-spot" GPU sizes (their own slugs) in /v2/sizes (../shared/data/digitalocean.csv)
    autoscaling=False,  # plain droplets, `count` per node group
    regions="the size's regions in /v2/sizes (../shared/data/digitalocean.csv) and data/regions.csv",
    credentials=(("DIGITALOCEAN_TOKEN",), ("DIGITALOCEAN_ACCESS_TOKEN",)),
    root_disk="droplet",
    instance_type_inputs=(("digitalocean:index/droplet:Droplet", ("size",)),),
    # alarms: None. DigitalOcean Monitoring has alert policies (digitalocean.MonitorAlert); llm-deploy builds none yet.
    spot_instance_types=r".+-spot",  # gpu-mi300x1-192gb-spot, ...: /v2/sizes (../shared/data/digitalocean.csv)
    image_id_pattern=r"[0-9]{1,12}",  # an image's numeric id (/v2/images); a slug (gpu-h100x1-base) names whatever is newest
)
ALICLOUD = Cloud(
    name="alicloud",
    deployment="components.alicloud:AlicloudDeployment",
    managed_tls=False,  # DV certificates are bought and validated by hand
    user_data_limit=32768,  # ECS: 32 KiB
    gzip_user_data=True,
    secret_store="alicloud-oos",
    spot=True,  # ECS preemptible instances (ess.ScalingConfiguration spot_strategy, pulumi_alicloud 4)
    autoscaling=True,  # an ESS scaling group per node group
    regions="data/regions.csv (provider docs), or `catalog refresh` (DescribeAvailableResource per region)",
    credentials=(("ALICLOUD_ACCESS_KEY", "ALICLOUD_SECRET_KEY"),),
    root_disk="essd-pl1",
    instance_type_inputs=(("alicloud:ecs/instance:Instance", ("instanceType",)),
                          ("alicloud:ess/scalingConfiguration:ScalingConfiguration", ("instanceType", "instanceTypes"))),
    bandwidth_limit="alicloud_public_bandwidth_mbit",  # the node's public bandwidth (internet_max_bandwidth_out)
    alarms="CloudMonitor alarm rules on ALB metrics to a contact group with the email",
    # ECS image ids: a public image's file name (ubuntu_22_04_x64_20G_alibase_20240926.vhd) or a custom image's m-...
    image_id_pattern=r"m-[a-z0-9]{8,32}|[A-Za-z0-9][A-Za-z0-9_.-]{2,120}\.vhd",
    rollout_gate=True,  # ESS instance refresh takes an image or launch template only, and no ALB health grace
    metadata=ALICLOUD_METADATA,
)

ONPREM = Cloud(
    name="onprem",
    deployment="components.onprem:OnPremDeployment",
    managed_tls=False,  # TLS from the user's certificate and key (tlsCertificate, tlsPrivateKey) on the front gateway
    user_data_limit=1024 * 1024,  # no user-data: the same files go over SSH; the cap only bounds what is copied
    gzip_user_data=False,
    secret_store=None,  # written 0600 over SSH, Pulumi secrets in state
    spot=False,
    autoscaling=False,
    regions="one region, `onprem`: the stack's hosts",
    credentials=(),  # sshPrivateKey or the SSH agent, from the stack's own config
    root_disk="host",
    instance_type_inputs=(),  # no instance types: the hosts are the user's
    offers="hosts",
    delivery="ssh",
)

CLOUDS: tuple[Cloud, ...] = (AWS, DIGITALOCEAN, ALICLOUD)  # the catalog's clouds, in catalog order: the first wins a price tie
NAMES = tuple(c.name for c in CLOUDS)
HOSTED: tuple[Cloud, ...] = (ONPREM,)  # clouds whose offers are the stack's own hosts
HOSTED_NAMES = tuple(c.name for c in HOSTED)
TARGETS = NAMES + HOSTED_NAMES  # what `cloud:` may name besides auto
_BY_NAME = {c.name: c for c in (*CLOUDS, *HOSTED)}


def get(name: str) -> Cloud:
    """The record of a cloud by name; KeyError for a name that is not one (config and catalog refuse those first)."""
    return _BY_NAME[name]


def with_store(kind: str) -> Cloud | None:
    """The cloud whose secret store this is."""
    return next((c for c in CLOUDS if c.secret_store == kind), None)

"""A cloud's instance metadata service as a node reads it: where the notices that the node is going away appear.

The node's watcher (bootstrap/files/llm-deploy-metadata) polls each notice's path; an answer that matches
drains the node (`/healthz` 503) so the load balancer stops sending it requests while those in flight
finish. Both services are read in their token mode (IMDSv2; Alibaba Cloud's security-hardened mode): a
PUT for a session token, then GETs carrying it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Notice:
    """A metadata path that announces the node's end: 404 (or another answer) while the node stays."""

    path: str
    reason: str  # what the node's log and progress say
    answer: str  # bash glob the 200 body must match; "*": any answer is the notice


@dataclass(frozen=True)
class MetadataService:
    url: str  # base URL, no trailing slash
    token_path: str
    token_ttl_header: str
    token_header: str
    notices: tuple[Notice, ...]
    # The node's autoscaling group name (what its published metrics are keyed by); None: not offered.
    group_name_path: str | None = None


TOKEN_TTL_SECONDS = 21600  # both services' maximum


AWS_IMDS = MetadataService(
    url="http://169.254.169.254",
    token_path="/latest/api/token",
    token_ttl_header="X-aws-ec2-metadata-token-ttl-seconds",
    token_header="X-aws-ec2-metadata-token",
    notices=(
        # Two minutes before EC2 stops or terminates a spot instance: {"action": "terminate", "time": "..."}.
        Notice("/latest/meta-data/spot/instance-action", "spot interruption", "*"),
        # "InService" normally; "Terminated" once the autoscaling group scales the node in (a terminate
        # lifecycle hook holds the instance in Terminating:Wait while its requests finish).
        Notice("/latest/meta-data/autoscaling/target-lifecycle-state", "scale-in", "Terminated"),
    ),
    # Needs the launch template's instance_metadata_tags "enabled"; EC2 Auto Scaling tags every instance with it.
    group_name_path="/latest/meta-data/tags/instance/aws:autoscaling:groupName",
)
# Alibaba Cloud ECS: the release time of a preemptible instance, five minutes ahead. ESS scale-in has no
# metadata item (its lifecycle hooks notify MNS, CloudMonitor events or OOS, not the instance).
ALICLOUD_METADATA = MetadataService(
    url="http://100.100.100.200",
    token_path="/latest/api/token",
    token_ttl_header="X-aliyun-ecs-metadata-token-ttl-seconds",
    token_header="X-aliyun-ecs-metadata-token",
    notices=(Notice("/latest/meta-data/instance/spot/termination-time", "spot reclaim", "*"),),
)

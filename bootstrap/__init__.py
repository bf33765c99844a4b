"""cloud-init rendering: a node group of the plan becomes `#cloud-config` user-data.

`render_user_data(group, target, secrets, upstreams=None)` is the one entry point the components use;
`render_gateway` is exposed for tests and for reading what a node's nginx will run.
"""

from bootstrap.delivery import BootTarget, InlineSecrets, SecretDelivery, SecretStore
from bootstrap.gateway import render_gateway
from bootstrap.render import USER_DATA_LIMITS, UnreadableSecret, UserDataTooLarge, encode_user_data, render_user_data

__all__ = [
    "USER_DATA_LIMITS",
    "BootTarget",
    "InlineSecrets",
    "SecretDelivery",
    "SecretStore",
    "UnreadableSecret",
    "UserDataTooLarge",
    "encode_user_data",
    "render_gateway",
    "render_user_data",
]

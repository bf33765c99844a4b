"""`sshPublicKeys` reach every node's user-data, on every cloud, through the real program."""

from __future__ import annotations

import pytest
import yaml

from tests.offline_helpers import plan_and_run, raw_config

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@example"
REGION = {"aws": "us-east-1", "digitalocean": "tor1", "alicloud": "ap-southeast-1"}


@pytest.mark.parametrize("cloud", sorted(REGION))
def test_ssh_public_keys_are_authorized_on_every_node(cloud):
    values = {"cloud": cloud, "region": REGION[cloud], "sshCidrs": ["203.0.113.0/24"], "sshPublicKeys": [KEY]}
    _, result = plan_and_run(raw_config(f"ssh-{cloud}", values))
    assert result.user_data
    for text in result.user_data.values():
        config = yaml.safe_load(text)
        assert config["ssh_authorized_keys"] == [KEY]
        assert config["ssh_pwauth"] is False

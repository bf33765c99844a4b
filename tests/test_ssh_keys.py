"""`sshPublicKeys` reach every node's user-data, on every cloud, through the real program."""

from __future__ import annotations

import pytest
import yaml

from tests.helpers import REGIONS, SSH_KEY, plan_and_run, raw_config


@pytest.mark.parametrize("cloud", sorted(REGIONS))
def test_ssh_public_keys_are_authorized_on_every_node(cloud):
    values = {"cloud": cloud, "region": REGIONS[cloud], "sshCidrs": ["203.0.113.0/24"], "sshPublicKeys": [SSH_KEY]}
    _, result = plan_and_run(raw_config(f"ssh-{cloud}", values))
    assert result.user_data
    for text in result.user_data.values():
        config = yaml.safe_load(text)
        assert config["ssh_authorized_keys"] == [SSH_KEY]
        assert config["ssh_pwauth"] is False

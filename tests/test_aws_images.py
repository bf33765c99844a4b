"""`llm-deploy images` on AWS: the AMI each node group's public SSM parameter names now, read through moto's
SSM (which holds AWS's public parameters as AWS does: readable, not writable by an account)."""

from __future__ import annotations

import boto3
import moto
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ssm.models import Parameter, ssm_backends

from components.aws.layout import image_parameters
from infra.cli import images
from infra.cli.refresh import MissingCredentials, RefreshError
from infra.config import parse_config
from infra.placement import place
from tests.helpers import LLM, raw_config

REGION = "us-west-2"
# A GPU LLM group and a CPU embedding group: one AMI of each kind.
PLAN = place(parse_config(raw_config("aws-images", {
    "cloud": "aws", "region": REGION,
    "services": [LLM, {"name": "embed", "kind": "embedding", "model": "intfloat/multilingual-e5-large-instruct", "accelerator": "cpu"}],
})))
NEWEST = {"gpu": "ami-0f3c9a1d2b4e6a8c0", "cpu": "ami-0a9b8c7d6e5f40312"}


def publish(accelerator: str, ami: str) -> None:
    """AWS publishing a new AMI under the kind's public parameter (accounts cannot put /aws/ names, moto neither)."""
    name = image_parameters()[accelerator].parameter
    versions = ssm_backends[DEFAULT_ACCOUNT_ID][REGION]._parameters[name]
    versions.append(Parameter(account_id=DEFAULT_ACCOUNT_ID, name=name, value=ami, parameter_type="String", description=None,
                              allowed_pattern=None, keyid=None, last_modified_date=1764590000.0, version=len(versions) + 1,
                              data_type="aws:ec2:image"))


@pytest.fixture
def aws_account(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with moto.mock_aws():
        yield


def test_each_group_gets_the_ami_of_its_kind(aws_account):
    assert sorted(g.accelerator for g in PLAN.node_groups) == ["cpu", "gpu"]
    publish("gpu", "ami-0123456789abcdef0")  # an older release first: the newest version wins
    for kind, ami in NEWEST.items():
        publish(kind, ami)
    assert images.newest(PLAN) == {g.name: NEWEST[g.accelerator] for g in PLAN.node_groups}


def test_the_same_parameters_as_the_look_up(aws_account):
    """The resolver reads the parameters the components' look-up reads, no copy of its own."""
    with pytest.raises(RefreshError, match="SSM GetParameter /aws/service/") as refused:
        images.newest(PLAN)
    assert any(p.parameter in str(refused.value) for p in image_parameters().values())
    with pytest.raises(Exception, match="reserved parameter name"):
        boto3.client("ssm", region_name=REGION).put_parameter(Name=image_parameters()["gpu"].parameter, Value="ami-1", Type="String")


def test_without_credentials_it_says_what_to_set(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(MissingCredentials, match="AWS_ACCESS_KEY_ID"):
        images.newest(PLAN)

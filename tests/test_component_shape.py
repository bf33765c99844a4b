"""Every cloud package has the same shape: the same files, `(name, plan, …, opts)` constructors, one
class name and one type token per role. A fourth cloud copies the shape; these tests keep it from drifting."""

from __future__ import annotations

import importlib
import inspect
import re

import pulumi
import pytest

from components.base import CloudDeployment
from infra import clouds
from infra.cli import offline
from infra.config import load_raw
from tests.helpers import ROOT, STACKS_DIR, stacks_on

COMPONENTS = ROOT / "components"
CLOUDS = {"aws": "Aws", "digitalocean": "DigitalOcean", "alicloud": "Alicloud", "onprem": "OnPrem"}  # package → class prefix
FILES = {"__init__.py", "network.py", "secrets.py", "node_group.py", "load_balancer.py", "layout.py", "offline.py"}
# modules a cloud package has when its record says so
OPTIONAL_FILES = {
    "delivery.py": lambda record: record.delivery == "ssh",  # the SSH transport of node files
    "rollout.py": lambda record: bool(record.rollout_gate),  # a health gate of the program's own for its groups
    "scaling.py": lambda record: record.autoscaling,  # target tracking and the schedule on its managed groups
    "monitoring.py": lambda record: bool(record.alarms),  # what sends its alarms to alertEmail: a Monitoring component
}
ROLES = {"network": "Network", "secrets": "Secrets", "node_group": "NodeGroup", "load_balancer": "LoadBalancer"}
# The component of an optional module, for the clouds whose record says so (as OPTIONAL_FILES): plain instances have
# no managed group to attach target tracking or a schedule to; a cloud whose record names what sends its alarms
# (clouds.Cloud.alarms) builds them in monitoring.py, and only it.
OPTIONAL_ROLES = {"scaling": ("Scaling", lambda cloud: cloud.autoscaling), "monitoring": ("Monitoring", lambda cloud: bool(cloud.alarms))}


def roles_of(cloud: str) -> dict[str, str]:
    """module → role of the components a cloud package defines."""
    record = clouds.get(cloud)
    return ROLES | {module: role for module, (role, has) in OPTIONAL_ROLES.items() if has(record)}


def components_of(cloud: str) -> list[tuple[str, type]]:
    """(role, class) of every ComponentResource a cloud package defines, its Deployment included."""
    found = []
    for module_name, role in [*roles_of(cloud).items(), ("__init__", "Deployment")]:
        name = f"components.{cloud}" if module_name == "__init__" else f"components.{cloud}.{module_name}"
        module = importlib.import_module(name)
        found += [
            (role, cls)
            for cls in vars(module).values()
            if inspect.isclass(cls) and issubclass(cls, pulumi.ComponentResource) and cls.__module__ == name
        ]
    return found


ALL_COMPONENTS = [(cloud, role, cls) for cloud in CLOUDS for role, cls in components_of(cloud)]
IDS = [cls.__name__ for _, _, cls in ALL_COMPONENTS]


@pytest.mark.parametrize("cloud", CLOUDS)
def test_every_cloud_package_has_the_same_files(cloud):
    """The seven files, plus a module for each trait the cloud's record has (OPTIONAL_FILES)."""
    record = clouds.get(cloud)
    files = {p.name for p in (COMPONENTS / cloud).glob("*.py")}
    assert files == FILES | {name for name, has in OPTIONAL_FILES.items() if has(record)}


def test_the_clouds_with_monitoring_are_the_clouds_whose_record_names_their_alarms():
    with_module = {c for c in CLOUDS if (COMPONENTS / c / "monitoring.py").exists()}
    assert with_module == {c for c in CLOUDS if clouds.get(c).alarms} == {"aws", "alicloud"}


@pytest.mark.parametrize("cloud", CLOUDS)
def test_layout_holds_pure_helpers_only(cloud):
    """layout.py is plain data and functions: no Pulumi, no provider SDK, so its rules are tested alone."""
    source = (COMPONENTS / cloud / "layout.py").read_text()
    assert not re.search(r"^\s*(import|from) pulumi", source, re.MULTILINE)


def test_every_cloud_has_a_component_per_role_but_secrets_without_a_store_and_scaling_without_autoscaling():
    roles = {cloud: sorted(role for c, role, _ in ALL_COMPONENTS if c == cloud) for cloud in CLOUDS}
    every = sorted([*ROLES.values(), "Deployment"])
    assert roles == {
        "aws": sorted([*every, "Monitoring", "Scaling"]),
        "alicloud": sorted([*every, "Monitoring", "Scaling"]),
        # no secret store: digitalocean/secrets.py puts the values in user-data, it creates no resource
        "digitalocean": sorted(set(every) - {"Secrets"}),
        # no secret store either: onprem/secrets.py puts the values in the files written 0600 over SSH
        "onprem": sorted(set(every) - {"Secrets"}),
    }


@pytest.mark.parametrize(("cloud", "role", "cls"), ALL_COMPONENTS, ids=IDS)
def test_a_component_is_named_after_its_cloud_and_role(cloud, role, cls):
    assert cls.__name__ == f"{CLOUDS[cloud]}{role}"


@pytest.mark.parametrize(("cloud", "role", "cls"), ALL_COMPONENTS, ids=IDS)
def test_a_component_takes_name_and_plan_first_and_opts_last(cloud, role, cls):
    parameters = list(inspect.signature(cls).parameters)
    assert parameters[:2] == ["name", "plan"]
    assert parameters[-1] == "opts"


@pytest.mark.parametrize(("cloud", "role", "cls"), ALL_COMPONENTS, ids=IDS)
def test_a_component_registers_the_type_token_of_its_cloud_and_role(cloud, role, cls):
    # the Deployment's token is built by the template from `cloud`
    source = inspect.getsource(CloudDeployment.__init__ if role == "Deployment" else cls)
    tokens = re.findall(r'"(llm-deploy:[^"]+)"', source)
    if role == "Deployment":
        assert cls.cloud == cloud and 'f"llm-deploy:{self.cloud}:Deployment"' in source
    else:
        assert f"llm-deploy:{cloud}:{role}" in tokens


ALIASED: dict[str, list[str]] = {}  # URN → the URNs it is aliased from, of the last offline run


class AliasRecordingMonitor(offline.UniqueUrnMonitor):
    """The offline engine's monitor, also keeping the URNs each registered resource is aliased from."""

    def RegisterResource(self, request):
        urn = self.make_urn(request.parent, request.type, request.name)
        # an alias spec with no name or parent of its own keeps the resource's (as the engine reads it)
        ALIASED[urn] = [
            self.make_urn(request.parent, alias.spec.type or request.type, alias.spec.name or request.name)
            for alias in request.aliases
        ]
        return super().RegisterResource(request)


@pytest.mark.parametrize("stack", stacks_on("alicloud"))
def test_the_renamed_alicloud_secrets_type_keeps_its_former_urn_as_an_alias(stack, monkeypatch):
    """`llm-deploy:alicloud:NodeSecrets` became `…:Secrets`: a stack created before it must not replace
    its parameters and node role, so the former URN is an alias of the component."""
    monkeypatch.setattr(offline, "UniqueUrnMonitor", AliasRecordingMonitor)
    ALIASED.clear()
    offline.run_offline(load_raw(stack, stacks_dir=STACKS_DIR))
    prefix = f"urn:pulumi:{stack}::llm-deploy::llm-deploy:alicloud:Deployment$"
    new, old = f"{prefix}llm-deploy:alicloud:Secrets::{stack}-secrets", f"{prefix}llm-deploy:alicloud:NodeSecrets::{stack}-secrets"
    assert ALIASED[new] == [old]

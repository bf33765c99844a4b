"""Each cloud's record (infra/clouds.py) against what its components would refuse.

For every trait of a record that a component or the bootstrap it renders enforces, a stack violating it
is refused by placement or by the program's own pre-check (what `validate`, `env` and the program run
before the deployment is built), with a problem naming the stack file and the field; the deployment
component is never reached. A record field is either such a trait (with a case below) or a fact other
code reads; the last test keeps that list complete.
"""

from __future__ import annotations

import ast
import base64
import csv
import dataclasses
import hashlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from components.base import CloudDeployment
from infra import clouds
from infra.catalog import CATALOG_COLUMNS
from infra.cli import environments
from infra.cli.offline import run_offline
from infra.clouds import Cloud
from infra.config import MAX_ITEMS, RawConfig, parse_config
from infra.data_files import DATA_DIR
from infra.errors import ConfigError, Problem
from infra.placement import place
from tests.helpers import ROOT


def ssh_keys(count: int) -> list[str]:
    """Distinct, well-formed ed25519 public keys (key type, then 32 key bytes, in OpenSSH's wire format)."""
    def key(i: int) -> str:
        blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + hashlib.sha256(str(i).encode()).digest()
        return f"ssh-ed25519 {base64.b64encode(blob).decode()} ops{i}@example"

    return [key(i) for i in range(count)]


def catalog_with_unbootable_gpu_count(cloud: Cloud, directory: Path) -> Path:
    """The built-in catalog's first CUDA row of the cloud, with a GPU count the cloud has no base image for."""
    count = next(n for n in range(1, 65) if n not in cloud.base_images)
    rows = list(csv.DictReader(io.StringIO((DATA_DIR / "catalog.csv").read_text())))
    row = next(r for r in rows if r["cloud"] == cloud.name and r["gpu"] in ("H100", "L40S", "A100-80GB"))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CATALOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerow({**row, "instance_type": f"{row['instance_type']}-x{count}", "gpu_count": str(count)})
    path = directory / "catalog.csv"
    path.write_text(buffer.getvalue())
    return path


ONE_LLM = {"name": "llm", "kind": "llm", "model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "maxModelLen": 8192}  # group "llm"


@dataclass(frozen=True)
class Refusal:
    """A stack that breaks one trait of a cloud's record, and the field its problem must name."""

    cloud: Cloud
    trait: str  # the record's field (or property) the component enforces
    values: Callable[[Path], dict]  # the stack's llm-deploy keys, given a directory for files
    field: str
    says: str  # words the problem must carry

    def __str__(self) -> str:
        return f"{self.cloud.name}-{self.trait}"


def refusals(cloud: Cloud) -> list[Refusal]:
    """Every case the cloud's components (and the bootstrap they render) would refuse, from its record."""
    name = cloud.name
    # A key takes ~45 bytes gzipped (~120 plain): limit/40 keys are over every cloud's limit by themselves.
    keys = ssh_keys(min(MAX_ITEMS, cloud.user_data_limit // 40))
    cases = [Refusal(cloud, "user_data_limit", lambda _: {"cloud": name, "sshPublicKeys": keys}, "sshPublicKeys",
                     f"{name} accepts {cloud.user_data_limit}")]
    if cloud.base_images:
        cases.append(Refusal(cloud, "base_images", lambda tmp: {"cloud": name, "catalogFile": str(
            catalog_with_unbootable_gpu_count(cloud, tmp))}, "catalogFile", "gpu_count: " + name + " has NVIDIA base images for"))
    if not cloud.managed_tls:
        cases.append(Refusal(cloud, "managed_tls", lambda _: {"cloud": name, "domain": "llm.acme-inference.io"}, "domain",
                             "cannot issue by itself"))
    if not cloud.alarms:  # nothing would send to the address
        cases.append(Refusal(cloud, "alarms", lambda _: {"cloud": name, "alertEmail": "oncall@acme-inference.io"}, "alertEmail",
                             f"llm-deploy builds no alarms on {name}"))
    if cloud.spot and cloud.spot_instance_types:  # spot is sizes of their own, and the catalog's on-demand sizes are not
        cases.append(Refusal(cloud, "spot_instance_types", lambda _: {"cloud": name, "spotPolicy": "spot"}, "spotPolicy",
                             "sells spot only as its own sizes"))
    if cloud.image_id_pattern:
        cases.append(Refusal(cloud, "image_id_pattern", lambda _: {"cloud": name, "services": [ONE_LLM],
                                                                   "nodeImages": {"llm": "not-an-image"}},
                             "nodeImages.llm", f"is not a machine image id of {name}"))
    llm = {"name": "llm", "kind": "llm", "model": "Qwen/Qwen2.5-7B-Instruct", "maxModelLen": 8192, "gpu": "L40S"}
    if not cloud.autoscaling:  # plain instances: nothing to scale between replicas and maxReplicas
        cases.append(Refusal(cloud, "autoscaling", lambda _: {"cloud": name, "services": [{**llm, "maxReplicas": 2}]},
                             "services[0].maxReplicas", "has no managed GPU autoscaling"))
    elif not cloud.queue_metric:  # it scales on requests per node, which only an LLM's load says
        cases.append(Refusal(cloud, "queue_metric", lambda _: {"cloud": name, "services": [{**llm, "gpu": None, "maxReplicas": 2}]},
                             "services[0].load", "scales on requests per node"))
    if cloud.secret_store is None:  # the key travels in user-data, where the node's reader takes only these characters
        cases.append(Refusal(cloud, "secret_store", lambda _: {"cloud": name, "apiKey": "key with spaces"}, "apiKey",
                             "must be non-empty and use only"))
    return cases


CASES = [case for cloud in clouds.CLOUDS for case in refusals(cloud)]


def raw(case: Refusal, directory: Path) -> RawConfig:
    values = case.values(directory)
    return RawConfig("refused", "stacks/Pulumi.refused.yaml", values, {k for k in ("apiKey", "hfToken") if k in values})


def assert_names_field(problems: list[Problem], case: Refusal) -> None:
    (refusal,) = problems
    assert (refusal.source, refusal.field) == ("stacks/Pulumi.refused.yaml", case.field), str(refusal)
    assert case.says in refusal.message, str(refusal)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_refused_before_the_component_naming_the_field(case, tmp_path, monkeypatch):
    with pytest.raises(ConfigError) as refused:
        environments.validate(raw(case, tmp_path))  # placement, then the program's user-data check (`validate`, `env`)
    assert_names_field(refused.value.problems, case)

    def reached(self, *args, **kwargs):
        raise AssertionError(f"{type(self).__name__} was built for a stack placement refuses")

    monkeypatch.setattr(CloudDeployment, "__init__", reached)
    with pytest.raises(ConfigError) as in_program:
        run_offline(raw(case, tmp_path))  # the real program, as `pulumi up` and `plan` run it
    assert in_program.value.problems == refused.value.problems


@pytest.mark.parametrize("case", [c for c in CASES if c.trait in ("base_images", "managed_tls", "alarms")], ids=str)
def test_placement_itself_refuses_what_no_offer_could_build(case, tmp_path):
    with pytest.raises(ConfigError) as refused:
        place(parse_config(raw(case, tmp_path)))
    assert_names_field(refused.value.problems, case)


def test_oversized_user_data_exits_2_from_env_before_any_pulumi_command(cli, stack_file, tmp_path, monkeypatch):
    """`env up`/`env preview` check what `validate` checks, so bad input never reaches `pulumi up` (which exits 1)."""
    monkeypatch.setenv("PATH", str(tmp_path))  # no Pulumi CLI: a check that passed would fail with exit 1
    (case,) = [c for c in CASES if c.cloud is clouds.AWS and c.trait == "user_data_limit"]
    path = stack_file(case.values(tmp_path), name="refused")
    result = cli("env", "preview", "--stack", "pr-1", "--config", str(path), "--project-dir", str(ROOT))
    assert result.code == 2, result.stderr
    assert re.search(r": sshPublicKeys: node group '[\w-]+': user-data is \d+ bytes as sent; aws accepts 16384", result.stderr)
    assert "Traceback" not in result.stderr


# Record fields that no component refuses by: facts the code reads (where, and what it does with them).
FACTS = {
    "name": "stack files, catalogs and priceOverrides spell the cloud so (config, catalog)",
    "deployment": "components.stack.deployment_class imports it; offline_module is its package's offline.py",
    "gzip_user_data": "how bootstrap measures the user-data against user_data_limit (a case above)",
    "spot": "Cloud.spot_problem: placement finds no offer for spotPolicy spot/auto on a cloud without spot (tests/test_spot.py)",
    "regions": "where the catalog's regions come from (catalog build, README)",
    "credentials": "env matrix and missing_credentials (infra/cli/environments.py)",
    "root_disk": "infra/node_storage.py's disk model",
    "bandwidth_limit": "infra/node_storage.py caps a node's downloads",
    "instance_type_inputs": "the policy pack's catalog-instance-types check (policy/llm_deploy_policies.py)",
    "offers": "placement places on the catalog's offers or on the stack's hosts (infra/onprem.py, tests/test_onprem.py)",
    "delivery": "which packages have delivery.py, the SSH transport (tests/test_component_shape.py)",
    "rollout_gate": "which cloud packages hold rollout.py (tests/test_component_shape.py); no stack key asks for it",
    "auto_on_demand_nodes": "components/aws/layout.py on_demand_base and infra/cost.py policy_hourly_usd: the on-demand nodes of an auto group",
    "metadata": "node.env's LLM_DEPLOY_METADATA_* / NOTICE_*: the node's drain watcher polls it (bootstrap/render.py)",
    "metrics_agent": "which agent script and configuration bootstrap ships to publish the services' metrics (bootstrap/render.py)",
}


def test_every_record_field_is_a_refused_trait_or_a_read_fact():
    traits = {case.trait for case in CASES}
    fields = {f.name for f in dataclasses.fields(Cloud)}
    assert fields - traits - set(FACTS) == set(), "a new record field: add its refusal case, or say who reads it"
    assert set(FACTS) <= fields
    assert {"base_images", "managed_tls", "user_data_limit", "secret_store"} <= traits  # each is some cloud's limit


def test_the_project_file_offers_every_cloud():
    """Pulumi.yaml's `cloud` key, which `pulumi config` shows, lists the records' names in their order."""
    described = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]["cloud"]["description"]
    assert described.startswith(" | ".join((*clouds.TARGETS, "auto")))


def _cloud_name_branches(path: Path) -> list[str]:
    """`x == "aws"`, `("aws", "alicloud")` and `{"aws": ...}` in a module: a difference that belongs in the record."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Compare):
            constants = [node.left, *node.comparators]
        elif isinstance(node, ast.Tuple | ast.List | ast.Set):
            constants = node.elts
        elif isinstance(node, ast.Dict):
            constants = [k for k in node.keys if k is not None]
        else:
            continue
        found += [f"{path.relative_to(ROOT)}:{node.lineno}" for c in constants
                  if isinstance(c, ast.Constant) and c.value in clouds.NAMES]
    return found


def test_no_code_branches_on_a_cloud_name():
    modules = [p for top in ("infra", "bootstrap", "components") for p in (ROOT / top).rglob("*.py")
               if p != ROOT / "infra" / "clouds.py"]
    assert [hit for p in modules for hit in _cloud_name_branches(p)] == []

"""`cloud: onprem`: the stack's hosts, their pinned keys, placement onto their GPUs, and cost beside the clouds."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from infra import ssh
from infra.config import RawConfig, parse_config
from infra.cost import cost_preview
from infra.errors import ConfigError
from infra.onprem import gpu_from_smi, pinned_keys
from infra.placement import evaluate, place
from infra.plan import Host
from tests.helpers import ROOT, SSH_KEY

HOST_KEY = SSH_KEY.rsplit(" ", 1)[0]  # an ed25519 public key as a host key: "ssh-ed25519 AAAA..."
LLM_32B = {"name": "llm", "kind": "llm", "model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "maxModelLen": 8192}
ENCODERS = [
    {"name": "embedding", "kind": "embedding", "model": "intfloat/multilingual-e5-large-instruct"},
    {"name": "rerank", "kind": "rerank", "model": "BAAI/bge-reranker-large"},
]


def known(*addresses: str) -> list[str]:
    return [f"{a} {HOST_KEY}" for a in addresses]


def onprem(**values) -> RawConfig:
    base = {
        "cloud": "onprem",
        "hosts": [{"address": "10.0.0.11", "user": "ubuntu", "gpu": "L40S", "gpuCount": 2},
                  {"address": "10.0.0.12", "user": "ubuntu", "gpu": "L40S", "gpuCount": 2}],
        "sshKnownHosts": known("10.0.0.11", "10.0.0.12"),
        "services": [LLM_32B, *ENCODERS],
    }
    secret = {"sshPrivateKey", "tlsCertificate", "tlsPrivateKey"} & set(values)
    return RawConfig("onprem-test", "tests/Pulumi.onprem-test.yaml", base | values, secret_keys=secret)


def problems_of(raw: RawConfig) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as error:
        place(parse_config(raw))
    return [(p.field, p.message) for p in error.value.problems]


def test_placement_takes_the_fewest_gpus_on_owned_hosts_with_none_idle():
    """The 32B model across both L40S of a host (tensor parallel 2), the encoders beside it: one host of two."""
    plan = place(parse_config(onprem()))
    assert plan.cloud == "onprem" and plan.region == "onprem"
    assert [(g.name, g.offer.instance_type, [h.address for h in g.hosts]) for g in plan.node_groups] == [
        ("llm-embedding-rerank", "2xL40S", ["10.0.0.11"])]
    assert plan.node_groups[0].services[0].tensor_parallel_size == 2  # no idle GPU on its host
    assert plan.hourly_usd == 0  # owned
    assert plan.onprem is not None and plan.onprem.endpoint_host.address == "10.0.0.11"


def test_replicas_take_a_host_each_and_a_host_is_used_once():
    two = place(parse_config(onprem(services=[LLM_32B | {"replicas": 2}, *ENCODERS])))
    assert [(g.count, [h.address for h in g.hosts]) for g in two.node_groups] == [(2, ["10.0.0.11", "10.0.0.12"])]
    raw = onprem(services=[LLM_32B | {"replicas": 3}, *ENCODERS])
    assert problems_of(raw) == [("hosts", "the services need 3 hosts of 2xL40S (the stack has 2): each host serves one node")]


def test_the_memory_rule_refuses_a_host_too_small_naming_the_model():
    raw = onprem(hosts=[{"address": "10.0.0.11", "gpu": "L4", "gpuCount": 1}], sshKnownHosts=known("10.0.0.11"))
    assert problems_of(raw)[0][0] == "services[0].model"


def test_hourly_usd_prices_a_host_and_placement_prefers_the_hosts_that_cost_less():
    raw = onprem(services=[LLM_32B | {"replicas": 2}, *ENCODERS],
                 hosts=[{"address": "a.lan", "gpu": "L40S", "gpuCount": 2, "hourlyUsd": 3.0},
                        {"address": "b.lan", "gpu": "L40S", "gpuCount": 2, "hourlyUsd": 1.0},
                        {"address": "c.lan", "gpu": "L40S", "gpuCount": 2, "hourlyUsd": 1.0}],
                 sshKnownHosts=known("a.lan", "b.lan", "c.lan"))
    plan = place(parse_config(raw))
    assert sorted(h.address for g in plan.node_groups for h in g.hosts) == ["b.lan", "c.lan"]
    assert [g.offer.instance_type for g in plan.node_groups] == ["2xL40S-1usd"]  # a service's replicas: hosts of one price
    assert plan.hourly_usd == 2.0


def test_cost_shows_the_hosts_beside_the_cheapest_cloud_for_the_same_services():
    preview = cost_preview(evaluate(parse_config(onprem())))
    totals = {c["cloud"]: c for c in preview.as_json()["by_cloud"]}
    assert list(totals) == ["aws", "digitalocean", "alicloud", "onprem"]
    assert totals["onprem"]["total_hourly_usd"] == 0 and totals["onprem"]["instance_types"] == ["2xL40S"]
    clouds = [c for name, c in totals.items() if name != "onprem" and c["feasible"]]
    assert clouds and all(c["total_hourly_usd"] > 0 for c in clouds)
    record = preview.as_json()["services"][0]["chosen"]
    assert record["cloud"] == "onprem" and "owned, 0 $/h" in record["price_note"]


def test_the_readme_stack_costs_its_hosts_beside_the_cheapest_cloud_as_the_readme_shows(cli, tmp_path, monkeypatch):
    """README "Your own servers": its stack file, `llm-deploy cost` on it printing the lines the README shows. Its
    first host names no GPU: read over SSH, which is the one thing answered here as that host's nvidia-smi would."""
    section = (ROOT / "README.md").read_text().split("## Your own servers", 1)[1].split("\n## ", 1)[0]
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks/Pulumi.lab.yaml").write_text(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    monkeypatch.chdir(tmp_path)  # the README's `--stack lab`: stacks/Pulumi.lab.yaml
    read = []

    def nvidia_smi(host, access):
        read.append(host.address)
        return gpu_from_smi("NVIDIA L40S, 46068\nNVIDIA L40S, 46068\n")

    monkeypatch.setattr(ssh, "read_gpus", nvidia_smi)
    result = cli("cost", "--stack", "lab")
    assert result.code == 0, result.stderr
    shown = section.split("$ llm-deploy cost --stack lab\n...\n", 1)[1].split("```", 1)[0].splitlines()
    printed = result.stdout.splitlines()
    assert all(line in printed for line in shown), [line for line in shown if line not in printed]
    document = json.loads(cli("cost", "--stack", "lab", "--format", "json").stdout)
    clouds = [c for c in document["by_cloud"] if c["cloud"] != "onprem" and c["feasible"]]
    cheapest = min(clouds, key=lambda c: c["total_hourly_usd"])
    hosts = next(line for line in printed if line.startswith("Your hosts: "))
    assert f"the cheapest cloud for the same services: {cheapest['cloud']} {cheapest['region']} {cheapest['total_hourly_usd']:.2f} $/h" in hosts
    assert read == ["10.0.0.11", "10.0.0.11"]  # once a run: the other host names its GPUs


@pytest.mark.parametrize("values, field", [
    ({"sshKnownHosts": known("10.0.0.11")}, "sshKnownHosts"),  # 10.0.0.12 not pinned
    ({"sshKnownHosts": []}, "sshKnownHosts"),
    ({"hosts": []}, "hosts"),
    ({"endpointHost": "10.0.0.99"}, "endpointHost"),
    ({"tlsCertificate": "-----BEGIN CERTIFICATE-----"}, "tlsPrivateKey"),
    ({"sshKnownHosts": ["@cert-authority *.lan " + HOST_KEY]}, "sshKnownHosts[0]"),
    ({"hosts": [{"address": "10.0.0.11", "gpu": "L40S", "gpuCount": 2, "password": "x"}]}, "hosts[0].password"),
])  # fmt: skip
def test_refusals_name_the_field(values, field):
    assert field in [f for f, _ in problems_of(onprem(**values))]


def test_onprem_keys_are_refused_on_a_cloud():
    raw = RawConfig("t", "tests/t.yaml", {"cloud": "aws", "hosts": [{"address": "10.0.0.11"}]})
    assert [f for f, _ in problems_of(raw)] == ["hosts"]


def test_a_host_off_port_22_is_pinned_as_bracketed_address_and_port_and_hashed_names_match():
    salt = b"0123456789abcdefghij"
    digest = hmac.new(salt, b"[10.0.0.11]:2222", hashlib.sha1).digest()
    hashed = f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()} {HOST_KEY}"
    assert pinned_keys("10.0.0.11", 2222, [hashed]) == [tuple(HOST_KEY.split())]
    assert pinned_keys("10.0.0.11", 22, [hashed]) == []
    assert pinned_keys("10.0.0.11", 2222, [f"10.0.0.11 {HOST_KEY}"]) == []


def test_gpus_read_with_nvidia_smi_name_the_catalog_gpu_by_name_and_memory():
    assert gpu_from_smi("NVIDIA L40S, 46068\nNVIDIA L40S, 46068\n") == ("L40S", 2)
    assert gpu_from_smi("NVIDIA A100-SXM4-80GB, 81920\n") == ("A100-80GB", 1)
    assert gpu_from_smi("NVIDIA A100-PCIE-40GB, 40960\n") == ("A100", 1)
    assert gpu_from_smi("NVIDIA H100 80GB HBM3, 81559\n") == ("H100", 1)
    assert gpu_from_smi("") == (None, 0)
    with pytest.raises(ValueError, match="mixed GPUs"):
        gpu_from_smi("NVIDIA L4, 23034\nNVIDIA L40S, 46068\n")


def test_hosts_without_gpu_are_read_by_the_detector_and_a_failed_read_names_the_host_field():
    raw = onprem(hosts=[{"address": "10.0.0.11"}, {"address": "10.0.0.12"}])
    found = evaluate(parse_config(raw), detect=lambda host: ("L40S", 2))
    assert found.plan is not None and [g.offer.instance_type for g in found.plan.node_groups] == ["2xL40S"]

    def unreachable(host):
        raise OSError(f"{host.label}: cannot connect: timed out")

    failed = evaluate(parse_config(raw), detect=unreachable)
    assert [(p.field, "timed out" in p.message) for p in failed.problems][:2] == [("hosts[0].gpu", True), ("hosts[1].gpu", True)]


def test_a_host_no_sshd_answers_is_an_ssh_error_naming_it():
    with pytest.raises(ssh.SshError, match=r"\[127.0.0.1\]:1: cannot connect"):
        ssh.connect(Host("127.0.0.1", "root", 1), ssh.Access((f"[127.0.0.1]:1 {HOST_KEY}",)), timeout=2)


def test_a_known_hosts_line_whose_key_is_not_of_its_type_is_refused():
    problems = problems_of(onprem(sshKnownHosts=["10.0.0.11 ssh-ed25519 AAAA", *known("10.0.0.12")]))
    assert problems[0][0] == "sshKnownHosts[0]" and "not a ssh-ed25519 key" in problems[0][1]


def test_preflight_without_an_ssh_agent_says_what_it_could_not_check(monkeypatch):
    from infra.cli import preflight

    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    result = preflight.run(place(parse_config(onprem(imageRegistry="registry.lan:5000", modelSource={"path": "/srv/models"}))))
    assert result.exit_code == 0
    (check,) = result.checks
    assert check.status == "not checked" and "image mirror" in check.detail and "staged models" in check.detail

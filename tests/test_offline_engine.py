"""The offline engine is as strict as the real one about URNs, and the components name resources uniquely.

The real Pulumi engine refuses a program that registers two resources with the same URN (same type,
name and parent type); the mock engine used to keep the last one silently, so name collisions only
showed at `pulumi up`.
"""

from __future__ import annotations

import pulumi
import pytest

from infra.cli.offline import CloudFakes, DuplicateUrnError, RecordingMocks, UniqueUrnMonitor, run_offline
from tests.helpers import LLM, SSH_KEY, raw_config


def _run(program) -> None:
    mocks = RecordingMocks(CloudFakes.load())
    pulumi.runtime.set_mocks(mocks, project="llm-deploy", stack="urn-test", preview=False, monitor=UniqueUrnMonitor(mocks))
    pulumi.runtime.mocks.test(program)()


def test_the_engine_refuses_two_resources_with_one_urn():
    import pulumi_random

    def program():
        pulumi_random.RandomPassword("api-key", length=40)
        pulumi_random.RandomPassword("api-key", length=40)
        return pulumi.Output.from_input(None)

    with pytest.raises(DuplicateUrnError, match="Duplicate resource URN .*RandomPassword::api-key"):
        _run(program)


def test_the_same_name_under_another_type_is_not_a_duplicate():
    import pulumi_random

    def program():
        pulumi_random.RandomPassword("same", length=8)
        pulumi_random.RandomString("same", length=8)
        return pulumi.Output.from_input(None)

    _run(program)


def _urns(result) -> list[tuple[str, str]]:
    return [(r["type"], r["name"]) for r in result.resources]


def test_a_digitalocean_service_named_nodes_does_not_collide_with_the_stack_tag():
    """The stack's droplet tag was `<stack>-nodes`, a node group's tag `<stack>-<group>`: a service `nodes` made both one."""
    raw = raw_config("do-nodes", {"cloud": "digitalocean", "region": "tor1", "services": [{**LLM, "name": "nodes"}]})
    result = run_offline(raw)
    tags = [name for typ, name in _urns(result) if typ == "digitalocean:index/tag:Tag"]
    assert len(tags) == len(set(tags)) == 2, tags


def test_alicloud_ssh_cidrs_that_clean_to_one_name_get_a_rule_each():
    """`1::2/128` and `1:2::/128` are different networks, but both became the rule name `...-ssh-1-2-128`."""
    raw = raw_config("ali-ssh", {"cloud": "alicloud", "region": "ap-southeast-1", "services": [LLM],
                                 "sshCidrs": ["1::2/128", "1:2::/128"], "sshPublicKeys": [SSH_KEY]})
    result = run_offline(raw)
    rules = [r for r in result.resources if r["type"] == "alicloud:ecs/securityGroupRule:SecurityGroupRule"
             and r["inputs"].get("portRange") == "22/22"]
    assert sorted(r["inputs"]["ipv6CidrIp"] for r in rules) == ["1:2::/128", "1::2/128"]


def test_one_network_written_two_ways_is_one_rule():
    raw = raw_config("ali-ssh-same", {"cloud": "alicloud", "region": "ap-southeast-1", "services": [LLM],
                                      "sshCidrs": ["10.0.0.0/8", "10.0.0.0/255.0.0.0", "10.0.0.0/8"], "sshPublicKeys": [SSH_KEY]})
    result = run_offline(raw)
    rules = [r for r in result.resources if r["type"] == "alicloud:ecs/securityGroupRule:SecurityGroupRule"
             and r["inputs"].get("portRange") == "22/22"]
    assert [r["inputs"]["cidrIp"] for r in rules] == ["10.0.0.0/8"]


def test_node_groups_whose_service_names_join_alike_get_distinct_names():
    """Group names join the service names: [ab, cd] and [ab-cd] both made `ab-cd`."""
    from infra.config import parse_config
    from infra.placement import place

    raw = raw_config("groups", {"cloud": "aws", "region": "us-east-1", "services": [
        {**LLM, "name": "ab-cd"},
        {"name": "ab", "kind": "embedding", "model": "intfloat/multilingual-e5-large-instruct", "accelerator": "cpu"},
        {"name": "cd", "kind": "rerank", "model": "BAAI/bge-reranker-base", "accelerator": "cpu"},
    ]})
    plan = place(parse_config(raw))
    assert [[s.name for s in g.services] for g in plan.node_groups] == [["ab-cd"], ["ab", "cd"]]
    names = [g.name for g in plan.node_groups]
    assert len(names) == len(set(names)), names
    run_offline(raw)

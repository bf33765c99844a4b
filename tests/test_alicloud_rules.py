"""Alibaba Cloud ALB forwarding rules, in the offline plan: one per service, priorities unique on the listener
(ALB refuses two rules of one priority) and keyed by the service, so adding a service in front of the others
or reordering them leaves the other rules' priorities (and so their resources) as they were."""

from __future__ import annotations

from infra.cli.offline import run_offline
from tests.helpers import of_type, raw_config

RULE = "alicloud:alb/rule:Rule"
LLM = {"name": "chat", "kind": "llm", "model": "Qwen/Qwen2.5-7B-Instruct", "maxModelLen": 8192}
EMBEDDING = {"name": "embed", "kind": "embedding", "model": "intfloat/multilingual-e5-large-instruct"}
RERANK = {"name": "rank", "kind": "rerank", "model": "BAAI/bge-reranker-base"}


def rules(*services: dict) -> dict[str, dict]:
    """Rule resource name → its inputs, for a stack serving these services in this order."""
    raw = raw_config("ali-rules", {"cloud": "alicloud", "region": "ap-southeast-1", "services": list(services)})
    return {r["name"]: r["inputs"] for r in of_type(run_offline(raw), RULE)}


def priorities(found: dict[str, dict]) -> dict[str, int]:
    return {name: inputs["priority"] for name, inputs in found.items()}


def test_every_service_has_one_rule_and_priorities_are_unique():
    found = rules(LLM, EMBEDDING, RERANK)
    assert len(found) == 3
    assert len(set(priorities(found).values())) == 3
    assert all(1 <= p <= 10_000 for p in priorities(found).values())  # ALB's range (the SDK's docs)


def test_adding_a_service_in_front_keeps_the_other_rules_priorities():
    before = rules(LLM, RERANK)
    after = rules(EMBEDDING, LLM, RERANK)
    assert set(after) == set(before) | {next(n for n in after if n not in before)}
    for name, priority in priorities(before).items():
        assert priorities(after)[name] == priority
        assert after[name] == before[name]  # the same rule, untouched: no update, no replacement
    assert len(set(priorities(after).values())) == 3


def test_reordering_services_changes_no_rule():
    assert rules(RERANK, EMBEDDING, LLM) == rules(LLM, EMBEDDING, RERANK)

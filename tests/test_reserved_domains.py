"""`domain` refuses the names reserved for documentation and testing (RFC 2606, RFC 6761): no certificate
authority issues a certificate for them, so ACM's validation would wait and fail while the nodes bill."""

from __future__ import annotations

import pytest

from infra.config import parse_config, reserved_domain
from infra.errors import ConfigError, Problem
from tests.helpers import raw_config

REFUSED = {
    "example.com": "example.com", "llm.example.com": "example.com", "a.b.example.net": "example.net", "example.org": "example.org",
    "api.staging.test": ".test", "llm.test.example": ".example", "gpu.invalid": ".invalid", "llm.localhost": ".localhost",
}
ACCEPTED = ["llm.acme-inference.io", "myexample.com", "example.com.au", "example.co", "llm.testing.dev", "examples.org",
            "test.acme.io", "invalid.acme.io"]


@pytest.mark.parametrize("domain", list(REFUSED))
def test_a_reserved_domain_is_refused_naming_domain_and_the_reserved_name(domain):
    assert reserved_domain(domain) == REFUSED[domain]
    with pytest.raises(ConfigError) as error:
        parse_config(raw_config("reserved", {"cloud": "aws", "domain": domain}))
    assert error.value.problems == [Problem(
        "tests/reserved", "domain", f"{domain} is under {REFUSED[domain]}, a name reserved by RFC 2606/6761: no certificate can "
        "be issued for it", "set a domain you control, or remove domain to serve plain HTTP on the load balancer's address")]


@pytest.mark.parametrize("domain", ACCEPTED)
def test_a_name_that_only_looks_reserved_is_accepted(domain):
    assert reserved_domain(domain) is None
    assert parse_config(raw_config("own", {"cloud": "aws", "domain": domain})).domain == domain

"""`llm-deploy preflight` (and `env up`/`env preview`, which run it before anything is created) against the
clouds' APIs as they answer: AWS EC2 through moto (instance type offerings per zone from its recorded EC2 data,
running instances and their types), Service Quotas through botocore's Stubber (moto serves no EC2 quota:
GetServiceQuota answers NoSuchResource for every code and GetAWSDefaultServiceQuota is not implemented), and a
stub of DigitalOcean's API and Alibaba Cloud's signed ECS RPC on 127.0.0.1, as strict as the real ones (the bearer
token; the exact signature). Without credentials: what could not be checked, exit 0."""

from __future__ import annotations

import dataclasses
import importlib
import json
import urllib.parse
from typing import ClassVar

import pytest

from infra import clouds
from infra.catalog import read_catalog
from infra.cli import environments, preflight
from infra.config import load_raw, parse_config
from infra.placement import evaluate
from tests.alicloud_api import signed_params
from tests.helpers import ALI_KEY, ALI_SECRET, DO_TOKEN, ROOT, JsonStub, moto_account, stub_api

boto3 = pytest.importorskip("boto3", reason="boto3 is the `refresh` extra; scripts/test.sh installs it")
moto = pytest.importorskip("moto", reason="moto is a dev dependency; scripts/test.sh installs it")
from botocore.stub import Stubber

P_QUOTA, G_QUOTA = "L-417A185B", "L-DB2E81BA"


def plan_of(stack: str, **changes):
    """The shipped stack's plan, with these keys changed."""
    raw = load_raw(stack, None, ROOT / "stacks")
    raw.values.update(changes)
    evaluation = evaluate(parse_config(raw))
    assert evaluation.plan is not None, evaluation.problems
    return evaluation.plan


# --- AWS -----------------------------------------------------------------------------------------


class Aws:
    """moto's EC2 and a Stubber'd Service Quotas client behind the session preflight asks for."""

    def __init__(self, region: str) -> None:
        self.session = boto3.Session(region_name=region)
        self.quotas = self.session.client("service-quotas", region_name=region)
        self.stubber = Stubber(self.quotas)
        self.ec2 = self.session.client("ec2", region_name=region)

    def client(self, service: str, region_name: str | None = None, **kwargs):
        if service == "service-quotas":
            assert region_name == self.quotas.meta.region_name  # quotas are per region: the stack's
            return self.quotas
        return self.session.client(service, region_name=region_name, **kwargs)

    def quota(self, code: str, value: float, changed: bool = True) -> None:
        """The account's quota: applied (GetServiceQuota), or never changed (NoSuchResource, then the default)."""
        answer = {"Quota": {"ServiceCode": "ec2", "QuotaCode": code, "QuotaName": code, "Value": value, "Unit": "None"}}
        expected = {"ServiceCode": "ec2", "QuotaCode": code}
        if changed:
            self.stubber.add_response("get_service_quota", answer, expected)
        else:
            self.stubber.add_client_error("get_service_quota", "NoSuchResourceException", "The request failed because "
                                          "the specified service does not exist.", expected_params=expected)
            self.stubber.add_response("get_aws_default_service_quota", answer, expected)

    def run(self, instance_type: str, count: int = 1, stack: str | None = None) -> None:
        image = self.ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        tags = [{"ResourceType": "instance", "Tags": [{"Key": "llm-deploy:stack", "Value": stack}]}] if stack else []
        self.ec2.run_instances(ImageId=image, InstanceType=instance_type, MinCount=count, MaxCount=count, TagSpecifications=tags)


@pytest.fixture
def aws(monkeypatch, no_credentials):
    with moto_account(monkeypatch, lambda: Aws("us-east-1")) as fake, fake.stubber:
        yield fake
        fake.stubber.assert_no_pending_responses()  # every stubbed quota was asked for


def by(result: preflight.Preflight) -> dict[tuple[str, str], preflight.Check]:
    return {(c.subject, c.check): c for c in result.checks}


def test_aws_reports_the_zones_offering_each_type_and_the_p_quota_against_what_is_free(aws):
    aws.quota(P_QUOTA, 64)
    aws.run("p5.4xlarge", stack="prod")  # prod's own node: an update keeps or replaces it, so it is not counted
    aws.run("p4d.24xlarge")  # someone else's, on the same quota: its 96 vCPUs leave nothing of 64
    result = preflight.run(plan_of("prod"))
    checks = by(result)
    offering = checks[("llm-embedding-rerank", "offering")]
    assert offering.status == preflight.OK
    assert offering.zones == tuple(f"us-east-1{z}" for z in "abcdef")  # moto's EC2 data for p5.4xlarge
    quota = checks[("llm-embedding-rerank", f"vCPU quota {P_QUOTA}")]
    assert (quota.status, quota.needed, quota.available) == (preflight.FAILED, 32, 64 - 96)
    assert "2 x p5.4xlarge need 32 vCPUs; Running On-Demand P instances: 64, 96 held by other running instances" in quota.detail
    assert result.exit_code == 2


def test_aws_quota_with_room_passes_and_a_never_changed_quota_is_read_from_the_default(aws):
    aws.quota(P_QUOTA, 48, changed=False)
    aws.run("g5.xlarge")  # another family, another quota: not counted against P
    aws.run("p5.4xlarge", stack="staging")  # another llm-deploy stack's node is someone else's
    result = preflight.run(plan_of("prod"))
    quota = by(result)[("llm-embedding-rerank", f"vCPU quota {P_QUOTA}")]
    assert (quota.status, quota.needed, quota.available) == (preflight.OK, 32, 48 - 16)
    assert result.exit_code == 0 and not result.failed


def test_aws_groups_on_one_quota_are_counted_together(aws):
    """dev: g6.xlarge (llm, embedding) and g4dn.xlarge (rerank) both draw on the G and VT quota: 4 + 4 vCPUs."""
    aws.quota(G_QUOTA, 8)
    aws.run("g5.xlarge")  # 4 vCPUs held by another instance: 4 left, 8 needed
    result = preflight.run(plan_of("dev"))
    checks = by(result)
    groups = sorted(g for g, c in checks if c == f"vCPU quota {G_QUOTA}")
    assert groups == ["llm-embedding", "rerank"]
    for group, other in zip(groups, reversed(groups)):
        check = checks[(group, f"vCPU quota {G_QUOTA}")]
        assert (check.status, check.needed, check.available) == (preflight.FAILED, 8, 4)
        assert f"need 4 vCPUs; 8 with {other}" in check.detail
    assert len(result.problems()) == 2 and all(f"vCPU quota {G_QUOTA}" in line for line in result.problems())


def with_fallbacks(plan, kind: str, *instance_types: str):
    """The plan with the group serving `kind` given these catalog types of its region as fallback offers."""
    group = plan.group_serving(kind)
    offers = {(o.instance_type, o.region): o for o in read_catalog() if o.cloud == "aws"}
    fallbacks = tuple(dataclasses.replace(offers[t, "us-east-1"], region=group.region) for t in instance_types)
    changed = dataclasses.replace(group, fallback_offers=fallbacks)
    return dataclasses.replace(plan, node_groups=tuple(changed if g is group else g for g in plan.node_groups)), changed


@pytest.mark.parametrize("fallbacks", [(), ("g6.2xlarge",)])
def test_aws_a_type_the_region_does_not_offer_fails_naming_the_node_group(aws, fallbacks):
    """g6 is not offered in eu-west-1 (moto's EC2 data, FACTS.md): the account could not launch the group there,
    nor fall back to another g6 size."""
    aws.quotas = aws.session.client("service-quotas", region_name="eu-west-1")
    aws.stubber = Stubber(aws.quotas)
    aws.ec2 = aws.session.client("ec2", region_name="eu-west-1")
    plan = plan_of("dev", region="eu-west-1")
    llm = plan.group_serving("llm")
    moved = dataclasses.replace(llm, offer=dataclasses.replace(llm.offer, instance_type="g6.xlarge", region="eu-west-1"))
    plan = dataclasses.replace(plan, node_groups=tuple(moved if g is llm else g for g in plan.node_groups))
    plan, _ = with_fallbacks(plan, "llm", *fallbacks)
    aws.quota(G_QUOTA, 64)
    with aws.stubber:
        result = preflight.run(plan)
    offering = by(result)[(llm.name, "offering")]
    assert offering.status == preflight.FAILED and offering.zones == ()
    also = " nor are its fallback types g6.2xlarge" if fallbacks else ""
    assert offering.detail.startswith(f"g6.xlarge is not offered in any zone of eu-west-1{also} (DescribeInstanceTypeOfferings)")
    for fallback in fallbacks:
        check = by(result)[(llm.name, f"fallback {fallback}")]
        assert check.status == preflight.OK and check.zones == () and "does not fall back to it here" in check.detail
    assert by(result)[("rerank", "offering")].status == preflight.OK
    assert result.problems()[0].startswith(f"preflight: dev: {llm.name}: offering: g6.xlarge is not offered")


def test_aws_reports_the_zones_of_each_fallback_type_too(aws):
    """dev's LLM group on g6.xlarge with g6.2xlarge and g6.4xlarge (one L4 each) to fall back to: moto's us-east-1
    offers all three in five zones."""
    plan, llm = with_fallbacks(plan_of("dev"), "llm", "g6.2xlarge", "g6.4xlarge")
    aws.quota(G_QUOTA, 64)
    checks = by(preflight.run(plan))
    zones = tuple(f"us-east-1{z}" for z in "abcdf")
    assert checks[(llm.name, "offering")].zones == zones
    for fallback in ("g6.2xlarge", "g6.4xlarge"):
        check = checks[(llm.name, f"fallback {fallback}")]
        assert (check.status, check.zones) == (preflight.OK, zones)
        assert check.detail == f"{fallback} offered in 5 zone(s): {', '.join(zones)}"
    for group in plan.node_groups:  # one check per fallback offer, no more
        assert {c for s, c in checks if s == group.name and c.startswith("fallback")} == {
            f"fallback {o.instance_type}" for o in group.fallback_offers}


def test_aws_a_group_whose_own_type_is_not_offered_launches_a_fallback():
    from infra.cli.preflight.aws import _offering

    _, llm = with_fallbacks(plan_of("dev"), "llm", "g6.2xlarge", "g6.4xlarge")
    offered = {"g6.4xlarge": {"us-east-1c", "us-east-1a"}}  # as DescribeInstanceTypeOfferings' zones would read
    check = _offering(llm, offered, "us-east-1")
    assert (check.status, check.zones) == (preflight.OK, ("us-east-1a", "us-east-1c"))
    assert check.detail == ("g6.xlarge is not offered in any zone of us-east-1; the group launches its fallback types there, "
                            "in 2 zone(s): us-east-1a, us-east-1c")


def test_aws_a_refused_quota_call_is_not_checked_and_does_not_fail(aws):
    aws.stubber.add_client_error("get_service_quota", "AccessDeniedException", "User is not authorized to perform "
                                 "servicequotas:GetServiceQuota", expected_params={"ServiceCode": "ec2", "QuotaCode": P_QUOTA})
    result = preflight.run(plan_of("prod"))
    quota = by(result)[("llm-embedding-rerank", f"vCPU quota {P_QUOTA}")]
    assert quota.status == preflight.NOT_CHECKED and "AccessDeniedException" in quota.detail
    assert result.exit_code == 0


def test_cli_exit_2_names_the_node_group_and_json_has_every_check(cli, aws):
    aws.quota(P_QUOTA, 16)
    result = cli("preflight", "--stack", "prod", "--format", "json")
    assert result.code == 2
    document = json.loads(result.stdout)
    assert document["ok"] is False and (document["stack"], document["cloud"], document["region"]) == ("prod", "aws", "us-east-1")
    assert [(c["subject"], c["check"], c["status"]) for c in document["checks"]] == [
        ("llm-embedding-rerank", "offering", "ok"), ("llm-embedding-rerank", f"vCPU quota {P_QUOTA}", "failed")]
    assert result.stderr.splitlines() == [
        (f"preflight: prod: llm-embedding-rerank: vCPU quota {P_QUOTA}: 2 x p5.4xlarge need 32 vCPUs; Running On-Demand "
        f"P instances: 16, 0 held by other running instances, 16 available: request an increase of {P_QUOTA} in Service Quotas")]


# --- without credentials -------------------------------------------------------------------------


@pytest.mark.parametrize(("stack", "cloud", "unchecked"), [
    ("prod", "aws", "Service Quotas"), ("staging", "digitalocean", "/v2/account"), ("alicloud-dev", "alicloud", "DescribeAvailableResource")])
def test_without_credentials_it_says_what_it_could_not_check_and_exits_0(cli, no_credentials, stack, cloud, unchecked):
    result = cli("preflight", "--stack", stack, "--format", "json")
    assert result.code == 0, result.stderr
    (check,) = json.loads(result.stdout)["checks"]
    assert (check["subject"], check["check"], check["status"]) == ("account", "credentials", "not checked")
    assert check["detail"].startswith(f"{cloud}: no ") and unchecked in check["detail"]
    table = cli("preflight", "--stack", stack)
    assert table.code == 0 and table.stdout.rstrip().endswith(": ok (1 not checked)")


def test_bad_config_exits_2_before_asking_any_cloud(cli, stack_file):
    path = stack_file({"cloud": "aws", "domain": "llm.example.com"})
    result = cli("preflight", "--config", str(path))
    assert result.code == 2 and f"{path}: domain: llm.example.com is under example.com" in result.stderr


# --- DigitalOcean and Alibaba Cloud: a stub of their APIs -----------------------------------------


class Api(JsonStub):
    """DigitalOcean's `/v2/...` (bearer token) and Alibaba Cloud's ECS RPC (signed), answering what a test sets."""

    sizes: ClassVar[list[dict]] = []
    droplet_limit: ClassVar[int] = 25
    droplets: ClassVar[list[dict]] = []
    domains: ClassVar[set[str]] = set()
    stock: ClassVar[dict[str, list[str]]] = {}  # Alibaba instance type -> zones with stock
    calls: ClassVar[list[str]] = []

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith("/v2/"):
            self.digitalocean(url)
        else:
            self.alicloud(url)

    def digitalocean(self, url) -> None:
        if self.headers.get("Authorization") != f"Bearer {DO_TOKEN}":
            self._json(401, {"id": "Unauthorized", "message": "Unable to authenticate you"})
            return
        self.calls.append(url.path)
        page = int(dict(urllib.parse.parse_qsl(url.query)).get("page", "1"))
        if url.path == "/v2/sizes":
            self._json(200, {"sizes": self.sizes, "links": {}, "meta": {"total": len(self.sizes)}})
        elif url.path == "/v2/account":
            self._json(200, {"account": {"droplet_limit": self.droplet_limit, "status": "active", "email_verified": True}})
        elif url.path == "/v2/droplets":  # two to a page here, so the listing must follow links.pages.next
            chunk = self.droplets[(page - 1) * 2:page * 2]
            more = page * 2 < len(self.droplets)
            links = {"pages": {"next": f"https://api.digitalocean.com/v2/droplets?page={page + 1}&per_page=200"}} if more else {}
            self._json(200, {"droplets": chunk, "links": links, "meta": {"total": len(self.droplets)}})
        elif url.path.startswith("/v2/domains/") and url.path.removeprefix("/v2/domains/") in self.domains:
            name = url.path.removeprefix("/v2/domains/")
            self._json(200, {"domain": {"name": name, "ttl": 1800, "zone_file": f"$ORIGIN {name}.\n"}})
        else:
            self._json(404, {"id": "not_found", "message": "The resource you were accessing could not be found."})

    def alicloud(self, url) -> None:
        params = signed_params(self, url.query, ALI_KEY, ALI_SECRET)
        if params is None:
            return
        assert (params["Action"], params["Version"], params["DestinationResource"], params["InstanceChargeType"]) == (
            "DescribeAvailableResource", "2014-05-26", "InstanceType", "PostPaid")
        self.calls.append(f"{params['Action']} {params['RegionId']} {params['InstanceType']}")
        wanted = params["InstanceType"]
        zones = [{"ZoneId": zone, "RegionId": params["RegionId"], "Status": "Available", "StatusCategory": "WithStock",
                  "AvailableResources": {"AvailableResource": [{"Type": "InstanceType", "SupportedResources": {"SupportedResource": [
                      {"Value": wanted, "Status": "Available", "StatusCategory": "WithStock"}]}}]}}
                 for zone in self.stock.get(wanted, [])]
        sold_out = {"ZoneId": f"{params['RegionId']}b", "RegionId": params["RegionId"], "Status": "Available",
                    "StatusCategory": "WithStock", "AvailableResources": {"AvailableResource": [{"Type": "InstanceType",
                    "SupportedResources": {"SupportedResource": [{"Value": wanted, "Status": "SoldOut", "StatusCategory": "WithoutStock"}]}}]}}
        self._json(200, {"RequestId": "0041D94C", "AvailableZones": {"AvailableZone": [*zones, sold_out]}})


@pytest.fixture
def api(monkeypatch, no_credentials):
    Api.sizes = [{"slug": "gpu-h200x1-141gb", "available": True, "regions": ["atl1", "nyc2"], "price_hourly": 3.44, "vcpus": 24}]
    Api.droplet_limit, Api.droplets, Api.domains, Api.stock, Api.calls = 25, [], set(), {}, []
    with stub_api(monkeypatch, Api):
        yield Api


def droplet(number: int, *tags: str) -> dict:
    return {"id": 3164444 + number, "name": f"d{number}", "status": "active", "tags": list(tags)}


def test_digitalocean_size_droplet_limit_and_domain_pass(api):
    api.domains = {"acme-inference.io"}  # the zone the domain's certificate and A record go into
    api.droplet_limit = 3
    api.droplets = [droplet(1), droplet(2), droplet(3, "staging-nodes-k8f2qz1", "staging-group-llm-x1y2z3a")]
    result = preflight.run(plan_of("staging", domain="llm.acme-inference.io"))
    checks = by(result)
    assert checks[("llm-embedding-rerank", "offering")].status == preflight.OK
    limit = checks[("account", "droplet limit")]
    assert (limit.status, limit.needed, limit.available) == (preflight.OK, 1, 1)  # staging's own droplet is not another's
    assert checks[("domain", "DNS")].detail == "llm.acme-inference.io is in the DigitalOcean DNS zone acme-inference.io"
    assert result.exit_code == 0
    assert api.calls.count("/v2/droplets") == 2  # followed the second page
    assert "/v2/domains/llm.acme-inference.io" in api.calls and "/v2/domains/io" not in api.calls


def test_digitalocean_failures_name_the_node_group_the_account_and_the_domain(api):
    # only in nyc2 it would be ok: `pulumi up` would move the stack there (the tests below)
    api.sizes = [{"slug": "gpu-h200x1-141gb", "available": True, "regions": [], "price_hourly": 3.44, "vcpus": 24}]
    api.droplet_limit = 2
    api.droplets = [droplet(1), droplet(2)]
    result = preflight.run(plan_of("staging", domain="llm.acme-inference.io"))
    assert [(c.subject, c.check) for c in result.failed] == [
        ("llm-embedding-rerank", "offering"), ("region", "capacity"), ("account", "droplet limit"), ("domain", "DNS")]
    problems = [p for p in result.problems() if ": region: capacity: " not in p]
    assert problems[0] == ("preflight: staging: llm-embedding-rerank: offering: gpu-h200x1-141gb is not available in atl1 "
                           "for this account (/v2/sizes: no region (an account without GPU quota sees none))")
    assert problems[1].startswith("preflight: staging: account: droplet limit: 1 droplet(s) needed; droplet limit 2, "
                                  "2 held by other droplets, 0 available")
    assert problems[2].startswith("preflight: staging: domain: DNS: neither llm.acme-inference.io nor a parent domain is in "
                                  "DigitalOcean DNS")
    assert result.exit_code == 2


def test_digitalocean_without_a_domain_asks_no_dns(api):
    result = preflight.run(plan_of("staging"))
    assert ("domain", "DNS") not in by(result) and not any(c.startswith("/v2/domains") for c in api.calls)


def test_digitalocean_a_refused_token_is_not_checked(api, monkeypatch):
    monkeypatch.setenv("DIGITALOCEAN_TOKEN", "dop_v1_" + "0" * 64)
    result = preflight.run(plan_of("staging"))
    assert {c.status for c in result.checks} == {preflight.NOT_CHECKED} and result.exit_code == 0
    assert "401 Unable to authenticate you" in by(result)[("account", "droplet limit")].detail


def test_alicloud_reports_the_zones_with_stock_and_fails_a_sold_out_type(api):
    plan = plan_of("alicloud-dev")
    groups = {g.name: g for g in plan.node_groups}
    llm = next(n for n, g in groups.items() if g.offer.instance_type == "ecs.gn7i-c16g1.4xlarge")
    embedding = next(n for n, g in groups.items() if g.offer.instance_type == "ecs.gn6i-c4g1.xlarge")
    api.stock = {"ecs.gn7i-c16g1.4xlarge": ["ap-southeast-1a", "ap-southeast-1c"]}  # gn6i sold out everywhere, every size
    result = preflight.run(plan)
    checks = by(result)
    assert checks[(llm, "offering")].zones == ("ap-southeast-1a", "ap-southeast-1c")
    assert checks[(embedding, "offering")].status == preflight.FAILED
    listed = ", ".join([g.offer.instance_type for g in [groups[embedding]]] + [o.instance_type for o in groups[embedding].fallback_offers])
    assert groups[embedding].fallback_offers, "the catalog holds other T4 sizes in the region"
    assert result.problems() == [(f"preflight: alicloud-dev: {embedding}: offering: none of {listed} has stock in any zone "
                                 "of ap-southeast-1 (DescribeAvailableResource, pay-as-you-go); choose another region or instance type")]
    every_type = {t.instance_type for g in groups.values() for t in (g.offer, *g.fallback_offers)}
    assert sorted(api.calls) == sorted(f"DescribeAvailableResource ap-southeast-1 {t}" for t in every_type)  # each type asked once


def test_alicloud_a_fallback_type_in_stock_passes_the_group(api):
    plan = plan_of("alicloud-dev")
    group = next(g for g in plan.node_groups if g.offer.instance_type == "ecs.gn7i-c16g1.4xlarge")
    fallback = group.fallback_offers[-1].instance_type
    api.stock = {fallback: ["ap-southeast-1b"]}  # the placed type sold out, the last fallback in stock in one zone
    check = by(preflight.run(plan))[(group.name, "offering")]
    assert check.status == preflight.OK and check.zones == ("ap-southeast-1b",)
    assert check.detail == (f"ecs.gn7i-c16g1.4xlarge has no stock; ESS launches the fallback types: "
                            f"{fallback} in stock in 1 zone(s): ap-southeast-1b")


# --- env up / env preview run it before anything is created ---------------------------------------


@pytest.mark.parametrize("operation", ["up", "preview"])
def test_env_stops_before_the_stack_is_touched_when_a_check_fails(api, monkeypatch, tmp_path, operation):
    opened = []
    monkeypatch.setattr(environments, "require_pulumi", lambda: None)
    monkeypatch.setattr(environments, "open_stack", lambda *args, **kwargs: opened.append(args))
    api.sizes = []  # the size is not available to this account
    logged: list[str] = []
    with pytest.raises(preflight.PreflightFailed) as error:
        getattr(environments, operation)("staging", project_dir=ROOT, environ={}, out=logged.append, err=logged.append)
    assert error.value.exit_code == 2 and error.value.lines() == [("preflight: staging: llm-embedding-rerank: offering: gpu-h200x1-141gb is not available to "
                                    "this account (/v2/sizes)")]
    assert opened == [] and logged[-1] == "preflight staging (digitalocean atl1): failed: 1 check(s)"


def test_env_preview_goes_on_to_pulumi_after_a_passing_preflight(api, monkeypatch):
    class Handle:
        def preview(self, **kwargs):
            return type("Result", (), {"change_summary": {"create": 9}})()

    monkeypatch.setattr(environments, "require_pulumi", lambda: None)
    monkeypatch.setattr(environments, "open_stack", lambda *args, **kwargs: Handle())
    logged: list[str] = []
    summary = environments.preview("staging", project_dir=ROOT, environ={}, out=logged.append, err=logged.append)
    assert summary == {"create": 9}
    assert "preflight staging (digitalocean atl1): ok" in logged and logged[-1] == "changes: create 9"


@pytest.mark.parametrize("cloud", (*clouds.CLOUDS, *clouds.HOSTED), ids=lambda c: c.name)
def test_every_cloud_has_its_preflight_module(cloud):
    """`run` finds a cloud's checks by its record's name, like the catalog refresh."""
    module = importlib.import_module(f"infra.cli.preflight.{cloud.name}")
    assert callable(module.checks) and module.UNCHECKED.strip()


def with_fallback(plan, size: str):
    """The plan's one node group with a fallback offer of `size` (the same GPU model and count)."""
    (group,) = plan.node_groups
    fallback = dataclasses.replace(group.offer, instance_type=size)
    return dataclasses.replace(plan, node_groups=(dataclasses.replace(group, fallback_offers=(fallback,)),))


def test_digitalocean_a_size_without_capacity_passes_with_the_fallback_up_would_take(api):
    api.sizes = [{"slug": "gpu-h200x1-141gb", "available": False, "regions": [], "price_hourly": 3.44, "vcpus": 24},
                 {"slug": "gpu-h200x1-141gb-b", "available": True, "regions": ["atl1"], "price_hourly": 3.44, "vcpus": 24}]
    result = preflight.run(with_fallback(plan_of("staging"), "gpu-h200x1-141gb-b"))
    offering = by(result)[("llm-embedding-rerank", "offering")]
    assert (offering.status, offering.zones) == (preflight.OK, ("atl1",))
    assert offering.detail == ("gpu-h200x1-141gb is not available to this account (/v2/sizes); `pulumi up` takes gpu-h200x1-141gb-b "
                               "in atl1 instead (gpu-h200x1-141gb → gpu-h200x1-141gb-b: gpu-h200x1-141gb is not available in atl1 "
                               "for this account (/v2/sizes); gpu-h200x1-141gb-b is the next of its on-demand sizes with the "
                               "same GPU model and count)")
    assert result.exit_code == 0


def test_digitalocean_a_size_only_elsewhere_passes_saying_the_stack_moves_region(api):
    api.sizes = [{"slug": "gpu-h200x1-141gb", "available": True, "regions": ["nyc2", "sfo3"], "price_hourly": 3.44, "vcpus": 24}]
    result = preflight.run(plan_of("staging"))
    checks = by(result)
    assert checks[("llm-embedding-rerank", "offering")].zones == ("nyc2",)
    assert checks[("region", "capacity")].status == preflight.OK
    assert checks[("region", "capacity")].detail.startswith("`pulumi up` builds the stack in nyc2, not atl1: atl1 → nyc2")
    assert result.exit_code == 0


def test_digitalocean_no_size_in_any_region_fails_naming_region(api):
    api.sizes = [{"slug": "gpu-h200x1-141gb", "available": True, "regions": ["nyc2"], "price_hourly": 3.44, "vcpus": 24},
                 {"slug": "gpu-h200x1-141gb-b", "available": False, "regions": [], "price_hourly": 3.44, "vcpus": 24}]
    plan = with_fallback(plan_of("staging"), "gpu-h200x1-141gb-b")
    (only,) = plan.node_groups
    plan = dataclasses.replace(plan, node_groups=(dataclasses.replace(only, spot_policy="spot"),))  # no spot size anywhere
    result = preflight.run(plan)
    assert [(c.subject, c.check) for c in result.failed] == [("llm-embedding-rerank", "offering"), ("region", "capacity")]
    assert result.problems()[1].startswith("preflight: staging: region: capacity: region: no size of node group "
                                           "'llm-embedding-rerank' () is available in atl1")

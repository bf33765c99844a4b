"""`catalog refresh` against a stub of the providers' APIs on 127.0.0.1, answering with responses
recorded in the documented formats (tests/data/refresh/): boto3 (AWS_ENDPOINT_URL) for EC2 and the Price
List Query API, DigitalOcean's `/v2/sizes`, Alibaba Cloud's signed ECS RPC. The stub is as strict as the
APIs where it matters: AWS requests must be SigV4-signed for the right region and service, the Price List
filters must be the documented ones, DigitalOcean wants the bearer token, Alibaba the exact signature."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from bootstrap.files.alicloud_oos import sign
from tests.helpers import ROOT

try:
    import boto3  # noqa: F401  (the `refresh` extra)
except ImportError:
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("boto3 is not installed (the `refresh` extra; scripts/test.sh installs it)", allow_module_level=True)

RECORDED = Path(__file__).parent / "data" / "refresh"
CURRENT = RECORDED / "current.csv"
DO_TOKEN = "dop_v1_" + "a" * 64  # a DigitalOcean personal access token's shape
ALI_KEY, ALI_SECRET = "LTAI5tQ2example7key8X", "s3cr3tExampleKeyOfThirtyChars0"
EC2_VERSION = "2016-11-15"
PRICE_LIST_FILTERS = {"instanceType", "regionCode", "operatingSystem", "tenancy", "preInstalledSw", "capacitystatus"}
SIGV4 = re.compile(r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/\d{8}/(?P<region>[a-z0-9-]+)/(?P<service>[a-z0-9]+)/aws4_request, "
                   r"SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}")


class Stub(BaseHTTPRequestHandler):
    calls: ClassVar[list[tuple[str, str, str]]] = []  # (api, action, region)

    def log_message(self, *args):  # keep the test output clean
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _recorded(self, name: str, content_type: str) -> None:
        path = RECORDED / name
        if not path.exists():
            self._send(500, f"no recorded response {name}".encode(), "text/plain")
            return
        self._send(200, path.read_bytes(), content_type)

    def do_POST(self):  # AWS: EC2 (query protocol) and the Price List Query API (JSON 1.1)
        signed = SIGV4.fullmatch(self.headers.get("Authorization", ""))
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        if not signed or signed["key"] != "AKIAIOSFODNN7EXAMPLE":
            self._send(403, b"<Response><Errors><Error><Code>AuthFailure</Code><Message>not signed</Message></Error></Errors></Response>",
                       "text/xml")
            return
        region, service = signed["region"], signed["service"]
        if service == "pricing":
            assert self.headers["X-Amz-Target"] == "AWSPriceListService.GetProducts" and region == "us-east-1"
            request = json.loads(body)
            filters = {f["Field"]: f["Value"] for f in request["Filters"] if f["Type"] == "TERM_MATCH"}
            assert request["ServiceCode"] == "AmazonEC2" and set(filters) == PRICE_LIST_FILTERS
            assert (filters["operatingSystem"], filters["tenancy"], filters["preInstalledSw"], filters["capacitystatus"]) == (
                "Linux", "Shared", "NA", "Used")
            self.calls.append(("pricing", "GetProducts", filters["regionCode"]))
            name = f"aws_GetProducts_{filters['instanceType']}_{filters['regionCode']}.json"
            if (RECORDED / name).exists():
                self._recorded(name, "application/x-amz-json-1.1")
            else:
                self._send(200, b'{"FormatVersion": "aws_v1", "PriceList": []}', "application/x-amz-json-1.1")
            return
        assert service == "ec2"
        form = dict(urllib.parse.parse_qsl(body))
        assert form["Version"] == EC2_VERSION
        action = form["Action"]
        self.calls.append(("ec2", action, region))
        if action == "DescribeInstanceTypeOfferings":
            assert form["LocationType"] == "region" and form["Filter.1.Name"] == "instance-type"
        if action == "DescribeSpotPriceHistory":
            assert form["ProductDescription.1"] == "Linux/UNIX" and "StartTime" in form
        self._recorded(f"aws_{action}.xml" if action == "DescribeRegions" else f"aws_{action}_{region}.xml", "text/xml")

    def do_GET(self):  # DigitalOcean /v2/sizes, Alibaba Cloud ECS RPC
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/v2/sizes":
            if self.headers.get("Authorization") != f"Bearer {DO_TOKEN}":
                self._send(401, b'{"id": "Unauthorized", "message": "Unable to authenticate you"}', "application/json")
                return
            page = dict(urllib.parse.parse_qsl(url.query)).get("page", "1")
            self.calls.append(("digitalocean", "sizes", page))
            self._recorded(f"digitalocean_sizes_page{page}.json", "application/json")
            return
        params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        signature = params.pop("Signature", "")
        if params.get("AccessKeyId") != ALI_KEY or signature != sign("GET", params, ALI_SECRET):
            self._send(400, b'{"Code": "IncompleteSignature", "Message": "The request signature does not conform"}', "application/json")
            return
        assert (params["Version"], params["Format"], params["SignatureMethod"]) == ("2014-05-26", "JSON", "HMAC-SHA1")
        action, region = params["Action"], params.get("RegionId", "")
        self.calls.append(("alicloud", action, region))
        if action == "DescribeAvailableResource":
            assert (params["DestinationResource"], params["InstanceChargeType"]) == ("InstanceType", "PostPaid")
        if action == "DescribePrice":
            assert (params["ResourceType"], params["PriceUnit"]) == ("instance", "Hour")
            self._recorded(f"alicloud_DescribePrice_{params['InstanceType']}_{region}.json", "application/json")
            return
        self._recorded(f"alicloud_{action}.json" if action == "DescribeRegions" else f"alicloud_{action}_{region}.json",
                       "application/json")


@pytest.fixture
def stub():
    Stub.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def credentials(endpoint: str) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "AWS_ENDPOINT_URL": endpoint, "DIGITALOCEAN_TOKEN": DO_TOKEN, "DIGITALOCEAN_API_URL": endpoint,
            "ALICLOUD_ACCESS_KEY": ALI_KEY, "ALICLOUD_SECRET_KEY": ALI_SECRET, "LLM_DEPLOY_ALICLOUD_ECS_ENDPOINT": endpoint}


def refresh(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DIGITALOCEAN_", "ALICLOUD_"))}
    clean.update(PYTHONPATH=str(ROOT), AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
                 AWS_EC2_METADATA_DISABLED="true")
    return subprocess.run([sys.executable, "-m", "infra", "catalog", "refresh", "--catalog-file", str(CURRENT),
                           "--output", str(tmp_path / "out.csv"), *args], env={**clean, **env}, capture_output=True, text=True,
                          timeout=120, check=False)


def rows(path: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    with open(path, newline="") as handle:
        return {(r["cloud"], r["instance_type"], r["region"]): r for r in csv.DictReader(handle)}


def test_refresh_writes_every_cloud_from_its_api_and_says_what_changed(stub, tmp_path):
    done = refresh(tmp_path, credentials(stub))
    assert done.returncode == 0, done.stderr
    fresh = rows(tmp_path / "out.csv")
    assert sorted(fresh) == [
        ("alicloud", "ecs.g7.xlarge", "ap-southeast-1"), ("alicloud", "ecs.gn7i-c8g1.2xlarge", "ap-southeast-1"),
        ("aws", "g4dn.xlarge", "us-east-1"), ("aws", "g6.xlarge", "eu-central-1"), ("aws", "g6.xlarge", "us-east-1"),
        ("aws", "p5.4xlarge", "us-east-1"),
        ("digitalocean", "gpu-h200x1-141gb", "atl1"), ("digitalocean", "gpu-h200x1-141gb", "nyc2"),
        ("digitalocean", "gpu-l40sx1-48gb", "tor1"), ("digitalocean", "s-4vcpu-8gb", "nyc1"), ("digitalocean", "s-4vcpu-8gb", "tor1")]
    assert fresh[("digitalocean", "gpu-l40sx1-48gb", "tor1")] == rows(CURRENT)[("digitalocean", "gpu-l40sx1-48gb", "tor1")]
    g6 = fresh[("aws", "g6.xlarge", "us-east-1")]
    assert (g6["hourly_usd"], g6["spot_hourly_usd"], g6["price_basis"]) == ("0.8048", "0.31", "list")  # Local Zone's 0.20 left out
    assert g6["source"].startswith("AWS Price List Query API GetProducts") and re.fullmatch(r"20\d\d-\d\d-\d\d", g6["as_of"])
    assert (g6["gpu"], g6["gpu_count"], g6["gpu_memory_gb"], g6["vcpus"], g6["memory_gb"]) == ("L4", "1", "24", "4", "16")
    p5 = fresh[("aws", "p5.4xlarge", "us-east-1")]
    assert (p5["hourly_usd"], p5["list_hourly_usd"], p5["price_basis"]) == ("4.38", "6.88", "specified")  # the specified table stays
    h200 = fresh[("digitalocean", "gpu-h200x1-141gb", "nyc2")]
    assert (h200["hourly_usd"], h200["list_hourly_usd"], h200["source"].split("; list price: ")[1]) == (
        "3.44", "4.47", "DigitalOcean API GET /v2/sizes")
    gn7i = fresh[("alicloud", "ecs.gn7i-c8g1.2xlarge", "ap-southeast-1")]
    assert (gn7i["hourly_usd"], gn7i["list_hourly_usd"]) == ("2.2", "1.35")  # the instance's own price, not with its disk
    assert fresh[("alicloud", "ecs.g7.xlarge", "ap-southeast-1")]["hourly_usd"] == "0.16"
    lines = done.stdout.splitlines()
    assert "dearer  aws g6.xlarge us-east-1: 0.75 -> 0.8048 $/h (+7.3 %)" in lines
    assert "cheaper aws g4dn.xlarge us-east-1: 0.6 -> 0.526 $/h (-12.3 %)" in lines
    assert "dearer  alicloud ecs.g7.xlarge ap-southeast-1: 0.1442 -> 0.16 $/h (+11.0 %)" in lines
    assert "new     aws g6.xlarge eu-central-1: 1.0064 $/h" in lines
    assert "new     digitalocean s-4vcpu-8gb tor1: 0.07143 $/h" in lines
    assert "gone    aws g6.xlarge ap-northeast-1 (was 1.1672 $/h)" in lines
    assert "gone    alicloud ecs.gn6i-c4g1.xlarge ap-southeast-1 (was 1.118 $/h)" in lines  # sold out everywhere
    assert not any("gpu-l40sx1-48gb" in line for line in lines)  # the account sees no region for it: kept as it was
    assert lines[-1] == (f"wrote {tmp_path / 'out.csv'}: 11 rows; aws, digitalocean, alicloud refreshed: "
                         "2 dearer, 1 cheaper, 3 new, 4 gone")
    for progress in ("aws us-east-1: 3 of 3 types offered, 3 priced", "aws eu-central-1: 1 of 3 types offered, 1 priced",
                     "digitalocean: 3 sizes listed, 3 of 3 types in 4 regions (atl1 nyc1 nyc2 tor1)",
                     "digitalocean: gpu-l40sx1-48gb lists no region for this account (no GPU quota?): its 1 current rows kept",
                     "alicloud ap-southeast-1: 2 of 3 types available and priced", "alicloud cn-hangzhou: 0 of 3 types available and priced"):
        assert progress in done.stderr
    assert ("digitalocean", "sizes", "2") in Stub.calls  # followed the next page
    assert ("pricing", "GetProducts", "eu-central-1") in Stub.calls and ("ec2", "DescribeSpotPriceHistory", "eu-central-1") in Stub.calls


def test_the_refreshed_file_is_a_catalog_file_a_stack_can_use(stub, tmp_path, stack_file):
    assert refresh(tmp_path, credentials(stub)).returncode == 0
    from infra.config import load_raw, parse_config
    from infra.placement import place

    path = stack_file({"cloud": "aws", "catalogFile": str(tmp_path / "out.csv"),
                       "services": [{"name": "llm", "kind": "llm", "model": "Qwen/Qwen2.5-7B-Instruct"}]})
    plan = place(parse_config(load_raw(config_file=str(path))))
    assert (plan.node_groups[0].offer.instance_type, plan.region, plan.hourly_usd) == ("g6.xlarge", "us-east-1", 0.8048)


def test_a_cloud_without_credentials_is_one_line_and_keeps_its_rows(stub, tmp_path):
    env = {k: v for k, v in credentials(stub).items() if not k.startswith(("AWS_ACCESS", "AWS_SECRET", "ALICLOUD_"))}
    done = refresh(tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert ("aws: not refreshed, its 4 current rows kept: no AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or AWS_PROFILE)") in done.stderr.splitlines()
    assert ("alicloud: not refreshed, its 4 current rows kept: no Alibaba Cloud credentials (set ALICLOUD_ACCESS_KEY and "
            "ALICLOUD_SECRET_KEY)") in done.stderr.splitlines()
    fresh, current = rows(tmp_path / "out.csv"), rows(CURRENT)
    kept = {k: v for k, v in current.items() if k[0] != "digitalocean"}
    assert {k: v for k, v in fresh.items() if k[0] != "digitalocean"} == kept
    assert done.stdout.splitlines()[-1].endswith("digitalocean refreshed: 0 dearer, 0 cheaper, 2 new, 1 gone")


def test_without_any_credentials_nothing_is_written(tmp_path):
    done = refresh(tmp_path, {})
    assert done.returncode == 1 and not (tmp_path / "out.csv").exists()
    assert done.stderr.splitlines()[-1] == "catalog refresh: no cloud could be refreshed; nothing written"
    assert "Traceback" not in done.stderr


def test_an_api_that_refuses_is_one_line_and_exit_1(stub, tmp_path):
    env = {**credentials(stub), "DIGITALOCEAN_TOKEN": "dop_v1_wrong", "ALICLOUD_SECRET_KEY": "wrong"}
    done = refresh(tmp_path, env, "--cloud", "digitalocean", "--cloud", "alicloud")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "digitalocean: not refreshed, its 4 current rows kept: digitalocean: GET /v2/sizes: 401 Unable to authenticate you" in done.stderr
    assert "alicloud: not refreshed, its 4 current rows kept: alicloud: DescribeRegions : IncompleteSignature" in done.stderr
    assert not (tmp_path / "out.csv").exists()


def test_only_the_clouds_asked_for_are_called(stub, tmp_path):
    done = refresh(tmp_path, credentials(stub), "--cloud", "aws")
    assert done.returncode == 0, done.stderr
    assert {api for api, _, _ in Stub.calls} == {"ec2", "pricing"}
    assert rows(tmp_path / "out.csv")[("alicloud", "ecs.gn6i-c4g1.xlarge", "ap-southeast-1")] == rows(CURRENT)[
        ("alicloud", "ecs.gn6i-c4g1.xlarge", "ap-southeast-1")]
    assert refresh(tmp_path, {}, "--cloud", "gcp").returncode == 2

"""Alibaba Cloud prices and offerings from the ECS API (signed RPC, as bootstrap/files/alicloud_oos.py
signs it): DescribeRegions, then per region DescribeAvailableResource (pay-as-you-go instance types in
stock in some zone) and DescribePrice per type (the hourly pay-as-you-go price of the instance itself).

Credentials: ALICLOUD_ACCESS_KEY and ALICLOUD_SECRET_KEY (ALICLOUD_SECURITY_TOKEN for STS).
LLM_DEPLOY_ALICLOUD_ECS_ENDPOINT sends every call to one endpoint instead (the tests' stub server); the rollout
gate (components/alicloud/rollout.py) makes its ESS and ALB calls through the same client.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence

from bootstrap.files.alicloud_oos import signed_query
from infra.cli.refresh import MissingCredentials, Progress, RefreshError, fresh_row, types_of
from infra.plan import Offer

ECS_VERSION = "2014-05-26"
SOURCE = "Alibaba Cloud ECS API DescribePrice (pay-as-you-go, per hour) and DescribeAvailableResource"
TIMEOUT = 30


class Client:
    def __init__(self, key: str, secret: str, token: str | None) -> None:
        self.key, self.secret, self.token = key, secret, token
        self.override = os.environ.get("LLM_DEPLOY_ALICLOUD_ECS_ENDPOINT")

    def call(self, action: str, endpoint: str, version: str = ECS_VERSION, **params: str) -> dict:
        """One signed RPC GET; `version` is the product's API version (ECS by default; ESS and ALB for the rollout gate,
        ESS for `status`)."""
        url = f"{self.override or 'https://' + endpoint}/?{signed_query(action, version, params, self.key, self.secret, self.token)}"
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = error.read().decode(errors="replace")
            detail = json.loads(body) if body.startswith("{") else {"Code": error.code, "Message": body}
            raise RefreshError(f"alicloud: {action} {params.get('RegionId', '')}: {detail.get('Code')}: {detail.get('Message')}") from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise RefreshError(f"alicloud: {action}: {error}") from None


def available_in_zones(answer: dict) -> dict[str, set[str]]:
    """Instance type → the zones where DescribeAvailableResource reports it available (with stock)."""
    zones: dict[str, set[str]] = {}
    for zone in answer.get("AvailableZones", {}).get("AvailableZone", []):
        for group in zone.get("AvailableResources", {}).get("AvailableResource", []):
            if group.get("Type") != "InstanceType":
                continue
            for resource in group.get("SupportedResources", {}).get("SupportedResource", []):
                if resource.get("Status") == "Available" and resource.get("StatusCategory", "WithStock") == "WithStock":
                    zones.setdefault(resource["Value"], set()).add(zone.get("ZoneId", ""))
    return zones


def available_types(answer: dict) -> set[str]:
    """Instance types DescribeAvailableResource reports available (with stock) in at least one zone."""
    return set(available_in_zones(answer))


def region_endpoint(region: str) -> str:
    return f"ecs.{region}.aliyuncs.com"


def client() -> Client:
    """A client with the environment's credentials, or MissingCredentials."""
    key, secret = os.environ.get("ALICLOUD_ACCESS_KEY"), os.environ.get("ALICLOUD_SECRET_KEY")
    if not key or not secret:
        raise MissingCredentials("no Alibaba Cloud credentials (set ALICLOUD_ACCESS_KEY and ALICLOUD_SECRET_KEY)")
    return Client(key, secret, os.environ.get("ALICLOUD_SECURITY_TOKEN"))


def instance_price(answer: dict) -> tuple[float, str]:
    """(hourly price, currency) of the instance alone: DescribePrice's instanceType detail, else the total."""
    price = answer["PriceInfo"]["Price"]
    details = price.get("DetailInfos", {}).get("DetailInfo", []) or price.get("DetailInfos", {}).get("ResourcePriceModel", [])
    for detail in details:
        if detail.get("Resource") == "instanceType":
            return float(detail["TradePrice"]), price["Currency"]
    return float(price["TradePrice"]), price["Currency"]


def fetch(current: Sequence[Offer], progress: Progress) -> list[dict[str, str]]:
    specs = types_of(current)
    ecs = client()
    regions = ecs.call("DescribeRegions", "ecs.aliyuncs.com", AcceptLanguage="en-US")["Regions"]["Region"]
    rows = []
    for region in sorted(regions, key=lambda r: r["RegionId"]):
        region_id, endpoint = region["RegionId"], region.get("RegionEndpoint") or region_endpoint(region["RegionId"])
        offered = sorted(available_types(ecs.call("DescribeAvailableResource", endpoint, RegionId=region_id,
                                                     DestinationResource="InstanceType", InstanceChargeType="PostPaid")) & set(specs))
        for instance_type in offered:
            hourly, currency = instance_price(ecs.call("DescribePrice", endpoint, RegionId=region_id, ResourceType="instance",
                                                          InstanceType=instance_type, PriceUnit="Hour"))
            if currency != "USD":
                raise RefreshError(f"alicloud: DescribePrice {region_id}: prices in {currency}, not USD (an account of the China site?)")
            rows.append(fresh_row(specs[instance_type], region_id, hourly, SOURCE))
        progress(f"alicloud {region_id}: {len(offered)} of {len(specs)} types available and priced")
    return rows

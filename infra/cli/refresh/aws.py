"""AWS prices and offerings through boto3 (the `refresh` extra): EC2 DescribeRegions, then per region
DescribeInstanceTypeOfferings (where each type exists), the Price List Query API's GetProducts per type
(Linux, shared tenancy, no pre-installed software, on-demand capacity) and DescribeSpotPriceHistory
(the lowest current spot price over the region's standard zones; Local Zones left out).

Credentials and endpoints are boto3's own: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, a
role; AWS_ENDPOINT_URL points every client elsewhere (the tests' stub server).
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterable, Sequence

from infra.cli.refresh import MissingCredentials, Progress, RefreshError, fresh_row, types_of
from infra.plan import Offer

PRICING_REGION = "us-east-1"  # the Price List Query API's endpoint region
SOURCE = "AWS Price List Query API GetProducts (on-demand) and EC2 DescribeSpotPriceHistory, DescribeInstanceTypeOfferings"


def _filters(instance_type: str, region: str) -> list[dict[str, str]]:
    terms = {"instanceType": instance_type, "regionCode": region, "operatingSystem": "Linux", "tenancy": "Shared",
             "preInstalledSw": "NA", "capacitystatus": "Used"}
    return [{"Type": "TERM_MATCH", "Field": field, "Value": value} for field, value in terms.items()]


def on_demand_price(price_list: Iterable[str]) -> float | None:
    """The hourly USD price in GetProducts' PriceList (JSON strings): its OnDemand term's Hrs dimension."""
    prices = []
    for item in price_list:
        product = json.loads(item)
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term.get("priceDimensions", {}).values():
                if dimension.get("unit") == "Hrs" and "USD" in dimension.get("pricePerUnit", {}):
                    prices.append(float(dimension["pricePerUnit"]["USD"]))
    priced = [p for p in prices if p > 0]
    return min(priced) if priced else None


def pages(client, operation: str, key: str, **kwargs) -> list:
    """Every item under `key` of every page of a paginated call."""
    return [item for page in client.get_paginator(operation).paginate(**kwargs) for item in page[key]]


def _region(session, pricing, region: str, specs: dict[str, Offer], progress: Progress) -> list[dict[str, str]]:
    ec2 = session.client("ec2", region_name=region)
    offered = sorted({o["InstanceType"] for o in pages(
        ec2, "describe_instance_type_offerings", "InstanceTypeOfferings", LocationType="region",
        Filters=[{"Name": "instance-type", "Values": sorted(specs)}])} & set(specs))
    spot: dict[str, float] = {}
    if offered:
        standard_zone = re.compile(rf"{re.escape(region)}[a-z]$")
        for price in pages(ec2, "describe_spot_price_history", "SpotPriceHistory", InstanceTypes=offered,
                           ProductDescriptions=["Linux/UNIX"], StartTime=datetime.datetime.now(datetime.UTC)):
            if standard_zone.match(price["AvailabilityZone"]):
                value = float(price["SpotPrice"])
                spot[price["InstanceType"]] = min(value, spot.get(price["InstanceType"], value))
    rows = []
    for instance_type in offered:
        hourly = on_demand_price(pages(pricing, "get_products", "PriceList", ServiceCode="AmazonEC2",
                                       Filters=_filters(instance_type, region)))
        if hourly is not None:
            rows.append(fresh_row(specs[instance_type], region, hourly, SOURCE, spot.get(instance_type)))
    progress(f"aws {region}: {len(offered)} of {len(specs)} types offered, {len(rows)} priced")
    return rows


def credentialed_session():
    """boto3's session, or MissingCredentials saying what to install or set."""
    try:
        import boto3
    except ImportError:
        raise MissingCredentials("boto3 is not installed: pip install 'llm-deploy[refresh]'") from None
    session = boto3.Session()
    if session.get_credentials() is None:
        raise MissingCredentials("no AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)")
    return session


def fetch(current: Sequence[Offer], progress: Progress) -> list[dict[str, str]]:
    """Rows for every (type, region) AWS offers and prices, for the current catalog's AWS types."""
    specs = types_of(current)
    session = credentialed_session()
    import botocore.exceptions

    try:
        regions = sorted(r["RegionName"] for r in session.client("ec2", region_name=PRICING_REGION).describe_regions()["Regions"])
        pricing = session.client("pricing", region_name=PRICING_REGION)
        return [row for region in regions for row in _region(session, pricing, region, specs, progress)]
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        raise RefreshError(f"aws: {error}") from None

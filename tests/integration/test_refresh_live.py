"""Live `catalog refresh`: each cloud's real price and offering APIs, read-only (nothing is created).

Runs per cloud where its credentials exist: AWS (AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY, or
AWS_PROFILE; needs pricing:GetProducts, ec2:DescribeRegions, ec2:DescribeInstanceTypeOfferings,
ec2:DescribeSpotPriceHistory), DigitalOcean (DIGITALOCEAN_TOKEN, scopes sizes:read and regions:read), Alibaba Cloud
(ALICLOUD_ACCESS_KEY + ALICLOUD_SECRET_KEY; ecs:DescribeRegions, DescribeAvailableResource, DescribePrice).
    pytest -m integration tests/integration/test_refresh_live.py
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]
CREDENTIALS = {
    "aws": [("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), ("AWS_PROFILE",)],
    "digitalocean": [("DIGITALOCEAN_TOKEN",)],
    "alicloud": [("ALICLOUD_ACCESS_KEY", "ALICLOUD_SECRET_KEY")],
}
# A type every account sees in at least one region, with the price range it must fall in ($/h).
EXPECTED = {"aws": ("g6.xlarge", 0.5, 2.0), "digitalocean": ("s-4vcpu-8gb", 0.03, 0.2), "alicloud": ("ecs.g7.xlarge", 0.05, 0.5)}


@pytest.mark.integration
@pytest.mark.parametrize("cloud", sorted(CREDENTIALS))
def test_refresh_reads_current_prices_from_the_provider(cloud, tmp_path):
    if not any(all(os.environ.get(name) for name in names) for names in CREDENTIALS[cloud]):
        pytest.skip(f"no {cloud} credentials: set {' or '.join(' + '.join(n) for n in CREDENTIALS[cloud])}")
    output = tmp_path / "catalog.csv"
    done = subprocess.run([sys.executable, "-m", "infra", "catalog", "refresh", "--cloud", cloud, "--output", str(output)],
                          cwd=PROJECT_DIR, capture_output=True, text=True, timeout=3600, check=False)
    assert done.returncode == 0, done.stderr
    with open(output, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["cloud"] == cloud]
    instance_type, low, high = EXPECTED[cloud]
    prices = [float(r["hourly_usd"]) for r in rows if r["instance_type"] == instance_type]
    assert prices and all(low <= p <= high for p in prices), prices
    assert all(r["as_of"] != "" and r["source"] for r in rows)

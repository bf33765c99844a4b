"""`llm-deploy images` on Alibaba Cloud: the newest image of the family the look-up takes, read from a local
stand-in of ECS DescribeImages (signed RPC checked, the documented parameters only, pages of at most 100,
the answer's field names) holding more images than one page: other systems, other Ubuntu releases, images
for other instance types."""

from __future__ import annotations

from typing import ClassVar

import pytest
import yaml

from components.alicloud.layout import UBUNTU_IMAGE_REGEX
from infra.cli import images
from infra.cli.refresh import MissingCredentials, RefreshError
from infra.config import parse_config
from infra.placement import place
from tests.alicloud_api import COMMON, SignedRpc, serve
from tests.helpers import LLM, raw_config

KEY, SECRET = "LTAI5tFAKEimages0123", "images-secret-0123456789abcdef"
REGION = "ap-southeast-1"
VALUES = {"cloud": "alicloud", "region": REGION,
          "services": [LLM, {"name": "rank", "kind": "rerank", "model": "BAAI/bge-reranker-base", "gpu": "T4"}]}
PLAN = place(parse_config(raw_config("ali-images", VALUES)))
DOCUMENTED = {"RegionId", "ImageOwnerAlias", "OSType", "Architecture", "InstanceType", "Status", "PageSize", "PageNumber",
              "ImageId", "ImageName", "ImageFamily", "Usage", "IsSupportCloudinit"}


def image(name: str, created: str, types: tuple[str, ...] | None = None, os_type: str = "linux") -> dict:
    return {"ImageId": f"{name}.vhd", "ImageName": f"{name}.vhd", "CreationTime": created, "OSType": os_type,
            "Architecture": "x86_64", "ImageOwnerAlias": "system", "Status": "Available", "Size": 20,
            "IsSupportCloudinit": True, "Platform": "Ubuntu", "_types": types}


class Ecs(SignedRpc):
    images: ClassVar[list[dict]] = []
    calls: ClassVar[list[dict]] = []

    def answer(self, params: dict[str, str]) -> tuple[int, dict]:
        if (params.get("Action"), params.get("Version")) != ("DescribeImages", "2014-05-26") or set(params) - COMMON - DOCUMENTED:
            return 400, {"Code": "InvalidParameter", "Message": f"not DescribeImages 2014-05-26: {sorted(params)}"}
        size = int(params.get("PageSize", "10"))
        if size > 100:
            return 400, {"Code": "InvalidParameter", "Message": "PageSize must be 1-100"}
        self.calls.append(params)
        found = [i for i in self.images
                 if i["OSType"] == params.get("OSType", i["OSType"]) and (i["_types"] is None or params.get("InstanceType") in i["_types"])]
        page = int(params.get("PageNumber", "1"))
        shown = [{k: v for k, v in i.items() if k != "_types"} for i in found[(page - 1) * size:page * size]]
        return 200, {"RegionId": params["RegionId"], "TotalCount": len(found), "PageNumber": page, "PageSize": size,
                     "Images": {"Image": shown}}


@pytest.fixture
def ecs(monkeypatch):
    a10 = PLAN.group_serving("llm").offer.instance_type
    older = [image(f"centos_7_9_x64_20G_alibase_2023{n:04d}", f"2023-01-{n % 28 + 1:02d}T00:00:00Z") for n in range(110)]
    Ecs.images = [
        *older,  # more than a page of other systems first
        image("ubuntu_22_04_x64_20G_alibase_20240220", "2024-02-20T08:00:00Z"),
        image("ubuntu_24_04_x64_20G_alibase_20250901", "2025-09-01T08:00:00Z"),  # newer, but another release
        image("ubuntu_22_04_x64_20G_alibase_20251015", "2025-10-15T08:00:00Z", types=(a10,)),  # only for the A10 type
        image("ubuntu_22_04_x64_20G_alibase_20250612", "2025-06-12T08:00:00Z"),
        image("win2022_64_dtc_20G_alibase_20251101", "2025-11-01T08:00:00Z", os_type="windows"),
    ]
    Ecs.calls = []
    with serve(Ecs, monkeypatch, KEY, SECRET):
        yield Ecs


def test_each_group_gets_the_newest_ubuntu_22_04_for_its_type(ecs):
    llm, rank = PLAN.group_serving("llm"), PLAN.group_serving("rerank")
    assert images.newest(PLAN) == {llm.name: "ubuntu_22_04_x64_20G_alibase_20251015.vhd",
                                   rank.name: "ubuntu_22_04_x64_20G_alibase_20250612.vhd"}
    # the look-up's filters, and every page read
    first = ecs.calls[0]
    assert (first["ImageOwnerAlias"], first["OSType"], first["Architecture"], first["Status"]) == ("system", "linux", "x86_64", "Available")
    assert sorted({c["InstanceType"] for c in ecs.calls}) == sorted({llm.offer.instance_type, rank.offer.instance_type})
    assert {c["PageNumber"] for c in ecs.calls} == {"1", "2"}
    assert UBUNTU_IMAGE_REGEX == r"^ubuntu_22_04_x64"


def test_no_image_of_the_family_names_the_type(ecs):
    ecs.images = [i for i in ecs.images if not i["ImageName"].startswith("ubuntu_22_04")]
    with pytest.raises(RefreshError, match=r"no system image matching \^ubuntu_22_04_x64 for ecs\."):
        images.newest(PLAN)


def test_update_pins_the_ids_in_the_stack_file(ecs, cli, tmp_path):
    path = tmp_path / "Pulumi.ali-images.yaml"
    path.write_text("# my stack\n" + yaml.safe_dump({"config": {f"llm-deploy:{k}": v for k, v in VALUES.items()}}, sort_keys=False))
    result = cli("images", "--config", str(path), "--update", "--format", "json")
    assert result.code == 0, result.stderr
    pinned = yaml.safe_load(path.read_text())["config"]["llm-deploy:nodeImages"]
    assert pinned == images.newest(PLAN)
    assert path.read_text().startswith("# my stack\n")
    assert all(g["pinned"] for g in result.json()["node_groups"])


def test_without_credentials_it_says_what_to_set(monkeypatch):
    monkeypatch.delenv("ALICLOUD_ACCESS_KEY", raising=False)
    monkeypatch.delenv("ALICLOUD_SECRET_KEY", raising=False)
    with pytest.raises(MissingCredentials, match="ALICLOUD_ACCESS_KEY"):
        images.newest(PLAN)

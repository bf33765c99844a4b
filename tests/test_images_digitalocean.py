"""DigitalOcean's image resolver (`infra/cli/images/digitalocean.py`) against a stub of `GET /v2/images/<slug>` as
strict as the API: the bearer token, 404 for a slug it does not have, the image's regions and status; then
`llm-deploy images --update` pins the id and the plan's droplets boot that id."""

from __future__ import annotations

import shutil
import threading
import urllib.parse
from http.server import ThreadingHTTPServer
from typing import ClassVar

import pytest

from infra.cli.images import digitalocean as resolver
from infra.cli.refresh import MissingCredentials
from infra.errors import LlmDeployError
from tests.helpers import STACKS_DIR, JsonStub, shipped_plan

TOKEN = "dop_v1_" + "c" * 64  # a personal access token's shape
H100_BASE = {  # the shape of GET /v2/images/gpu-h100x1-base (API reference: "Retrieve an Existing Image")
    "id": 164324753, "name": "NVIDIA AI/ML Ready (H100x1)", "distribution": "Ubuntu", "slug": "gpu-h100x1-base", "public": True,
    "regions": ["atl1", "nyc2", "tor1"], "created_at": "2026-10-14T16:02:11Z", "type": "base", "min_disk_size": 50,
    "size_gigabytes": 21.4, "description": "", "tags": [], "status": "available", "error_message": "",
}  # fmt: skip


class Images(JsonStub):
    images: ClassVar[dict[str, dict]] = {}
    calls: ClassVar[list[str]] = []

    def do_GET(self):
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._json(401, {"id": "Unauthorized", "message": "Unable to authenticate you"})
            return
        path = urllib.parse.urlsplit(self.path).path
        self.calls.append(path)
        slug = path.removeprefix("/v2/images/")
        if path.startswith("/v2/images/") and slug in self.images:
            self._json(200, {"image": self.images[slug]})
        else:
            self._json(404, {"id": "not_found", "message": "The resource you were accessing could not be found."})


@pytest.fixture
def api(monkeypatch):
    Images.images, Images.calls = {"gpu-h100x1-base": dict(H100_BASE)}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Images)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("DIGITALOCEAN_TOKEN", TOKEN)
    monkeypatch.setenv("DIGITALOCEAN_API_URL", f"http://127.0.0.1:{server.server_address[1]}")
    yield Images
    server.shutdown()
    server.server_close()


def test_the_newest_image_id_of_each_groups_slug(api):
    plan = shipped_plan("staging")  # one H200 droplet in atl1: the one-GPU NVIDIA base image
    assert resolver.latest(plan) == {g.name: "164324753" for g in plan.node_groups}
    assert api.calls == ["/v2/images/gpu-h100x1-base"]


def test_an_image_not_in_the_region_or_not_available_is_refused(api):
    plan = shipped_plan("staging")
    api.images["gpu-h100x1-base"]["regions"] = ["nyc2", "tor1"]
    with pytest.raises(LlmDeployError, match=r"gpu-h100x1-base \(id 164324753\) is not in atl1 \(only nyc2, tor1\); "
                                             r"node group 'llm-embedding-rerank' could not boot it there"):
        resolver.latest(plan)
    api.images["gpu-h100x1-base"].update(regions=["atl1"], status="pending")
    with pytest.raises(LlmDeployError, match="is pending, not available"):
        resolver.latest(plan)


def test_a_missing_slug_a_refused_token_and_no_token(api, monkeypatch):
    plan = shipped_plan("staging")
    api.images.clear()
    with pytest.raises(LlmDeployError, match="GET /v2/images/gpu-h100x1-base: 404 The resource you were accessing could not be found"):
        resolver.latest(plan)
    monkeypatch.setenv("DIGITALOCEAN_TOKEN", "dop_v1_" + "0" * 64)
    with pytest.raises(LlmDeployError, match="401 Unable to authenticate you"):
        resolver.latest(plan)
    monkeypatch.delenv("DIGITALOCEAN_TOKEN")
    with pytest.raises(MissingCredentials, match="DIGITALOCEAN_TOKEN"):
        resolver.latest(plan)


def test_images_update_pins_the_id_and_the_droplets_boot_it(api, cli, tmp_path):
    stacks = tmp_path / "stacks"
    shutil.copytree(STACKS_DIR, stacks)
    result = cli("images", "--stack", "staging", "--stacks-dir", str(stacks), "--update")
    assert result.code == 0, result.stderr
    assert "llm-embedding-rerank (digitalocean gpu-h200x1-141gb): 164324753 (was unpinned)" in result.stdout
    document = cli("plan", "--stack", "staging", "--stacks-dir", str(stacks)).json()
    (droplet,) = [r for r in document["resources"] if r["type"] == "digitalocean:index/droplet:Droplet"]
    assert droplet["inputs"]["image"] == "164324753"

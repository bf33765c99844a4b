"""The asleep answer on DigitalOcean: while the schedule has the stack asleep, one small CPU droplet behind the load
balancer answers 503 with when the stack wakes up (its nginx under the real nginx here), `/healthz` 200 so the
balancer forwards to it; offline plan tests for the droplet at fixed clocks, and its cost."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime

import pytest
import yaml

import components.stack
from bootstrap.asleep import SITE, asleep_site, asleep_user_data
from infra.asleep import asleep_node
from infra.cli.offline import run_offline
from infra.config import parse_config
from infra.cost import schedule_record
from infra.placement import place
from infra.plan import HEALTH_PATH
from infra.schedule import parse_schedule
from tests.helpers import LLM, ROOT, SSH_KEY, need, of_type, raw_config
from tests.test_gateway import free_port, nginx_serving, request

DROPLET = "digitalocean:index/droplet:Droplet"
OFFICE = {"timezone": "Europe/Berlin", "activeHours": "Mon-Thu 08:00-20:00; Fri 08:00-16:00"}
DO_OFFICE = {"cloud": "digitalocean", "schedule": OFFICE, "services": [{**LLM, "gpu": "L40S"}], "sshPublicKeys": [SSH_KEY]}
SCHEDULE = parse_schedule(OFFICE["timezone"], OFFICE["activeHours"])
TUESDAY_NIGHT = datetime(2026, 12, 1, 19, 30, tzinfo=UTC)  # Tue 20:30 CET
SATURDAY = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
TUESDAY_MORNING = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # Tue 10:00 CET: awake


@pytest.fixture
def asleep_nginx(tmp_path):
    """The asleep site under the real nginx on a loopback port, answering for the sleep after Friday's stretch."""
    port = free_port()
    answer = SCHEDULE.asleep_answer(SCHEDULE.sleeping_after(SATURDAY))
    with nginx_serving(tmp_path, asleep_site(answer, listen=[f"127.0.0.1:{port}"]), port):
        yield port, answer


def test_every_path_answers_503_with_the_wake_up_json(asleep_nginx):
    port, answer = asleep_nginx
    assert answer["wakes_at"] == "Mon 08:00"
    for method, path in [("POST", "/v1/chat/completions"), ("POST", "/v1/embeddings"), ("POST", "/rerank"), ("GET", "/v1/models"),
                         ("GET", "/metrics/llm"), ("GET", "/"), ("GET", f"{HEALTH_PATH}/llm")]:
        status, body = request(port, path, method=method)
        assert status == 503, path
        assert json.loads(body) == answer, path


def test_healthz_is_200_so_the_balancer_forwards_to_it(asleep_nginx):
    port, _ = asleep_nginx
    status, body = request(port, HEALTH_PATH, key=None, method="GET")
    assert status == 200 and json.loads(body) == {"status": "asleep"}


def test_the_answer_is_json_by_its_content_type(asleep_nginx):
    import http.client

    port, _ = asleep_nginx
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/v1/models")
    response = conn.getresponse()
    response.read()
    assert (response.status, response.getheader("Content-Type")) == (503, "application/json")


def test_a_dollar_in_the_answer_is_refused_not_expanded_by_nginx():
    with pytest.raises(ValueError, match="cannot hold"):
        asleep_site({"message": "costs $0"})


def test_the_asleep_user_data_passes_cloud_init_schema_and_carries_no_secret(tmp_path):
    cloud_init = need("cloud-init")
    text = asleep_user_data(SCHEDULE.asleep_answer(SCHEDULE.stretches[0]), [SSH_KEY])
    (tmp_path / "user-data.yaml").write_text(text)
    schema = subprocess.run([cloud_init, "schema", "--config-file", str(tmp_path / "user-data.yaml")], check=False,
                            capture_output=True, text=True)
    assert schema.returncode == 0 and "Valid cloud-config" in schema.stdout, schema.stdout + schema.stderr
    config = yaml.safe_load(text)
    (site,) = config["write_files"]
    assert site["path"] == SITE and config["ssh_authorized_keys"] == [SSH_KEY] and config["ssh_pwauth"] is False
    assert ["rm", "-f", "/etc/nginx/sites-enabled/default"] in config["runcmd"]  # its default_server would clash
    assert "Bearer" not in text and "hf_" not in text


def run_at(monkeypatch, now: datetime):
    monkeypatch.setattr(components.stack, "deploy_instant", lambda: now)
    raw = raw_config("do-office", DO_OFFICE)
    return place(parse_config(raw)), run_offline(raw)


@pytest.mark.parametrize(("now", "wakes"), [(TUESDAY_NIGHT, "Wed 08:00"), (SATURDAY, "Mon 08:00")])
def test_asleep_the_stack_runs_one_small_droplet_answering_the_next_wake(monkeypatch, now, wakes):
    plan, result = run_at(monkeypatch, now)
    node = asleep_node("digitalocean")
    (droplet,) = of_type(result, DROPLET)  # no GPU droplet, only the asleep one
    inputs = droplet["inputs"]
    assert (inputs["size"], inputs["image"], inputs["region"]) == (node.instance_type, node.image, plan.region)
    (stack_tag,) = [t for t in of_type(result, "digitalocean:index/tag:Tag") if t["name"].endswith("-nodes")]
    assert len(inputs["tags"]) == 1 and inputs["tags"][0].startswith(stack_tag["name"])  # the balancer's and the firewall's tag
    (balancer,) = [b for b in of_type(result, "digitalocean:index/loadBalancer:LoadBalancer") if b["inputs"].get("network") == "EXTERNAL"]
    assert balancer["inputs"]["dropletTag"] == inputs["tags"][0] and balancer["inputs"]["healthcheck"]["path"] == HEALTH_PATH
    config = yaml.safe_load(inputs["userData"])
    (site,) = config["write_files"]
    answer = plan.schedule.asleep_answer(plan.schedule.sleeping_after(now))
    assert answer["wakes_at"] == wakes and site["content"] == asleep_site(answer)  # the site the nginx tests above serve


def test_awake_there_is_no_asleep_droplet(monkeypatch):
    plan, result = run_at(monkeypatch, TUESDAY_MORNING)
    sizes = [d["inputs"]["size"] for d in of_type(result, DROPLET)]
    assert sizes == [plan.node_groups[0].offer.instance_type] * plan.node_groups[0].count


def test_cost_shows_the_asleep_droplet_for_the_asleep_hours(stack_file, cli):
    plan = place(parse_config(raw_config("do-office", DO_OFFICE)))
    record = schedule_record(plan)
    node = asleep_node("digitalocean")
    asleep = record["asleep_node"]
    assert asleep["monthly_hours"] == pytest.approx(730 - record["monthly_hours"], abs=0.01)
    assert asleep["monthly_usd"] == round(node.hourly_usd * asleep["monthly_hours"], 2)
    # 56 h a week active: 730 × 56/168 = 243.33 h; asleep 486.67 h × 0.00893 $/h = 4.35 $/month
    assert (record["monthly_hours"], asleep["monthly_usd"]) == (243.33, 4.35)
    result = cli("cost", "--config", str(stack_file(DO_OFFICE)))
    assert result.code == 0, result.stderr
    line = "Asleep: one s-1vcpu-1gb droplet answers 503 with the wake-up time, 0.00893 $/h x 486.7 h = 4.35 $/month"
    assert line in result.stdout.splitlines()
    assert line in (ROOT / "README.md").read_text().split("## Scaling and monitoring", 1)[1].splitlines()  # as README shows it


def test_clouds_whose_balancer_answers_keep_no_asleep_node(stack_file):
    for cloud in ("aws", "alicloud"):
        assert asleep_node(cloud) is None
        plan = place(parse_config(raw_config("office", {**DO_OFFICE, "cloud": cloud, "services": [LLM]})))
        assert schedule_record(plan)["asleep_node"] is None

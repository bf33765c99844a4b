"""bootstrap/render.py: a node group's user-data, checked by the real cloud-init, shellcheck and systemd.

Where a tool is missing the test skips locally with the reason, and fails when CI is set.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from bootstrap import BootTarget, InlineSecrets, SecretStore, encode_user_data, render_user_data
from bootstrap.gateway import FILES
from bootstrap.render import USER_DATA_LIMITS
from bootstrap.services import CACHE_DIR, CUDA_CHECK_IMAGE
from infra.config import load_raw
from infra.node_storage import node_group
from tests.helpers import (
    AWS_LOG_GROUP,
    AWS_STORE,
    CASES,
    FAKE_API_KEY,
    FAKE_HF_TOKEN,
    OOS_STORE,
    SSH_KEY,
    STACKS,
    group,
    need,
    node_files,
    offer,
    shipped,
    shipped_plan,
    svc,
)

# --- the real tools on every kind of node ------------------------------------------------------


def is_shell(text: str) -> bool:
    return text.startswith(("#!/bin/bash", "# shellcheck shell=bash"))


def check_with_tools(user_data: str, where: Path) -> None:
    """cloud-init's schema check on the user-data, shellcheck on every shell file it writes."""
    cloud_init, shellcheck = need("cloud-init"), need("shellcheck")
    where.mkdir(parents=True, exist_ok=True)
    config = where / "user-data.yaml"
    config.write_text(user_data)
    schema = subprocess.run([cloud_init, "schema", "--config-file", str(config)], check=False, capture_output=True, text=True)
    assert schema.returncode == 0 and "Valid cloud-config" in schema.stdout, schema.stdout + schema.stderr
    scripts = []
    for path, file in node_files(user_data).items():
        if is_shell(file.text):
            scripts.append(where / path.strip("/").replace("/", "__"))
            scripts[-1].write_text(file.text)
    assert any(p.name.endswith("llm-deploy") for p in scripts) and any(p.name.endswith("node.env") for p in scripts)
    check = subprocess.run([shellcheck, *map(str, scripts)], check=False, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("name", CASES)
def test_user_data_passes_cloud_init_schema_and_shellcheck(name, rendered, tmp_path):
    check_with_tools(rendered[name], tmp_path)


def test_cloud_init_schema_check_can_fail(tmp_path):
    """The schema check above is not a rubber stamp: a bad cloud-config is refused."""
    cloud_init = need("cloud-init")
    config = tmp_path / "bad.yaml"
    config.write_text("#cloud-config\nwrite_files:\n  - path: /x\n    permissions: 600\n")
    assert subprocess.run([cloud_init, "schema", "--config-file", str(config)], check=False, capture_output=True).returncode != 0


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_renders_valid_user_data(stack, tmp_path):
    """Each stack's program, offline: the user-data its cloud's component renders passes both tools."""
    _, result = shipped(stack)
    assert result.user_data
    for name, text in result.user_data.items():
        check_with_tools(text, tmp_path / name)


# --- what the node is told ---------------------------------------------------------------------


def test_cpu_node_has_no_gpu_step(rendered):
    user_data = rendered["aws-cpu"]
    everything = user_data + "".join(f.text for f in node_files(user_data).values())
    assert "nvidia" not in everything.lower()
    assert "--gpus" not in everything
    files = node_files(user_data)
    assert "/usr/local/sbin/llm-deploy-gpu" not in files
    assert "LLM_DEPLOY_ACCELERATOR=cpu" in files["/etc/llm-deploy/node.env"].text
    # A GPU node of the same services does carry the GPU steps: the check above can fail.
    assert "/usr/local/sbin/llm-deploy-gpu" in node_files(rendered["aws-ssm-driver-image"])


def test_driver_install_only_where_the_image_has_none(rendered, tmp_path):
    def env(name: str) -> dict[str, str]:
        text = node_files(rendered[name])["/etc/llm-deploy/node.env"].text
        (tmp_path / "node.env").write_text(text)
        out = subprocess.run(["bash", "-c", '. "$1"; set | grep "^LLM_DEPLOY_"', "_", str(tmp_path / "node.env")],
                             capture_output=True, text=True, check=True)  # fmt: skip
        return dict(line.split("=", 1) for line in out.stdout.splitlines())

    assert env("aws-ssm-driver-image")["LLM_DEPLOY_IMAGE_HAS_DRIVER"] == "1"
    no_driver = env("alicloud-oos-no-driver")
    assert no_driver["LLM_DEPLOY_IMAGE_HAS_DRIVER"] == "0" and no_driver["LLM_DEPLOY_DRIVER_BRANCH"] == "580"
    assert no_driver["LLM_DEPLOY_CUDA_CHECK_IMAGE"] == CUDA_CHECK_IMAGE
    assert env("alicloud-tp8-a100-no-driver")["LLM_DEPLOY_FABRIC_MANAGER"] == "1"
    assert no_driver["LLM_DEPLOY_FABRIC_MANAGER"] == "0"
    gpu_script = (FILES / "llm-deploy-gpu").read_text()
    assert "nvidia-ctk runtime configure --runtime=docker" in gpu_script


def test_an_aws_gpu_group_with_instance_store_nvme_gets_the_local_cache_and_a_cpu_group_does_not():
    """The placed plan says where the local NVMe is; the node learns it from node.env (and nothing else does)."""
    (gpu,) = shipped_plan("prod").node_groups
    assert gpu.offer.instance_type == "p5.4xlarge" and gpu.storage.instance_store_gb == 3800
    cpu = node_group("encoders", offer("aws", "c7i.xlarge", None, 0, None), 1,
                     [svc("embedding", accelerator="cpu"), svc("rerank", accelerator="cpu")], [1.1, 1.1])  # fmt: skip
    for placed, target, line in ((gpu, BootTarget("aws", True, metrics_log_group=AWS_LOG_GROUP), "LLM_DEPLOY_LOCAL_CACHE=/opt/dlami/nvme"),
                                 (cpu, BootTarget("aws", False, metrics_log_group=AWS_LOG_GROUP), "LLM_DEPLOY_LOCAL_CACHE=''")):  # fmt: skip
        env = node_files(render_user_data(placed, target, AWS_STORE))["/etc/llm-deploy/node.env"].text
        assert f"{line}\n" in env, env


def test_boot_resumes_after_the_driver_reboot(rendered):
    """The bootstrap is a unit enabled before any reboot, run at each boot until its done-marker exists."""
    user_data = yaml.safe_load(rendered["alicloud-oos-no-driver"])
    assert ["systemctl", "enable", "llm-deploy-bootstrap.service"] in user_data["runcmd"]
    unit = node_files(rendered["alicloud-oos-no-driver"])["/etc/systemd/system/llm-deploy-bootstrap.service"].text
    assert "ConditionPathExists=!/var/lib/llm-deploy/bootstrap.done" in unit
    assert "WantedBy=multi-user.target" in unit and "Restart=on-failure" in unit
    # Started, not waited for: multi-user.target and cloud-final do not wait for a resumed bootstrap.
    assert "Type=exec" in unit and "Type=oneshot" not in unit
    service_unit = node_files(rendered["alicloud-oos-no-driver"])["/etc/systemd/system/llm-deploy@.service"].text
    assert "Restart=always" in service_unit


def test_services_start_after_the_cache_disk_is_mounted(rendered):
    unit = node_files(rendered["alicloud-oos-no-driver"])["/etc/systemd/system/llm-deploy@.service"].text
    assert f"RequiresMountsFor={CACHE_DIR}\n" in unit


def test_systemd_units_verify(rendered, tmp_path):
    """systemd's own check of the units as the node gets them (an extra: skipped where systemd is absent)."""
    analyze, system_units = shutil.which("systemd-analyze"), Path("/lib/systemd/system")
    if analyze is None or not system_units.is_dir():
        pytest.skip("systemd-analyze or /lib/systemd/system is not available")
    shutil.copytree(system_units, tmp_path / "lib/systemd/system", symlinks=True)
    units = tmp_path / "etc/systemd/system"
    units.mkdir(parents=True)
    for stub in ("docker.service", "nginx.service"):  # installed by the bootstrap; stand-ins here
        (units / stub).write_text("[Unit]\nDescription=stand-in\n[Service]\nExecStart=/bin/true\n")
    for path, file in node_files(rendered["aws-ssm-driver-image"]).items():
        if path.startswith(("/etc/systemd/system/", "/usr/local/sbin/")):
            (tmp_path / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / path.lstrip("/")).write_text(file.text)
            (tmp_path / path.lstrip("/")).chmod(int(file.permissions, 8))
    names = ["llm-deploy-bootstrap.service", "llm-deploy-secrets.service", "llm-deploy-health.service", "llm-deploy@llm.service"]
    result = subprocess.run([analyze, "verify", f"--root={tmp_path}", *names], check=False, capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout + result.stderr, result.stdout + result.stderr


def test_user_data_is_deterministic():
    """DigitalOcean replaces a droplet whose user-data changes: the same plan must give the same bytes."""
    case = CASES["digitalocean-inline-driver-image"]
    assert case.render() == case.render()


def test_largest_aws_node_fits_the_ec2_user_data_limit():
    long_model = "meta-llama/Llama-3.3-70B-Instruct-quantized.w8a8-dynamic"
    llm = replace(svc("llm", tp=8, max_model_len=131072, gpu_memory_utilization=0.85), model=long_model)
    node = group("llm-embedding-rerank", offer("aws", "p5.48xlarge", "H100", 8, "hopper"), llm, svc("embedding"), svc("rerank"))
    store = SecretStore("aws-ssm", "eu-central-1", "/llm-deploy/production-eu/api-key", "/llm-deploy/production-eu/hf-token")
    sent = base64.b64decode(encode_user_data(render_user_data(node, BootTarget("aws", False, metrics_log_group=AWS_LOG_GROUP), store)))
    assert len(sent) <= USER_DATA_LIMITS["aws"]  # EC2 counts the bytes before base64: gzip inside


# --- secrets and access ------------------------------------------------------------------------


def test_store_user_data_names_the_parameters_only(rendered):
    for name in ("aws-ssm-driver-image", "alicloud-oos-no-driver"):
        files = node_files(rendered[name])
        assert "/etc/llm-deploy/secrets.env" not in files
        env = files["/etc/llm-deploy/node.env"].text
        store = CASES[name].secrets
        assert f"LLM_DEPLOY_API_KEY_NAME={store.api_key_name}" in env
        assert f"LLM_DEPLOY_SECRET_STORE={store.kind}" in env
    assert "/usr/local/lib/llm-deploy/alicloud_oos.py" in node_files(rendered["alicloud-oos-no-driver"])


@pytest.mark.parametrize("stack", STACKS)
def test_no_secret_in_user_data_where_the_cloud_has_a_store(stack):
    """The whole program offline with a distinctive key: only DigitalOcean's user-data may carry it, root-only."""
    from infra.cli.offline import run_offline

    raw = load_raw(stack)
    values = raw.values | {"apiKey": FAKE_API_KEY, "hfToken": FAKE_HF_TOKEN}
    result = run_offline(replace(raw, values=values, secret_keys=raw.secret_keys | {"apiKey", "hfToken"}))
    cloud = result.outputs["cloud"]
    for text in result.user_data.values():
        if cloud != "digitalocean":
            assert FAKE_API_KEY not in text and FAKE_HF_TOKEN not in text
            continue
        # No store on DigitalOcean: the values live in one 0600 file and nowhere else.
        files = node_files(text)
        assert "LLM_DEPLOY_SECRET_STORE=inline" in files["/etc/llm-deploy/node.env"].text
        assert [path for path, f in files.items() if FAKE_API_KEY in f.text] == ["/etc/llm-deploy/secrets.env"]
        assert files["/etc/llm-deploy/secrets.env"].permissions == "0600"
        assert FAKE_HF_TOKEN in files["/etc/llm-deploy/secrets.env"].text


@pytest.mark.parametrize("name", sorted(CASES))
def test_password_ssh_is_off_on_every_node(name):
    """DigitalOcean sets a root password on a droplet without SSH keys: only keys may log in."""
    assert yaml.safe_load(CASES[name].render())["ssh_pwauth"] is False


def test_ssh_keys_are_authorized_only_when_given(rendered):
    assert yaml.safe_load(rendered["aws-ssm-driver-image"])["ssh_authorized_keys"] == [SSH_KEY]
    assert "ssh_authorized_keys" not in yaml.safe_load(rendered["aws-cpu"])


# --- bad input ---------------------------------------------------------------------------------


def test_bad_input_is_refused_naming_the_field():
    case = CASES["aws-ssm-driver-image"]
    with pytest.raises(ValueError, match=r"upstreams: unknown service kind 'chat'"):
        render_user_data(case.group, case.target, case.secrets, {"chat": "http://10.0.0.1"})
    with pytest.raises(ValueError, match=r"upstreams\[llm\]"):
        render_user_data(CASES["aws-cpu"].group, CASES["aws-cpu"].target, AWS_STORE, {"llm": "http://10.0.0.1/v1; evil"})
    with pytest.raises(ValueError, match="secrets.api_key"):
        render_user_data(group("g", offer("digitalocean", "x", "H100", 1, "hopper"), svc("llm")),
                         BootTarget("digitalocean", True), InlineSecrets('key"; rm -rf /'))  # fmt: skip
    with pytest.raises(ValueError, match="secrets.kind"):
        render_user_data(case.group, case.target, OOS_STORE)
    with pytest.raises(ValueError, match="aws has a secret store"):
        render_user_data(case.group, case.target, InlineSecrets(FAKE_API_KEY))
    with pytest.raises(ValueError, match="target.cloud"):
        render_user_data(case.group, BootTarget("alicloud", False), case.secrets)
    with pytest.raises(ValueError, match="target.os_release"):
        render_user_data(case.group, BootTarget("aws", True, os_release="centos-7", metrics_log_group=AWS_LOG_GROUP), case.secrets)
    with pytest.raises(ValueError, match="needs 8 GPUs"):
        render_user_data(group("g", offer("aws", "g6e.12xlarge", "L40S", 4, "89"), svc("llm", tp=8)), case.target, AWS_STORE)
    with pytest.raises(ValueError, match="needs a GPU"):
        render_user_data(group("g", offer("aws", "c7i", None, 0, None), svc("llm", accelerator="cpu")), case.target, AWS_STORE)

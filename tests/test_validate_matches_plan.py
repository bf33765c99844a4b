"""`validate` runs every check the program relies on: what it accepts, `plan` builds; what `plan` would
refuse for a reason of the config, `validate` refuses first, with exit 2 and the stack file and field."""

from __future__ import annotations

import base64
import random

import pytest

from infra.catalog import DATA_DIR
from tests.helpers import LLM, REGIONS, STACKS

CLOUD_STACKS = {cloud: {"cloud": cloud, "region": region, "services": [LLM]} for cloud, region in REGIONS.items()}


def ed25519_keys(count: int, seed: int = 14) -> list[str]:
    """OpenSSH ed25519 public key lines as ssh-keygen writes them (the wire blob with random key bytes)."""
    rng = random.Random(seed)
    blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20"
    return [f"ssh-ed25519 {base64.b64encode(blob + rng.randbytes(32)).decode()} user{i}@laptop-{i:04d}" for i in range(count)]


def test_ed25519_keys_look_like_ssh_keygen_output():
    (key,) = ed25519_keys(1)
    assert key.startswith("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI") and len(key.split()[1]) == 68


@pytest.mark.parametrize("cloud", list(CLOUD_STACKS))
def test_a_thousand_ssh_keys_are_refused_by_validate_and_plan_alike(cli, stack_file, cloud):
    path = stack_file({**CLOUD_STACKS[cloud], "sshCidrs": ["203.0.113.0/24"], "sshPublicKeys": ed25519_keys(1000)})
    result = cli("validate", "--config", str(path))
    assert result.code == 2, result.stdout
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{path}: sshPublicKeys: node group 'llm': user-data is ") and "with the 1000 keys in it" in line
    planned = cli("plan", "--config", str(path))
    assert (planned.code, planned.stderr) == (2, result.stderr)


def largest_accepted_key_count(cli, stack_file, cloud: str) -> int:
    """Bisect the number of SSH keys `validate` accepts on this cloud."""
    low, high = 1, 1000

    def accepted(count: int) -> bool:
        path = stack_file({**CLOUD_STACKS[cloud], "sshCidrs": ["203.0.113.0/24"], "sshPublicKeys": ed25519_keys(count)})
        return cli("validate", "--config", str(path)).code == 0

    assert accepted(low) and not accepted(high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if accepted(middle) else (low, middle)
    return low


@pytest.mark.parametrize("cloud", ["aws", "digitalocean"])
def test_at_the_user_data_limit_plan_builds_what_validate_accepts(cli, stack_file, cloud):
    count = largest_accepted_key_count(cli, stack_file, cloud)
    assert count >= 20  # a team's keys fit
    path = stack_file({**CLOUD_STACKS[cloud], "sshCidrs": ["203.0.113.0/24"], "sshPublicKeys": ed25519_keys(count)})
    assert cli("plan", "--config", str(path)).code == 0
    path = stack_file({**CLOUD_STACKS[cloud], "sshCidrs": ["203.0.113.0/24"], "sshPublicKeys": ed25519_keys(count + 1)})
    assert cli("plan", "--config", str(path)).code == 2


def test_a_two_gpu_digitalocean_size_in_a_catalog_is_refused_naming_the_row(cli, tmp_path, stack_file):
    """DigitalOcean boots CUDA only from its 1- and 8-GPU NVIDIA base images; `plan` used to refuse a
    2-GPU size late, naming no field."""
    rows = (DATA_DIR / "catalog.csv").read_text().splitlines()
    one_gpu = next(r for r in rows if r.startswith("digitalocean,gpu-h100x1-80gb,tor1,H100,1,80,20,240,"))
    two_gpus = one_gpu.replace("gpu-h100x1-80gb,tor1,H100,1,80,20,240,", "gpu-h100x2-160gb,tor1,H100,2,80,40,480,")
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("\n".join([rows[0], one_gpu, two_gpus]) + "\n")
    path = stack_file({"cloud": "digitalocean", "region": "tor1", "catalogFile": str(catalog),
                       "services": [{**LLM, "model": "meta-llama/Llama-3.1-70B-Instruct", "dtype": "fp8"}]})
    for command in ("validate", "plan"):
        result = cli(command, "--config", str(path))
        assert result.code == 2, (command, result.stderr)
        assert result.stderr.splitlines() == [
            (f"{path}: catalogFile: {catalog}: line 3: gpu_count: digitalocean has NVIDIA base images for 1 or 8 GPUs only, "
            "not 2 (data/gpu_base_images.csv)")
        ]


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ({**LLM, "replicas": 100000}, "services[0].replicas: must be <= 100"),
        ({**LLM, "model": "acme/" + "x" * 2_000, "paramsB": 7}, "services[0].model: must have at most 256 characters"),
    ],
    ids=["replicas 100000", "a 2,000-character model name"],
)
def test_bounded_values_are_refused_by_validate_and_plan(cli, stack_file, service, expected):
    path = stack_file({"cloud": "aws", "region": "us-east-1", "services": [service]})
    for command in ("validate", "plan"):
        result = cli(command, "--config", str(path))
        assert (result.code, result.stderr.splitlines()) == (2, [f"{path}: {expected}"]), command


@pytest.mark.parametrize("stack", STACKS)
def test_every_shipped_stack_validate_accepts_goes_through_plan(cli, stack):
    assert cli("validate", "--stack", stack).code == 0
    assert cli("plan", "--stack", stack).code == 0

"""README's set-up, Pulumi.yaml and scripts/test.sh agree on one virtual environment, and README's
example stack file is a valid stack."""

from __future__ import annotations

import re

import yaml

from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()
VIRTUALENV = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["runtime"]["options"]


def setup_command(number: int) -> str:
    """The command under README's `# <number>.` comment in the set-up block."""
    block = README.split("## Set-up: two commands", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    lines = block.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"# {number}."))
    return next(line for line in lines[start:] if line and not line.startswith("#"))


def test_pulumi_runs_the_program_in_the_environment_readme_creates():
    assert VIRTUALENV == {"toolchain": "pip", "virtualenv": ".venv"}
    venv = VIRTUALENV["virtualenv"]
    assert setup_command(1).startswith(f"python3 -m venv {venv} && . {venv}/bin/activate && pip install -e . && ")
    assert setup_command(2) == "bash scripts/test.sh"
    deploy = README.split("## Deploy for real", 1)[1].split("```bash\n", 1)[1]
    assert deploy.startswith(f"python3 -m venv {venv} && . {venv}/bin/activate && pip install -e .")
    assert re.search(rf"^venv={re.escape(venv)}$", (ROOT / "scripts" / "test.sh").read_text(), re.MULTILINE)
    assert f"\n{venv}/\n" in (ROOT / ".gitignore").read_text()


def test_readme_example_stack_is_valid_and_lands_where_readme_says(cli, tmp_path):
    section = README.split("## Stack config", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert 8 <= len(example.splitlines()) <= 14
    path = tmp_path / "Pulumi.mine.yaml"
    path.write_text(example)
    result = cli("cost", "--config", str(path), "--format", "json")
    assert result.code == 0, result.stderr
    preview = result.json()
    said = " ".join(section.split("```", 2)[2].split("Every key:", 1)[0].split())
    assert all(f"`{group['instance_type']}`" in said for group in preview["node_groups"])
    assert f"{preview['total_hourly_usd']:.2f} $/h" in said

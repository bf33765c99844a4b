"""`llm-deploy images`: each node group's pin, and `--update` writing the newest ids into the stack file with
every other byte kept. The cloud resolvers (`infra/cli/images/<cloud>.py`) are stood in for: they need the
cloud's API; the stand-ins answer ids in each cloud's own format."""

from __future__ import annotations

import shutil
import sys
import types

import pytest
import yaml

from infra.cli import images
from infra.cli.refresh import MissingCredentials
from infra.placement import place
from tests.helpers import STACKS, STACKS_DIR, shipped_plan

# Ids as each cloud's API spells them: an EC2 AMI, a DigitalOcean image's number, an Alibaba public image.
NEWEST = {"aws": "ami-0c7217cdde317cfec", "digitalocean": "164324753", "alicloud": "ubuntu_22_04_x64_20G_alibase_20240926.vhd"}
NEWER = {"aws": "ami-0fe630eb857a6ec83", "digitalocean": "170139411", "alicloud": "ubuntu_22_04_x64_20G_alibase_20250117.vhd"}


def stand_in(monkeypatch, cloud: str, latest) -> list:
    """`infra.cli.images.<cloud>` replaced by a module whose `latest` is given; returns the plans it was asked about."""
    asked = []
    module = types.ModuleType(f"infra.cli.images.{cloud}")

    def answer(plan):
        asked.append(plan)
        return latest(plan)

    module.latest = answer
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return asked


def copied_stacks(tmp_path):
    directory = tmp_path / "stacks"
    shutil.copytree(STACKS_DIR, directory)
    return directory


def pin_block(plan, ids: dict[str, str]) -> str:
    return "  llm-deploy:nodeImages:\n" + "".join(f'    {g.name}: "{ids[g.name]}"\n' for g in plan.node_groups)


def test_unpinned_groups_are_listed_as_such(cli):
    result = cli("images", "--stack", "dev")
    assert result.code == 0, result.stderr
    plan = shipped_plan("dev")
    for group in plan.node_groups:
        assert f"{group.name} ({plan.cloud} {group.offer.instance_type}): unpinned" in result.stdout
    document = cli("images", "--stack", "dev", "--format", "json").json()
    assert [(g["name"], g["image"], g["pinned"]) for g in document["node_groups"]] == [(g.name, None, False) for g in plan.node_groups]


@pytest.mark.parametrize("stack", STACKS)
def test_update_pins_every_group_and_keeps_the_rest_of_the_file(cli, monkeypatch, tmp_path, stack):
    """The shipped stack file, copied: --update adds the nodeImages entry after the last config key, a second
    --update replaces it in place; every other byte (comments, order, quoting) stays."""
    directory = copied_stacks(tmp_path)
    path = directory / f"Pulumi.{stack}.yaml"
    original = path.read_text()
    plan = shipped_plan(stack)
    asked = stand_in(monkeypatch, plan.cloud, lambda p: {g.name: f"{NEWEST[p.cloud]}" for g in p.node_groups})
    result = cli("images", "--stack", stack, "--stacks-dir", str(directory), "--update")
    assert result.code == 0, result.stderr
    assert [p.node_groups for p in asked] == [plan.node_groups]
    first = {g.name: NEWEST[plan.cloud] for g in plan.node_groups}
    updated = path.read_text()
    block = pin_block(plan, first)
    assert block in updated and updated.replace(block, "", 1) == original
    assert yaml.safe_load(updated)["config"]["llm-deploy:nodeImages"] == first
    for group in plan.node_groups:
        assert f"{group.name} ({plan.cloud} {group.offer.instance_type}): {first[group.name]} (was unpinned)" in result.stdout

    stand_in(monkeypatch, plan.cloud, lambda p: {g.name: NEWER[p.cloud] for g in p.node_groups})
    again = cli("images", "--stack", stack, "--stacks-dir", str(directory), "--update", "--format", "json")
    assert again.code == 0, again.stderr
    second = {g.name: NEWER[plan.cloud] for g in plan.node_groups}
    assert path.read_text() == updated.replace(block, pin_block(plan, second))
    assert [(g["image"], g["pinned"]) for g in again.json()["node_groups"]] == [(second[g.name], True) for g in plan.node_groups]


def test_the_pinned_plan_shows_the_pins(cli, monkeypatch, tmp_path):
    directory = copied_stacks(tmp_path)
    stand_in(monkeypatch, "alicloud", lambda p: {g.name: NEWEST["alicloud"] for g in p.node_groups})
    assert cli("images", "--stack", "alicloud-dev", "--stacks-dir", str(directory), "--update").code == 0
    from infra.config import load_raw, parse_config

    plan = place(parse_config(load_raw("alicloud-dev", stacks_dir=directory)))
    assert {g.image for g in plan.node_groups} == {NEWEST["alicloud"]}
    document = cli("plan", "--stack", "alicloud-dev", "--stacks-dir", str(directory)).json()
    assert {(g["image"]["id"], g["image"]["pinned"]) for g in document["node_groups"]} == {(NEWEST["alicloud"], True)}


def test_a_hand_written_entry_is_replaced_and_comments_around_it_kept(tmp_path):
    text = ("# my stack\nconfig:\n  llm-deploy:cloud: aws   # pinned\n  llm-deploy:nodeImages: {llm: ami-00000000}  # old pin\n"
            "  # the budget follows\n  llm-deploy:budgetUsdPerHour: 3\n# end\n")
    replaced = images.with_pins(text, {"llm": "ami-0c7217cdde317cfec"}, "f")
    assert replaced == ("# my stack\nconfig:\n  llm-deploy:cloud: aws   # pinned\n  llm-deploy:nodeImages:\n"
                        '    llm: "ami-0c7217cdde317cfec"\n  # the budget follows\n  llm-deploy:budgetUsdPerHour: 3\n# end\n')
    added = images.with_pins("config:\n    llm-deploy:cloud: digitalocean\n    # trailing comment\n", {"llm": "164324753"}, "f")
    assert added == 'config:\n    llm-deploy:cloud: digitalocean\n    llm-deploy:nodeImages:\n      llm: "164324753"\n    # trailing comment\n'
    assert yaml.safe_load(added)["config"]["llm-deploy:nodeImages"] == {"llm": "164324753"}  # digits stay a string


def test_without_credentials_one_line_exit_1_and_the_file_untouched(cli, monkeypatch, tmp_path):
    directory = copied_stacks(tmp_path)
    before = (directory / "Pulumi.dev.yaml").read_bytes()

    def no_credentials(plan):
        raise MissingCredentials("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE")

    stand_in(monkeypatch, "aws", no_credentials)
    result = cli("images", "--stack", "dev", "--stacks-dir", str(directory), "--update")
    assert result.code == 1
    assert result.stderr.splitlines() == ["error: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"]
    assert (directory / "Pulumi.dev.yaml").read_bytes() == before


def test_a_cloud_without_a_resolver_says_so(cli, monkeypatch, tmp_path):
    directory = copied_stacks(tmp_path)
    monkeypatch.setitem(sys.modules, "infra.cli.images.aws", None)  # as if infra/cli/images/aws.py did not exist
    result = cli("images", "--stack", "dev", "--stacks-dir", str(directory), "--update")
    assert result.code == 1
    assert result.stderr.splitlines() == ["error: no image resolver for aws yet (infra/cli/images/aws.py)"]


def test_an_answer_that_is_not_an_image_id_is_not_written(cli, monkeypatch, tmp_path):
    directory = copied_stacks(tmp_path)
    before = (directory / "Pulumi.dev.yaml").read_bytes()
    stand_in(monkeypatch, "aws", lambda p: {g.name: "ubuntu-22-04" for g in p.node_groups})
    result = cli("images", "--stack", "dev", "--stacks-dir", str(directory), "--update")
    assert result.code == 1
    assert "is not a machine image id of aws" in result.stderr
    assert (directory / "Pulumi.dev.yaml").read_bytes() == before


def test_a_bad_stack_exits_2_naming_the_field(cli, stack_file):
    path = stack_file({"cloud": "aws", "nodeImages": {"nosuch": "ami-0c7217cdde317cfec"}})
    result = cli("images", "--config", str(path), "--update")
    assert result.code == 2
    assert result.stderr.startswith(f"{path}: nodeImages.nosuch: names no node group of the plan")
    assert cli("images", "--stack", "no-such-stack").code == 2

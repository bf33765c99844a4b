"""`llm-deploy images`: each node group's machine image pin (`nodeImages`), and `--update` to take the newest.

An unpinned node group gets the image its cloud names as newest at the first `pulumi up`, and keeps it
(the components ignore later changes of the image): a new image comes only when the user asks. `--update`
asks the cloud's resolver for the newest image ids and writes them into the stack file's
`llm-deploy:nodeImages`; the rest of the file stays byte for byte (comments, order, quoting).

Each cloud's resolver is `infra.cli.images.<cloud>` (the cloud record's `name`, as for preflight and the
catalog refresh) with `latest(plan) -> dict[str, str]`: node group name → the newest image id for it,
read with the cloud's credentials; without them it raises `infra.cli.refresh.MissingCredentials` (one
line naming the variables to set). A cloud without such a module has no resolver yet.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from infra import clouds
from infra.config import CONFIG_NAMESPACE, load_yaml_document
from infra.errors import BadInput, LlmDeployError
from infra.plan import DeploymentPlan

NODE_IMAGES_KEY = f"{CONFIG_NAMESPACE}:nodeImages"
UNPINNED = "unpinned"


class NoResolver(LlmDeployError):
    """The plan's cloud has no image resolver module (exit 1)."""


@dataclass(frozen=True)
class GroupImage:
    """A node group's image: the pinned id, or None (resolved at the first `pulumi up`, then kept)."""

    name: str
    instance_type: str
    image: str | None

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "instance_type": self.instance_type, "image": self.image, "pinned": self.image is not None}


def group_images(plan: DeploymentPlan) -> tuple[GroupImage, ...]:
    return tuple(GroupImage(g.name, g.offer.instance_type, g.image) for g in plan.node_groups)


def resolver(cloud: str) -> ModuleType | None:
    """The cloud's resolver module (`infra.cli.images.<cloud>`), or None when it has none yet."""
    name = f"{__name__}.{clouds.get(cloud).name}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as missing:
        if missing.name == name:
            return None
        raise


def newest(plan: DeploymentPlan) -> dict[str, str]:
    """Node group → the newest image id, from the cloud's resolver; each id checked against the cloud's format.
    Raises NoResolver, MissingCredentials (from the resolver), or LlmDeployError for an answer that is not one."""
    module = resolver(plan.cloud)
    if module is None:
        raise NoResolver(f"no image resolver for {plan.cloud} yet (infra/cli/images/{plan.cloud}.py)")
    found = module.latest(plan)
    cloud = clouds.get(plan.cloud)
    groups = [g.name for g in plan.node_groups]
    if sorted(found) != sorted(groups):
        raise LlmDeployError(f"{plan.cloud} image resolver answered for {', '.join(sorted(found)) or 'no group'}, "
                             f"not for the plan's node groups {', '.join(groups)}")
    for group, image in found.items():
        if wrong := cloud.image_id_problem(image):
            raise LlmDeployError(f"{plan.cloud} image resolver: {group}: {wrong}")
    return {name: found[name] for name in groups}


def _end_of(node: yaml.Node) -> int:
    """Where a value ends in the text: a block collection at its last value's end (not past the comments after it)."""
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and not node.flow_style and node.value:
        last = node.value[-1]
        return _end_of(last[1] if isinstance(node, yaml.MappingNode) else last)
    return node.end_mark.index


def _line_end(text: str, index: int) -> int:
    """Just past the end of the line holding `index` (its trailing comment too)."""
    newline = text.find("\n", index)
    return len(text) if newline < 0 else newline + 1


def _block(pins: dict[str, str], indent: int) -> str:
    lines = [f"{' ' * indent}{NODE_IMAGES_KEY}:"]
    lines += [f"{' ' * (indent + 2)}{name}: {json.dumps(image)}" for name, image in pins.items()]  # quoted: an id of digits stays a string
    return "\n".join(lines) + "\n"


def with_pins(text: str, pins: dict[str, str], source: str) -> str:
    """The stack file's text with `llm-deploy:nodeImages` set to `pins`: an existing entry's lines replaced,
    else a new entry after the last `config:` key; every other byte as it was."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    config = next((value for key, value in root.value if key.value == "config"), None) if isinstance(root, yaml.MappingNode) else None
    if not isinstance(config, yaml.MappingNode) or config.flow_style or not config.value:
        raise BadInput(f"{source}: config: images --update writes into a block `config:` mapping; this file has none")
    indent = config.value[0][0].start_mark.column
    entry = next(((key, value) for key, value in config.value if key.value == NODE_IMAGES_KEY), None)
    if entry is None:
        at = _line_end(text, _end_of(config))
        before = text[:at] if text[:at].endswith("\n") else text[:at] + "\n"
        return before + _block(pins, indent) + text[at:]
    key, value = entry
    start = key.start_mark.index - key.start_mark.column
    return text[:start] + _block(pins, indent) + text[_line_end(text, _end_of(value)):]


def write_pins(path: Path, pins: dict[str, str]) -> None:
    """Write the pins into the stack file and read them back (the file must say what was meant)."""
    text = path.read_text(encoding="utf-8")
    updated = with_pins(text, pins, str(path))
    written = (load_yaml_document(updated) or {}).get("config", {}).get(NODE_IMAGES_KEY)
    if written != pins:
        raise LlmDeployError(f"{path}: the rewritten file would hold nodeImages {written!r}, not {pins!r}; left unchanged")
    path.write_text(updated, encoding="utf-8")

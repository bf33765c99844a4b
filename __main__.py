"""The Pulumi program: load the stack config, make the deployment plan, build it."""

import pulumi

from components.stack import program
from infra.config import read_pulumi_config
from infra.errors import ConfigError
from infra.placement import load_config

try:
    config = load_config(read_pulumi_config())
    built = program(config)
except ConfigError as error:
    raise pulumi.RunError(str(error)) from None

for key, value in built.outputs.items():
    pulumi.export(key, value)

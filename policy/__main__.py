"""The llm-deploy policy pack: `pulumi preview --policy-pack policy` (the policies: llm_deploy_policies.py)."""

import sys
from pathlib import Path

# The policies use the project's `infra` package (catalog, placement); found here when not pip-installed.
sys.path.append(str(Path(__file__).resolve().parents[1]))

from llm_deploy_policies import PACK_NAME, pulumi_policies
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(name=PACK_NAME, policies=pulumi_policies(), enforcement_level=EnforcementLevel.MANDATORY)

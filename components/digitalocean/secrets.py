"""DigitalOcean has no secret store: the API key and HF token travel in the droplet's user-data, which
stays a Pulumi secret in state."""

from __future__ import annotations

import pulumi

from bootstrap.delivery import InlineSecrets, SecretDelivery
from components.base import StackSecrets


def inline_delivery(secrets: StackSecrets) -> pulumi.Output[SecretDelivery]:
    """The secret values themselves, as one secret output, for the user-data to carry."""
    both = pulumi.Output.all(secrets.api_key, secrets.hf_token)
    return pulumi.Output.secret(both.apply(lambda values: InlineSecrets(api_key=values[0], hf_token=values[1])))

"""`llm-deploy catalog refresh`: current prices and offerings from the providers' own APIs.

For the instance types of the current catalog, each cloud's module asks its API where each type is
offered and what it costs there (AWS: Price List Query API and EC2; DigitalOcean: `/v2/sizes`; Alibaba
Cloud: ECS DescribeAvailableResource and DescribePrice) and returns catalog rows with a source and
`as_of`. A cloud without credentials keeps its current rows. The specified cost table's prices stay,
with the fresh list price beside them, exactly as `catalog build` does.
"""

from __future__ import annotations

import datetime
import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from infra import clouds
from infra.catalog_build import catalog_row, number_text, specified_prices
from infra.errors import LlmDeployError
from infra.plan import Offer

Progress = Callable[[str], None]


class MissingCredentials(LlmDeployError):
    """The cloud's credentials are not set; the message says which variables to set."""


class RefreshError(LlmDeployError):
    """The provider's API refused or answered something unusable; the message says which call."""


@dataclass(frozen=True)
class Changes:
    dearer: tuple[tuple[Offer, Offer], ...]
    cheaper: tuple[tuple[Offer, Offer], ...]
    new: tuple[Offer, ...]
    gone: tuple[Offer, ...]

    def lines(self) -> list[str]:
        def pair(old: Offer, new: Offer) -> str:
            change = (new.hourly_usd - old.hourly_usd) / old.hourly_usd * 100 if old.hourly_usd else 0.0
            return f"{_key(new)}: {old.hourly_usd:g} -> {new.hourly_usd:g} $/h ({change:+.1f} %)"

        return ([f"dearer  {pair(o, n)}" for o, n in self.dearer] + [f"cheaper {pair(o, n)}" for o, n in self.cheaper]
                + [f"new     {_key(o)}: {o.hourly_usd:g} $/h" for o in self.new]
                + [f"gone    {_key(o)} (was {o.hourly_usd:g} $/h)" for o in self.gone])

    def summary(self) -> str:
        return f"{len(self.dearer)} dearer, {len(self.cheaper)} cheaper, {len(self.new)} new, {len(self.gone)} gone"


def _key(offer: Offer) -> str:
    return f"{offer.cloud} {offer.instance_type} {offer.region}"


def today() -> str:
    return datetime.datetime.now(datetime.UTC).date().isoformat()


def types_of(current: Iterable[Offer]) -> dict[str, Offer]:
    """One offer per instance type of the current catalog: the specs a fresh row keeps."""
    return {o.instance_type: o for o in current}


def fresh_row(spec: Offer, region: str, hourly: float, source: str, spot: float | None = None,
              basis: str = "list") -> dict[str, str]:
    """A refreshed row: the type's specs from the current catalog, the API's price and region."""
    return catalog_row(spec.cloud, spec.instance_type, region, spec.gpu, str(spec.gpu_count), str(spec.vcpus), str(spec.memory_gb),
                       str(hourly), source, today(), spot="" if spot is None else str(spot), basis=basis,
                       specified=specified_prices())


def offer_row(offer: Offer) -> dict[str, str]:
    """A current offer written back unchanged (a cloud that was not refreshed)."""
    return {"cloud": offer.cloud, "instance_type": offer.instance_type, "region": offer.region, "gpu": offer.gpu or "",
            "gpu_count": str(offer.gpu_count), "gpu_memory_gb": number_text(offer.gpu_memory_gb), "vcpus": str(offer.vcpus),
            "memory_gb": number_text(offer.memory_gb), "hourly_usd": number_text(offer.hourly_usd),
            "spot_hourly_usd": number_text(offer.spot_hourly_usd), "list_hourly_usd": number_text(offer.list_hourly_usd),
            "price_basis": offer.price_basis, "source": offer.source, "as_of": offer.as_of}


def changes(current: Sequence[Offer], fresh: Sequence[Offer], clouds: Iterable[str]) -> Changes:
    """What the refresh changes for the refreshed clouds: prices up or down, (type, region) rows new or gone."""
    scope = set(clouds)
    old = {(o.cloud, o.instance_type, o.region): o for o in current if o.cloud in scope}
    new = {(o.cloud, o.instance_type, o.region): o for o in fresh if o.cloud in scope}
    both = [(old[k], new[k]) for k in sorted(set(old) & set(new))]
    return Changes(
        dearer=tuple((o, n) for o, n in both if n.hourly_usd > o.hourly_usd),
        cheaper=tuple((o, n) for o, n in both if n.hourly_usd < o.hourly_usd),
        new=tuple(new[k] for k in sorted(set(new) - set(old))),
        gone=tuple(old[k] for k in sorted(set(old) - set(new))),
    )


def fetchers() -> dict[str, Callable[[Sequence[Offer], Progress], list[dict[str, str]]]]:
    """Each cloud's refresh (`infra.cli.refresh.<cloud>.fetch`), in the records' order, imported only when asked
    for (boto3 is an optional extra)."""
    return {cloud.name: importlib.import_module(f"{__name__}.{cloud.name}").fetch for cloud in clouds.CLOUDS}

"""infra/throughput.py: the roofline estimate of an LLM's decode speed and what a million tokens cost."""

from __future__ import annotations

import pytest

from infra.catalog import load_offers
from infra.models import find_model
from infra.throughput import estimate


@pytest.mark.parametrize(
    ("model", "dtype", "reference_tokens_per_second"),
    [
        ("deepseek-ai/deepseek-coder-6.7b-instruct", "int4", 850),  # FACTS.md: 6.7B 4-bit ≈ 850 tok/s on one H100
        ("deepseek-ai/deepseek-coder-33b-instruct", "bf16", 210),  # FACTS.md: 33B bf16 ≈ 210 tok/s on one H100
    ],
)
def test_throughput_estimate_against_reference_h100_figures(model, dtype, reference_tokens_per_second):
    """The roofline estimate stays within a factor of 3 of the reference figures (README has the table)."""
    h100 = next(o for o in load_offers() if o.instance_type == "p5.4xlarge")
    estimated = estimate(find_model(model), dtype, h100, tensor_parallel=1).tokens_per_second
    ratio = estimated / reference_tokens_per_second
    assert 1 / 3 <= ratio <= 3, f"{model} {dtype}: estimate {estimated} tok/s vs reference {reference_tokens_per_second}"


def test_throughput_grows_with_bandwidth_and_cost_per_token_follows_price():
    offers = {o.instance_type: o for o in load_offers()}
    info = find_model("Qwen/Qwen2.5-7B-Instruct")
    l4 = estimate(info, "bf16", offers["g6.xlarge"], 1)
    h100 = estimate(info, "bf16", offers["p5.4xlarge"], 1)
    assert h100.tokens_per_second > 5 * l4.tokens_per_second  # 3350 vs 300 GB/s
    assert l4.usd_per_million_tokens == pytest.approx(0.8048 / (l4.tokens_per_second * 3600) * 1e6, rel=1e-3)

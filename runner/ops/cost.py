"""cost: does tuning a model pay? Its training cost against the per-call saving (break-even)."""

from __future__ import annotations

from runner.errors import PlanError
from runner.project import Project


def break_even(project: Project, name: str, calls_per_month: float, training_usd: float | None, **prices):
    """Training cost (estimated for NAME's next job unless given) against per-call savings."""
    from runner.cost import break_even, break_even_from_tokens, load_pricing, overrides_from_settings, training_cost_for

    if training_usd is None:
        model = project.declared(name)
        estimate = training_cost_for(model, load_pricing(overrides_from_settings(project.config.providers)))
        if estimate.usd is None:
            raise PlanError(f"the training cost of {name} is unknown: {estimate.note}",
                            remedy="pass --training-usd, or add a price under providers.<name>.pricing")
        training_usd = estimate.usd
    months = prices.pop("months", None)
    if prices.get("prompt_price_per_1k_calls") is not None:
        return break_even(training_usd, calls_per_month, prices["prompt_price_per_1k_calls"],
                          prices["tuned_price_per_1k_calls"], months)
    return break_even_from_tokens(training_usd, calls_per_month, prices["prompt_tokens_saved"],
                                  prices["input_price_per_million"], months=months)

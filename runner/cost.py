"""What a tuned model costs, and when it pays for itself.

Everything here is a pure function of its arguments. The only input read from disk is the pricing table
shipped next to this file (runner/pricing.json: dated, with its sources), merged with the overrides a spec
gives under `providers.<name>.pricing`; the only output written is a chart the caller asks for.

Prices are per million tokens. Training is billed per training token, i.e. dataset tokens x epochs
(both estimated by the provider's plan: runner.providers.planning).
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runner.errors import TunerError

if TYPE_CHECKING:
    from runner.planned import PlannedModel

PRICING_PATH = Path(__file__).parent / "pricing.json"
PRICE_FIELDS = ("training_per_million_tokens", "input_per_million_tokens", "output_per_million_tokens")
TEXT_FIELDS = ("note", "source")

DEFAULT_HORIZON_MONTHS = 24  # chart length when the tuned model never pays back
MAX_DEFAULT_HORIZON_MONTHS = 120  # ten years: past that a chart says nothing useful
_EPSILON = 1e-9  # float noise: $6 / $0.10 a month must be month 60, not 61


# -- pricing table -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelPrice:
    """One base model's prices in USD per million tokens; None where no figure is known."""

    training_per_million_tokens: float | None
    input_per_million_tokens: float | None
    output_per_million_tokens: float | None
    note: str = ""
    source: str = ""
    unverified: frozenset[str] = frozenset()  # price fields not confirmed on the provider's own page
    overridden: frozenset[str] = frozenset()  # fields set by a spec's providers.<name>.pricing


@dataclass(frozen=True)
class Pricing:
    as_of: str
    currency: str
    sources: tuple[dict, ...]
    providers: dict[str, dict[str, ModelPrice]]

    def lookup(self, provider: str, base_model: str) -> ModelPrice | None:
        """The entry for a base model, accepting the Gemini API's `models/` prefix or its absence."""
        models = self.providers.get(provider, {})
        for name in _name_variants(base_model):
            if name in models:
                return models[name]
        return None


def load_pricing(overrides: dict | None = None, path: Path = PRICING_PATH) -> Pricing:
    """The shipped pricing table, deep-merged with `overrides` ({provider: {base_model: {field: value}}}).

    Overrides replace single fields, so a spec can correct one price and keep the rest. Raises TunerError
    naming every malformed override at once.
    """
    table = json.loads(path.read_text(encoding="utf-8"))
    providers = copy.deepcopy(table["providers"])
    overridden: dict[tuple[str, str], set[str]] = {}
    if overrides:
        _check_overrides(overrides)
        for provider, models in overrides.items():
            for base_model, fields in models.items():
                existing = providers.setdefault(provider, {})
                key = next((n for n in _name_variants(base_model) if n in existing), base_model)
                existing.setdefault(key, {}).update(fields)
                overridden.setdefault((provider, key), set()).update(fields)
    return Pricing(
        as_of=table["as_of"],
        currency=table["currency"],
        sources=tuple(table.get("sources", ())),
        providers={provider: {name: _model_price(entry, overridden.get((provider, name), set()))
                              for name, entry in models.items()}
                   for provider, models in providers.items()},
    )


def overrides_from_settings(provider_settings: dict) -> dict:
    """Pick `pricing` out of a spec's `providers:` mapping, in the shape load_pricing takes."""
    return {name: settings["pricing"] for name, settings in provider_settings.items()
            if isinstance(settings, dict) and settings.get("pricing")}


def _model_price(entry: dict, overridden: set[str]) -> ModelPrice:
    """A price set in a spec is the user's own figure, so it is no longer 'unverified'."""
    return ModelPrice(*(entry.get(name) for name in PRICE_FIELDS), note=entry.get("note") or "",
                      source=entry.get("source") or "",
                      unverified=frozenset(entry.get("unverified", ())) - overridden,
                      overridden=frozenset(overridden))


def _check_overrides(overrides: dict) -> None:
    problems = []
    if not isinstance(overrides, dict):
        problems.append(f"providers.*.pricing: must be a mapping, got {type(overrides).__name__}")
    else:
        for provider, models in overrides.items():
            where = f"providers.{provider}.pricing"
            if not isinstance(models, dict):
                problems.append(f"{where}: must map base models to prices, got {type(models).__name__}")
                continue
            for base_model, fields in models.items():
                if not isinstance(fields, dict):
                    problems.append(f"{where}.{base_model}: must be a mapping of prices")
                    continue
                problems.extend(f"{where}.{base_model}.{name}: {reason}"
                                for name, reason in _field_problems(fields))
    if problems:
        raise TunerError("\n".join(problems),
                         remedy=f"prices are numbers >= 0 (USD per million tokens) under {', '.join(PRICE_FIELDS)}")


def _field_problems(fields: dict):
    for name, value in fields.items():
        if name in PRICE_FIELDS:
            is_number = isinstance(value, int | float) and not isinstance(value, bool)
            if value is not None and (not is_number or value < 0 or math.isnan(value)):
                yield name, f"must be a number >= 0, got {value!r}"
        elif name in TEXT_FIELDS:
            if not isinstance(value, str):
                yield name, f"must be a string, got {type(value).__name__}"
        else:
            yield name, f"unknown field (known: {', '.join(PRICE_FIELDS + TEXT_FIELDS)})"


def _name_variants(base_model: str) -> tuple[str, ...]:
    if base_model.startswith("models/"):
        return base_model, base_model.removeprefix("models/")
    return base_model, f"models/{base_model}"


# -- training cost -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CostEstimate:
    tokens: int  # estimated tokens in one pass over the training set
    epochs: int
    usd: float | None  # None when no training price is known
    price_per_million: float | None
    known: bool
    note: str = ""

    @property
    def training_tokens(self) -> int:
        """What providers bill: dataset tokens x epochs."""
        return self.tokens * self.epochs

    def summary(self) -> str:
        """One line for a plan, e.g. `~$0.09 (17,400 training tokens = 5,800 x 3 epochs at $5/1M)`."""
        epochs = f"{self.epochs} epoch" + ("" if self.epochs == 1 else "s")
        volume = f"{self.training_tokens:,} training tokens = {self.tokens:,} x {epochs}"
        if not self.known:
            return f"cost unknown ({volume}): {self.note}"
        text = f"~{money(self.usd)} ({volume} at {money(self.price_per_million)}/1M)"
        return f"{text}; {self.note}" if self.note else text


def training_cost(provider: str, base_model: str, tokens: int, epochs: int, pricing: Pricing,
                  epochs_note: str = "") -> CostEstimate:
    """Estimated training bill: tokens (one pass over the training set) x epochs x price per million / 1e6.
    Both are what the provider's plan expects (runner.planned.TrainingEstimate), with its note when it had to
    assume the epochs.

    An unknown base model (or one whose training price is not known) gives known=False and usd=None, with
    a note saying where to add the price, rather than a guess.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    entry = pricing.lookup(provider, base_model)
    price = entry.training_per_million_tokens if entry else None
    if price is None:
        missing = (f"no training price for {provider} base model {base_model!r}: add one under "
                   f"providers.{provider}.pricing.{base_model}.training_per_million_tokens")
        return CostEstimate(tokens, epochs, None, None, False, _join(missing, epochs_note))
    field = "training_per_million_tokens"
    if field in entry.overridden:
        provenance = f"price from providers.{provider}.pricing in your spec"
    elif field in entry.unverified:
        provenance = f"price unverified (see runner/pricing.json, as of {pricing.as_of})"
    else:
        provenance = ""
    return CostEstimate(tokens, epochs, tokens * epochs * price / 1_000_000, price, True,
                        _join(epochs_note, provenance))


def training_cost_for(model: PlannedModel, pricing: Pricing) -> CostEstimate:
    """training_cost for a planned model: the tokens and epochs its provider expects."""
    estimate = model.estimate
    return training_cost(model.provider, model.base_model, estimate.tokens, estimate.epochs, pricing, estimate.note)


def money(value: float, signed: bool = False) -> str:
    """$1,234.50; sub-cent amounts keep their digits ($0.0003); signed shows + or -."""
    sign = ("+" if value >= 0 else "-") if signed else ("-" if value < 0 else "")
    amount = abs(value)
    decimals = 2 if amount >= 0.01 or amount == 0 else 4
    return f"{sign}${amount:,.{decimals}f}"


def _join(*notes: str) -> str:
    return "; ".join(note for note in notes if note)


# -- break-even ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BreakEven:
    """Cumulative cost of keeping a long prompt on the base model vs paying once to tune.

    cumulative_*[m] is the total spent by the end of month m; index 0 is the day the tuned model is
    trained, so the tuned line starts at the training cost.
    """

    training_usd: float
    monthly_prompted_usd: float
    monthly_tuned_usd: float
    monthly_saving_usd: float
    months_to_pay_back: float | None  # None: the tuned model never pays back
    cumulative_prompted: list[float]
    cumulative_tuned: list[float]

    @property
    def months(self) -> int:
        return len(self.cumulative_prompted) - 1

    @property
    def break_even_month(self) -> int | None:
        """The first whole month by whose end tuning has paid for itself."""
        if self.months_to_pay_back is None:
            return None
        return max(0, math.ceil(self.months_to_pay_back - _EPSILON))


def break_even(training_usd: float, calls_per_month: float, prompt_price_per_1k_calls: float,
               tuned_price_per_1k_calls: float, months: int | None = None) -> BreakEven:
    """When does a one-off training cost pay for itself through cheaper calls?

    months_to_pay_back = training_usd / monthly saving, where monthly saving = calls_per_month / 1000 x
    (prompt price - tuned price). E.g. $20 training, $0.05 vs $0.02 per 1,000 calls, 10,000 calls a month:
    saving $0.30 a month, paid back after 66.7 months (month 67). `months` sets the chart's horizon
    (default: a little past the break-even month, at most ten years; two years if it never pays back).
    """
    for name, value in (("training_usd", training_usd), ("calls_per_month", calls_per_month),
                        ("prompt_price_per_1k_calls", prompt_price_per_1k_calls),
                        ("tuned_price_per_1k_calls", tuned_price_per_1k_calls)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    monthly_prompted = calls_per_month / 1000 * prompt_price_per_1k_calls
    monthly_tuned = calls_per_month / 1000 * tuned_price_per_1k_calls
    saving = monthly_prompted - monthly_tuned
    if training_usd == 0 and saving >= 0:
        payback: float | None = 0.0
    elif saving > 0:
        payback = training_usd / saving
    else:
        payback = None
    horizon = months if months is not None else _default_horizon(payback)
    if horizon < 1:
        raise ValueError(f"months must be >= 1, got {horizon}")
    return BreakEven(
        training_usd=training_usd,
        monthly_prompted_usd=monthly_prompted,
        monthly_tuned_usd=monthly_tuned,
        monthly_saving_usd=saving,
        months_to_pay_back=payback,
        cumulative_prompted=[monthly_prompted * m for m in range(horizon + 1)],
        cumulative_tuned=[training_usd + monthly_tuned * m for m in range(horizon + 1)],
    )


def break_even_from_tokens(training_usd: float, calls_per_month: float, prompt_tokens_saved: int,
                           input_price_per_million: float, months: int | None = None) -> BreakEven:
    """break_even from the prompt tokens tuning saves per call.

    A tuned model no longer needs the instructions and few-shot examples in every prompt (prompt_tokens_saved
    input tokens per call). Tuned models are billed at the base model's rates (documented for the Gemini API;
    secondary sources say the same of Vertex AI), so only the saved tokens are priced: what both options pay
    alike (the rest of the prompt, the answer) cancels out.
    """
    saved_per_1k = 1000 * prompt_tokens_saved * input_price_per_million / 1_000_000
    return break_even(training_usd, calls_per_month, saved_per_1k, 0.0, months)


def _default_horizon(payback: float | None) -> int:
    if payback is None:
        return DEFAULT_HORIZON_MONTHS
    return min(MAX_DEFAULT_HORIZON_MONTHS, max(12, math.ceil(payback * 1.2)))

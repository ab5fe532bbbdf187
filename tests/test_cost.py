"""Cost: the shipped price table, training estimates, break-even arithmetic and its chart, as specifications."""

from __future__ import annotations

import json
import math
import sys
import xml.etree.ElementTree as ET

import pytest

from runner.cost import (
    PRICING_PATH,
    break_even,
    break_even_from_tokens,
    load_pricing,
    overrides_from_settings,
    training_cost,
)
from runner.datasets import scan
from runner.errors import TunerError
from runner.providers.planning import estimate_tokens
from runner.render.cost import break_even_table, write_break_even_chart

SVG = "{http://www.w3.org/2000/svg}"


# -- the worked example --------------------------------------------------------------------------------

def test_worked_example_pays_back_in_about_67_months():
    # $20 to tune; the long prompt costs $0.05 per 1,000 calls, the tuned model $0.02; 10,000 calls a month.
    b = break_even(20.0, 10_000, 0.05, 0.02)

    assert b.monthly_saving_usd == pytest.approx(0.30)
    assert b.months_to_pay_back == pytest.approx(66.67, abs=0.01)
    assert b.break_even_month == 67
    assert b.cumulative_prompted[67] >= b.cumulative_tuned[67]
    assert b.cumulative_prompted[66] < b.cumulative_tuned[66]


def test_cumulative_series_start_at_zero_and_at_the_training_cost():
    b = break_even(20.0, 10_000, 0.05, 0.02, months=12)

    assert len(b.cumulative_prompted) == len(b.cumulative_tuned) == 13  # months 0..12
    assert b.cumulative_prompted[0] == 0
    assert b.cumulative_tuned[0] == 20.0
    assert b.cumulative_prompted[12] == pytest.approx(12 * 0.50)
    assert b.cumulative_tuned[12] == pytest.approx(20.0 + 12 * 0.20)


def test_whole_month_break_even_is_not_pushed_a_month_late_by_float_noise():
    b = break_even(6.0, 10_000, 0.05, 0.04)  # $6 / $0.10 a month, computed as 60.000000000000014

    assert b.months_to_pay_back == pytest.approx(60)
    assert b.break_even_month == 60


def test_break_even_from_tokens_prices_the_prompt_tokens_a_tuned_model_no_longer_needs():
    # 500 instruction tokens dropped per call at $0.30/1M input -> $0.15 per 1,000 calls, $1.50 a month.
    b = break_even_from_tokens(15.0, 10_000, prompt_tokens_saved=500, input_price_per_million=0.30)

    assert b.monthly_saving_usd == pytest.approx(1.50)
    assert b.months_to_pay_back == pytest.approx(10.0)
    assert b.break_even_month == 10


# -- never pays back -----------------------------------------------------------------------------------

@pytest.mark.parametrize("tuned_price", [0.05, 0.08])  # as expensive, and dearer
def test_never_pays_back_when_the_tuned_model_is_not_cheaper_per_call(tuned_price):
    b = break_even(20.0, 10_000, 0.05, tuned_price)

    assert b.months_to_pay_back is None
    assert b.break_even_month is None
    assert all(t > p for p, t in zip(b.cumulative_prompted, b.cumulative_tuned))
    assert "never pays back" in break_even_table(b)


def test_free_training_pays_back_at_once():
    assert break_even(0.0, 10_000, 0.05, 0.05).months_to_pay_back == 0.0


# -- token and training cost estimates -----------------------------------------------------------------

def test_token_estimate_is_bytes_over_four_rounded_up_plus_four_per_example():
    assert estimate_tokens(0, 0) == 0
    assert estimate_tokens(1, 1) == 1 + 4
    assert estimate_tokens(400, 10) == 100 + 40
    assert estimate_tokens(401, 10) == 101 + 40


def test_plan_style_hand_computation_on_a_small_dataset(tmp_path):
    # 200 examples, each a 96-byte input and a 4-byte output: 20,000 bytes of text.
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"text_input": f"{i:03d} " + "w" * 92, "output": "good"}) + "\n"
                            for i in range(200)), encoding="utf-8")
    summary = scan(path, path.name, "text_input", "output")
    assert (summary.examples, summary.text_bytes) == (200, 20_000)
    pricing = load_pricing({"vertex": {"gemini-2.5-flash": {"training_per_million_tokens": 5.0}}})

    tokens = estimate_tokens(summary.text_bytes, summary.examples)
    estimate = training_cost("vertex", "gemini-2.5-flash", tokens, 3, pricing)

    # 20,000 / 4 = 5,000 tokens of text + 200 x 4 framing = 5,800 per epoch; x 3 epochs = 17,400 training
    # tokens; at $5 per million: 17,400 x 5 / 1,000,000 = $0.087.
    assert (estimate.tokens, estimate.epochs, estimate.training_tokens) == (5_800, 3, 17_400)
    assert estimate.known and estimate.price_per_million == 5.0
    assert estimate.usd == pytest.approx(0.087)
    assert "$5.00/1M" in estimate.summary()


def test_unknown_base_model_is_reported_as_unknown_with_where_to_add_a_price():
    estimate = training_cost("vertex", "gemini-9-ultra", estimate_tokens(20_000, 200), 3, load_pricing())

    assert estimate.known is False
    assert estimate.usd is None
    assert "providers.vertex.pricing" in estimate.note
    assert estimate.tokens == 5_800  # the volume is still known


def test_a_null_shipped_price_is_unknown_too():
    tokens = estimate_tokens(20_000, 200)
    estimate = training_cost("vertex", "gemini-2.0-flash-lite-001", tokens, 3, load_pricing())

    assert (estimate.known, estimate.usd) == (False, None)


def test_gemini_api_tuning_was_free_and_names_match_with_or_without_the_models_prefix():
    pricing = load_pricing()
    for name in ("models/gemini-1.5-flash-001-tuning", "gemini-1.5-flash-001-tuning"):
        estimate = training_cost("gemini", name, estimate_tokens(20_000, 200), 5, pricing)
        assert estimate.known and estimate.usd == 0


def test_local_training_costs_nothing():
    tokens = estimate_tokens(10_000_000, 50_000)
    estimate = training_cost("local", "local/linear-ngram", tokens, 5, load_pricing())

    assert estimate.known and estimate.usd == 0


# -- the pricing table and overrides -------------------------------------------------------------------

def test_shipped_table_is_dated_sourced_and_covers_every_provider():
    table = json.loads(PRICING_PATH.read_text(encoding="utf-8"))
    pricing = load_pricing()

    assert PRICING_PATH.parent.name == "runner"
    assert pricing.currency == "USD"
    assert len(pricing.as_of) == 10 and pricing.as_of[4] == pricing.as_of[7] == "-"
    assert pricing.sources and all("covers" in source and "read" in source for source in pricing.sources)
    for base_model in ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite", "gemini-2.0-flash-001",
                       "gemini-2.0-flash-lite-001"):
        assert pricing.lookup("vertex", base_model) is not None
    assert pricing.lookup("gemini", "models/gemini-1.5-flash-001-tuning") is not None
    for provider, models in table["providers"].items():
        for name, entry in models.items():
            assert entry["note"], f"{provider}/{name} has no note"


def test_an_override_replaces_one_shipped_price_and_keeps_the_others():
    shipped = load_pricing().lookup("vertex", "gemini-2.5-flash")

    pricing = load_pricing({"vertex": {"gemini-2.5-flash": {"training_per_million_tokens": 4.0}}})
    entry = pricing.lookup("vertex", "gemini-2.5-flash")

    assert entry.training_per_million_tokens == 4.0
    assert entry.input_per_million_tokens == shipped.input_per_million_tokens
    assert "training_per_million_tokens" not in entry.unverified
    estimate = training_cost("vertex", "gemini-2.5-flash", estimate_tokens(20_000, 200), 3, pricing)
    assert estimate.usd == pytest.approx(17_400 * 4.0 / 1_000_000)
    assert "your spec" in estimate.note


def test_an_override_can_add_a_base_model_the_table_does_not_know():
    settings = {"vertex": {"project": "p", "pricing": {"gemini-9-ultra": {"training_per_million_tokens": 40}}},
                "local": {"max_concurrent_jobs": 2}}

    pricing = load_pricing(overrides_from_settings(settings))

    estimate = training_cost("vertex", "gemini-9-ultra", estimate_tokens(20_000, 200), 1, pricing)
    assert estimate.usd == pytest.approx(5_800 * 40 / 1e6)


def test_malformed_overrides_are_all_reported_at_once():
    with pytest.raises(TunerError) as caught:
        load_pricing({"vertex": {"gemini-2.5-flash": {"training_per_million_tokens": "five", "colour": "red"},
                                 "gemini-2.5-pro": {"input_per_million_tokens": -1}}})

    message = caught.value.message
    assert "providers.vertex.pricing.gemini-2.5-flash.training_per_million_tokens" in message
    assert "providers.vertex.pricing.gemini-2.5-flash.colour: unknown field" in message
    assert "providers.vertex.pricing.gemini-2.5-pro.input_per_million_tokens" in message


def test_loading_never_mutates_the_callers_overrides_or_the_next_load():
    overrides = {"vertex": {"gemini-2.5-flash": {"training_per_million_tokens": 4.0}}}
    load_pricing(overrides)

    assert overrides == {"vertex": {"gemini-2.5-flash": {"training_per_million_tokens": 4.0}}}
    assert load_pricing().lookup("vertex", "gemini-2.5-flash").training_per_million_tokens != 4.0


# -- rendering -----------------------------------------------------------------------------------------

def test_table_marks_the_break_even_month():
    table = break_even_table(break_even(20.0, 10_000, 0.05, 0.02))

    marked = [line for line in table.splitlines() if "break-even" in line and line.lstrip()[:1].isdigit()]
    assert len(marked) == 1 and marked[0].split()[0] == "67"
    assert "66.7 months" in table


def test_svg_chart_is_valid_xml_with_both_series_axes_legend_and_break_even_marker(tmp_path):
    b = break_even(20.0, 10_000, 0.05, 0.02)
    path = tmp_path / "break-even.svg"

    write_break_even_chart(b, path)

    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    series = {el.get("id"): el for el in root.iter(f"{SVG}polyline")}
    assert set(series) == {"series-prompted", "series-tuned"}
    assert all(len(el.get("points").split()) == b.months + 1 for el in series.values())
    ids = {el.get("id") for el in root.iter() if el.get("id")}
    assert {"axes", "legend", "break-even"} <= ids
    texts = " ".join("".join(el.itertext()) for el in root.iter(f"{SVG}text"))
    assert "month" in texts and "cumulative cost (USD)" in texts
    assert "break-even: month 67" in texts
    marker = next(el for el in root.iter() if el.get("id") == "break-even")
    circle = marker.find(f"{SVG}circle")
    assert circle is not None and math.isfinite(float(circle.get("cx")))


def test_svg_says_so_when_the_tuned_model_never_pays_back(tmp_path):
    path = tmp_path / "never.svg"

    write_break_even_chart(break_even(20.0, 10_000, 0.02, 0.05), path)

    ids = {el.get("id") for el in ET.parse(path).getroot().iter() if el.get("id")}
    assert "no-break-even" in ids and "break-even" not in ids


def test_png_without_matplotlib_suggests_svg(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError

    with pytest.raises(TunerError, match="matplotlib") as caught:
        write_break_even_chart(break_even(20.0, 10_000, 0.05, 0.02), tmp_path / "chart.png")

    assert ".svg" in caught.value.remedy
    assert not (tmp_path / "chart.png").exists()


def test_an_unknown_chart_format_is_refused(tmp_path):
    with pytest.raises(TunerError, match="unknown format"):
        write_break_even_chart(break_even(20.0, 10_000, 0.05, 0.02), tmp_path / "chart.pdf")

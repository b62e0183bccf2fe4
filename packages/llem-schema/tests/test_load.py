"""The load a config describes (``load:``, ``slo:``) and the request figures of a result."""

import math

import pytest

from llem_schema import (
    ConfigError,
    LoadConfig,
    RequestMetrics,
    RequestRecord,
    RequestTiming,
    SloConfig,
    parse_config,
)
from llem_schema.metrics import LatencyMetrics
from llem_schema.testing import EXAMPLE_BACKENDS


@pytest.mark.parametrize("rate", ["inf", "Infinity", float("inf")])
def test_an_infinite_rate_is_kept_as_inf(rate: object) -> None:
    load = parse_config({"load": {"request_rate": rate}}).load
    assert load.request_rate == "inf"
    assert load.rate_per_s is None
    assert parse_config({"load": {"request_rate": 2.5}}).load.rate_per_s == 2.5


@pytest.mark.parametrize(
    ("load", "message"),
    [
        ({"request_rate": 0}, "config key 'load.request_rate'"),
        ({"request_rate": "fast"}, "config key 'load.request_rate'"),
        ({"duration_s": 30}, "load.duration_s needs a finite load.request_rate"),
        ({"max_concurrency": 0}, "config key 'load.max_concurrency'"),
        ({"burstness": 1}, "unknown config key 'load.burstness'; did you mean 'burstiness'?"),
    ],
)
def test_a_bad_load_is_one_line_naming_the_key(load: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"load": load})
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_load_is_hashed_only_when_it_differs_from_sending_everything_at_once() -> None:
    def hash_of(data: dict[str, object]) -> str:
        return parse_config(data, backends=EXAMPLE_BACKENDS).measurement_config_hash()

    assert hash_of({}) == "7e29ffb977e22ade"  # as before load existed
    assert hash_of({"load": {"request_rate": "inf", "burstiness": 1.0}}) == hash_of({})
    assert hash_of({"load": {"request_rate": 4}}) != hash_of({})
    assert hash_of({"load": {"request_rate": 4, "burstiness": 0.5}}) != hash_of(
        {"load": {"request_rate": 4}}
    )
    assert hash_of({"slo": {"ttft_ms": 200}}) == hash_of({})  # objectives judge, not measure


def test_an_slo_names_at_least_one_objective() -> None:
    with pytest.raises(ConfigError, match="an SLO needs ttft_ms, tpot_ms or both"):
        parse_config({"slo": {}})
    assert SloConfig(tpot_ms=50).ttft_ms is None


def record(
    index: int, start_s: float, token_offsets_ms: list[float], error: str | None = None
) -> RequestRecord:
    timing = RequestTiming(
        request_index=index,
        input_tokens=8,
        output_tokens=len(token_offsets_ms),
        start_s=100.0 + start_s,
        token_times_s=[100.0 + start_s + t / 1000.0 for t in token_offsets_ms],
        error=error,
    )
    return RequestRecord.from_timing(timing, origin_s=100.0)


def test_a_record_counts_from_the_window_and_keeps_its_schedule_and_error() -> None:
    timing = RequestTiming(
        request_index=3,
        input_tokens=4,
        output_tokens=2,
        start_s=50.5,
        token_times_s=[50.6, 50.7],
        error="HTTP 503",
    )
    scheduled = RequestRecord.from_timing(timing, origin_s=50.0, scheduled_s=0.25)
    assert (scheduled.start_s, scheduled.scheduled_s) == pytest.approx((0.5, 0.25))
    assert scheduled.error == "HTTP 503"
    assert not scheduled.completed
    offline = RequestRecord.from_timing(timing.model_copy(update={"error": None}), origin_s=50.0)
    assert offline.scheduled_s == offline.start_s  # taken as fast as possible: no schedule
    assert offline.completed
    assert RequestRecord.from_timing(timing).start_s is None  # no window: no start time


def test_failed_requests_count_in_no_latency_figure() -> None:
    records = [record(0, 0.0, [10, 20]), record(1, 0.1, [500], error="timed out")]
    latency = LatencyMetrics.from_requests(records)
    assert latency.ttft is not None
    assert latency.ttft.count == 1
    assert latency.ttft.max_ms == pytest.approx(10.0)


def test_request_metrics_of_a_run_with_a_failure_and_objectives() -> None:
    records = [
        record(0, 0.0, [50, 60, 70]),  # ttft 50, tpot 10: meets both
        record(1, 0.5, [300, 310]),  # ttft 300: misses the TTFT objective
        record(2, 1.0, [40]),  # one token: no TPOT to miss
        record(3, 2.0, [40, 140], error="connection reset"),  # failed: no goodput
    ]
    metrics = RequestMetrics.from_requests(
        records,
        duration_s=4.0,
        energy_j=30.0,
        requested_rate_per_s=2.0,
        slo=SloConfig(ttft_ms=100, tpot_ms=20),
    )
    assert (metrics.requests, metrics.failed_requests) == (4, 1)
    assert metrics.request_throughput_per_s == pytest.approx(3 / 4.0)
    assert metrics.achieved_rate_per_s == pytest.approx(3 / 2.0)  # 3 gaps over 2 s
    assert metrics.energy_per_request_j == pytest.approx(10.0)
    assert metrics.goodput_per_s == pytest.approx(2 / 4.0)
    assert metrics.requested_rate_per_s == 2.0
    unmeasured = RequestMetrics.from_requests(records[:1], duration_s=1.0)
    assert (unmeasured.achieved_rate_per_s, unmeasured.goodput_per_s) == (None, None)
    assert unmeasured.energy_per_request_j is None
    assert math.isclose(unmeasured.request_throughput_per_s, 1.0)


def test_load_config_defaults_send_everything_at_once() -> None:
    load = LoadConfig()
    assert (load.request_rate, load.burstiness, load.max_concurrency) == ("inf", 1.0, None)

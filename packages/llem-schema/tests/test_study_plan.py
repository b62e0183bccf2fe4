"""Expanding a study into points and runs: sweeps, explicit experiments, orders, skips."""

from typing import Any

import pytest

from llem_schema import (
    ConfigError,
    ExperimentConfig,
    StudyConfig,
    StudyPlan,
    expand_study,
    parse_config,
    parse_study,
)
from llem_schema.study_plan import design_hash
from llem_schema.testing import EXAMPLE_BACKENDS as BACKENDS

BASE: dict[str, Any] = {"n": 8, "max_new_tokens": 16}


def study(**settings: Any) -> StudyConfig:
    document: dict[str, Any] = {"name": "bs-sweep", "base": BASE} | settings
    return parse_study(document, backends=BACKENDS)


def expand(config: StudyConfig) -> StudyPlan:
    return expand_study(config, backends=BACKENDS)


def resolved(data: dict[str, Any]) -> ExperimentConfig:
    return parse_config(data, backends=BACKENDS)


def batch_size(config: ExperimentConfig) -> Any:
    return config.backend_section()["batch_size"]


def sweep_2x2(**settings: Any) -> StudyConfig:
    return study(
        sweep={"pytorch.batch_size": [1, 8], "precision": ["fp32", "fp16"]},
        cycles=2,
        **settings,
    )


POINTS_2X2 = [
    {"pytorch.batch_size": 1, "precision": "fp32"},
    {"pytorch.batch_size": 1, "precision": "fp16"},
    {"pytorch.batch_size": 8, "precision": "fp32"},
    {"pytorch.batch_size": 8, "precision": "fp16"},
]


def test_a_2x2_sweep_with_2_cycles_is_8_runs_of_4_points_set_onto_base() -> None:
    plan = expand(sweep_2x2())
    assert [p.overrides for p in plan.points] == POINTS_2X2
    assert [p.index for p in plan.points] == [0, 1, 2, 3]
    assert plan.skipped == []
    for point in plan.points:
        assert point.config.n == 8  # from base
        assert point.config.max_new_tokens == 16
        assert batch_size(point.config) == point.overrides["pytorch.batch_size"]
        assert point.config.precision == point.overrides["precision"]
        assert point.config_hash == point.config.measurement_config_hash()
        assert point.config == resolved(
            BASE
            | {
                "pytorch": {"batch_size": point.overrides["pytorch.batch_size"]},
                "precision": point.overrides["precision"],
            }
        )
    assert len(plan.runs) == 8
    assert [r.run_index for r in plan.runs] == list(range(8))
    assert sorted((r.point_index, r.cycle) for r in plan.runs) == [
        (p, c) for p in range(4) for c in range(2)
    ]


def test_interleaved_runs_every_point_once_per_cycle_in_turn() -> None:
    plan = expand(sweep_2x2(order="interleaved"))
    assert [(r.point_index, r.cycle) for r in plan.runs] == [
        (0, 0), (1, 0), (2, 0), (3, 0), (0, 1), (1, 1), (2, 1), (3, 1),
    ]  # fmt: skip


def test_interleaved_is_the_default() -> None:
    assert sweep_2x2().order == "interleaved"


def test_sequential_runs_every_cycle_of_a_point_before_the_next() -> None:
    plan = expand(sweep_2x2(order="sequential"))
    assert [(r.point_index, r.cycle) for r in plan.runs] == [
        (0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1),
    ]  # fmt: skip


def test_shuffled_runs_each_cycle_in_its_own_order() -> None:
    plan = expand(
        study(sweep={"pytorch.batch_size": list(range(1, 9))}, cycles=3, order="shuffled")
    )
    cycles = [[r.point_index for r in plan.runs if r.cycle == c] for c in range(3)]
    assert [r.cycle for r in plan.runs] == sorted(r.cycle for r in plan.runs)  # cycle by cycle
    for order in cycles:
        assert sorted(order) == list(range(8))
    assert len({tuple(order) for order in cycles}) > 1  # cycles are shuffled independently
    assert cycles[0] != list(range(8))


def test_shuffled_order_is_identical_across_two_expansions_of_the_same_study() -> None:
    document: dict[str, Any] = {
        "name": "shuffle",
        "base": BASE,
        "sweep": {"pytorch.batch_size": list(range(1, 11))},
        "cycles": 3,
        "order": "shuffled",
    }
    first = expand(parse_study(document))
    second = expand(parse_study(dict(document)))
    assert first.runs == second.runs
    assert first.design_hash == second.design_hash
    assert first == second


def test_a_different_study_shuffles_differently() -> None:
    def runs(batch_sizes: list[int], **settings: Any) -> list[int]:
        plan = expand(
            study(sweep={"pytorch.batch_size": batch_sizes}, order="shuffled", **settings)
        )
        return [r.point_index for r in plan.runs]

    reference = runs(list(range(1, 11)))
    assert runs(list(range(1, 11)), base=BASE | {"seed": 7}) != reference
    assert runs(list(range(1, 11)), cycles=2)[:10] != reference


def test_design_hash_covers_points_cycles_and_order() -> None:
    plan = expand(sweep_2x2())
    assert plan.design_hash == design_hash([p.config_hash for p in plan.points], 2, "interleaved")
    assert len(plan.design_hash) == 16
    others = {
        expand(sweep_2x2(order="sequential")).design_hash,
        expand(study(sweep={"pytorch.batch_size": [1, 8]}, cycles=2)).design_hash,
        expand(study(sweep={"precision": ["fp32", "fp16"]}, cycles=3)).design_hash,
    }
    assert plan.design_hash not in others
    assert len(others) == 3
    # settings that do not change a measurement do not change the design
    assert expand(sweep_2x2(gap_between_experiments_s=30.0)).design_hash == plan.design_hash


def test_an_invalid_value_refuses_the_study_naming_the_point_and_the_way_out() -> None:
    """``pytorch.batch_size: [1, two]`` once ran the valid points and dropped the others."""
    with pytest.raises(ConfigError) as caught:
        expand(study(sweep={"pytorch.batch_size": [1, "two", 8]}))
    assert str(caught.value) == (
        "study 'bs-sweep': point 1 (pytorch.batch_size=two) is not a valid experiment: config "
        "key 'pytorch.batch_size': Input should be a valid integer, unable to parse string as "
        "an integer (got 'two'); correct the value, or set skip_invalid: true in the study to "
        "skip such points"
    )
    assert caught.value.key == "pytorch.batch_size"


def test_with_skip_invalid_an_invalid_value_skips_that_point_with_the_config_error() -> None:
    plan = expand(study(sweep={"pytorch.batch_size": [1, 0, 8]}, cycles=2, skip_invalid=True))
    assert [p.overrides for p in plan.points] == [
        {"pytorch.batch_size": 1},
        {"pytorch.batch_size": 8},
    ]
    assert [p.index for p in plan.points] == [0, 2]
    [skipped] = plan.skipped
    assert skipped.index == 1
    assert skipped.overrides == {"pytorch.batch_size": 0}
    assert (
        skipped.reason == "config key 'pytorch.batch_size': Input should be greater than 0 (got 0)"
    )
    assert skipped.config_hash is None
    assert {r.point_index for r in plan.runs} == {0, 2}
    assert len(plan.runs) == 4


def test_a_point_that_breaks_a_cross_field_rule_is_skipped_too() -> None:
    plan = expand(study(sweep={"num_processes": [1, 16]}, skip_invalid=True))
    [skipped] = plan.skipped
    assert skipped.reason.startswith("invalid config: n (8) is smaller than num_processes (16)")


def test_a_misspelt_sweep_key_fails_the_whole_study_with_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_study(
            {"name": "s", "sweep": {"pytorch.batchsize": [1, 8]}},
            source="studies/bs.yaml",
            backends=BACKENDS,
        )
    assert str(caught.value) == (
        "studies/bs.yaml: sweep: unknown config key 'pytorch.batchsize'; did you mean "
        "'batch_size'? (allowed under pytorch: attn_implementation, batch_size, torch_compile)"
    )
    assert caught.value.key == "sweep.pytorch.batchsize"


def test_expand_study_checks_keys_of_a_study_built_without_parse_study() -> None:
    config = StudyConfig(name="s", sweep={"precison": ["fp16"]})
    with pytest.raises(
        ConfigError, match=r"^sweep: unknown config key 'precison'; did you mean 'precision'\?"
    ):
        expand(config)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"base": {"modle": "gpt2"}},
            "base: unknown config key 'modle'; did you mean 'model'?",
        ),
        (
            {"experiments": [{"precision": "fp16"}, {"decoder": {"temprature": 0.5}}]},
            "experiments.1: unknown config key 'decoder.temprature'; did you mean 'temperature'?",
        ),
        (
            {"sweep": {"decoder": [{"mode": "greedy"}, {"mod": "sampling"}]}},
            "sweep: unknown config key 'decoder.mod'; did you mean 'mode'?",
        ),
        (
            {"sweep": {"precision.bits": [16]}},
            "sweep: unknown config key 'precision.bits': 'precision' is a single setting, not "
            "a section with keys",
        ),
        (
            {"experiments": [{"pytorch.batch_size": 2, "pytorch": {"batch_size": 4}}]},
            "experiments.0: 'pytorch.batch_size' is set twice",
        ),
        (
            {"base": {"decoder": None, "decoder.mode": "greedy"}},
            "base: 'decoder' and 'decoder.mode' are both set",
        ),
    ],
)
def test_bad_experiment_keys_anywhere_in_the_study_are_one_line_errors(
    document: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_study({"name": "s"} | document, backends=BACKENDS)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_a_repeated_measurement_is_skipped_as_the_same_as_the_first() -> None:
    plan = expand(
        study(
            sweep={"pytorch.batch_size": [1, 4]},
            experiments=[
                {"pytorch": {"batch_size": 4}},  # the sweep's second point again
                {"pytorch.batch_size": 2, "name": "renamed"},
                {"pytorch.batch_size": 2, "output_dir": "elsewhere"},  # not measured: same
            ],
        )
    )
    assert [p.index for p in plan.points] == [0, 1, 3]
    assert [(s.index, s.reason) for s in plan.skipped] == [
        (2, "same measurement as point 1"),
        (4, "same measurement as point 3"),
    ]
    assert plan.skipped[0].config_hash == plan.points[1].config_hash


def test_a_study_with_only_base_is_one_point() -> None:
    plan = expand(study(cycles=3))
    [point] = plan.points
    assert point.overrides == {}
    assert point.config == resolved(BASE)
    assert [(r.point_index, r.cycle) for r in plan.runs] == [(0, 0), (0, 1), (0, 2)]


def test_explicit_experiments_merge_onto_base_with_nested_or_dotted_keys() -> None:
    plan = expand(
        study(
            base=BASE
            | {"decoder": {"mode": "sampling", "temperature": 0.7}, "pytorch.batch_size": 4},
            experiments=[
                {"precision": "fp16", "decoder": {"top_k": 5}},
                {"decoder.mode": "greedy", "decoder.temperature": None},
                {"decoder": {"preset": "deterministic"}, "pytorch": {"batch_size": 2}},
            ],
        )
    )
    first, second, third = plan.points
    # no sweep: base alone is not a point, and the experiments are not swept
    assert [p.index for p in plan.points] == [0, 1, 2]
    assert first.overrides == {"precision": "fp16", "decoder.top_k": 5}
    assert first.config.decoder.temperature == 0.7  # base's setting kept
    assert first.config.decoder.top_k == 5
    assert batch_size(first.config) == 4
    assert second.overrides == {"decoder.mode": "greedy", "decoder.temperature": None}
    assert second.config.decoder.mode == "greedy"
    assert third.overrides == {"decoder.preset": "deterministic", "pytorch.batch_size": 2}
    assert batch_size(third.config) == 2
    assert third.config.decoder.temperature == 0.7  # explicit settings win over a preset


def test_sweep_points_come_first_then_explicit_experiments_unswept() -> None:
    plan = expand(
        study(
            sweep={"precision": ["fp32", "fp16"]},
            experiments=[{"precision": "bf16", "pytorch.batch_size": 8}],
        )
    )
    assert [p.overrides for p in plan.points] == [
        {"precision": "fp32"},
        {"precision": "fp16"},
        {"precision": "bf16", "pytorch.batch_size": 8},
    ]


def test_a_section_swept_as_a_mapping_merges_key_by_key_with_base() -> None:
    plan = expand(
        study(
            base=BASE | {"decoder": {"ignore_eos": True}},
            sweep={"decoder": [{"mode": "greedy"}, {"preset": "factual"}]},
        )
    )
    greedy, factual = plan.points
    assert greedy.overrides == {"decoder": {"mode": "greedy"}}
    assert greedy.config.decoder.ignore_eos is True
    assert factual.config.decoder.ignore_eos is True
    assert factual.config.decoder.temperature == 0.3


def test_a_point_merged_into_an_invalid_combination_is_skipped() -> None:
    plan = expand(
        study(
            base=BASE | {"decoder": {"mode": "sampling", "temperature": 0.7}},
            sweep={"decoder.mode": ["sampling", "greedy"]},
            skip_invalid=True,
        )
    )
    [skipped] = plan.skipped
    assert skipped.overrides == {"decoder.mode": "greedy"}
    assert "temperature only apply to sampling" in skipped.reason


def test_none_valid_is_a_config_error_with_the_first_reason() -> None:
    with pytest.raises(ConfigError) as caught:
        expand(study(sweep={"pytorch.batch_size": [0, -1]}, skip_invalid=True))
    assert str(caught.value) == (
        "study 'bs-sweep': none of its 2 points is a valid experiment (point 0 "
        "(pytorch.batch_size=0): config key 'pytorch.batch_size': Input should be greater than "
        "0 (got 0))"
    )

"""What every figure shares: its size and look, the experiments it accepts, their labels,
and the footnotes (the warnings that apply, what was reduced for display)."""

import functools
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final, ParamSpec, TypeAlias

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine

from llem_report.errors import ReportError
from llem_report.loading import Experiment, Study
from llem_schema import ExperimentResult, MeasurementWarning
from llem_schema.tabular.config import ConfigScalar, flatten_config

P = ParamSpec("P")

__all__ = [
    "WIDTH_IN",
    "Experiments",
    "drawing",
    "experiments_of",
    "footnote",
    "labels",
    "new_figure",
    "settle",
    "warning_lines",
]

Experiments: TypeAlias = (
    Experiment | ExperimentResult | Study | Iterable[Experiment | ExperimentResult]
)
"""What a figure of several experiments accepts: one, a study, or any sequence of them."""

WIDTH_IN: Final = 8.0
"""Figure width, inches: 880 pixels at the report's resolution, a laptop's reading width."""
_LINE_IN: Final = 0.17
"""Height of one footnote line at its font size, inches."""
_FOOTNOTE_SIZE: Final = 7.5
_MAX_WARNING_LINES: Final = 4
_LABEL_KEYS: Final = 3
_NOT_LABELS: Final = frozenset({"output_dir", "name"})
"""Settings that tell nothing about a measurement, never used to tell experiments apart."""


def drawing(function: Callable[P, Figure]) -> Callable[P, Figure]:
    """Draw ``function``'s figure with every text taken literally: a ``$`` in a warning, an id
    or a setting is a dollar sign, never the start of mathtext (which could fail to parse)."""

    @functools.wraps(function)
    def draw(*args: P.args, **kwargs: P.kwargs) -> Figure:
        with matplotlib.rc_context({"text.parse_math": False}):
            return function(*args, **kwargs)

    return draw


def new_figure(height_in: float) -> Figure:
    """A figure of the report's width, drawn without pyplot (no global state: safe in a
    notebook, a thread or a server), laid out so that labels never overlap."""
    return Figure(figsize=(WIDTH_IN, height_in), layout="constrained")


def settle(figure: Figure) -> Figure:
    """Lay ``figure`` out once and keep that layout: the constrained layout converges over
    draws, so without this the first file written of a figure would differ from the next."""
    figure.draw_without_rendering()
    figure.set_layout_engine("none")
    return figure


def experiments_of(items: Experiments) -> list[Experiment]:
    """``items`` as a list of :class:`Experiment` (a bare result has no timeseries)."""
    if isinstance(items, Study):
        found = list(items.experiments)
    elif isinstance(items, Experiment | ExperimentResult):
        found = [_experiment(items)]
    else:
        found = [_experiment(item) for item in items]
    if not found:
        raise ReportError("no experiments to draw: pass at least one result")
    return found


def _experiment(item: Experiment | ExperimentResult) -> Experiment:
    if isinstance(item, ExperimentResult):
        return Experiment(item)
    if isinstance(item, Experiment):
        return item
    raise TypeError(f"expected an Experiment or an ExperimentResult, got {type(item).__name__}")


def labels(experiments: Sequence[Experiment]) -> list[str]:
    """A label for each experiment that tells it from the others: the settings that differ
    among them (a study point's own settings first; three, or all where three do not tell
    them apart), then the cycle (or the id) of repeated configurations; else its id."""
    if len(experiments) == 1:
        return [_short_id(experiments[0].id)]
    keys = differing_keys(experiments)
    if not keys:
        return [_short_id(e.id) for e in experiments]
    found = [settings_label({k: setting(e, k) for k in keys[:_LABEL_KEYS]}) for e in experiments]
    if len(keys) > _LABEL_KEYS and len(set(found)) < len(found):
        found = [settings_label({k: setting(e, k) for k in keys}) for e in experiments]
    if len(set(found)) < len(found):
        found = [
            f"{label} ({_which(e)})" if found.count(label) > 1 else label
            for label, e in zip(found, experiments, strict=True)
        ]
    return found


def _which(experiment: Experiment) -> str:
    """Which of several runs of one configuration: its cycle in a study, else its id."""
    if experiment.point is not None:
        return f"cycle {experiment.point.cycle + 1}"
    return _short_id(experiment.id)


def differing_keys(experiments: Sequence[Experiment]) -> list[str]:
    """The dotted settings whose values differ among ``experiments``: the keys a study
    sweeps first, in its order, then any other in the order of the config."""
    flat = [_settings(e) for e in experiments]
    keys = [
        key
        for key in dict.fromkeys(k for settings in flat for k in settings)
        if key not in _NOT_LABELS and len({repr(s.get(key)) for s in flat}) > 1
    ]
    swept = dict.fromkeys(k for e in experiments if e.point for k in e.point.overrides)
    return [k for k in swept if k in keys] + [k for k in keys if k not in swept]


def _settings(experiment: Experiment) -> dict[str, ConfigScalar]:
    return dict(flatten_config(experiment.result.effective_config))


def setting(experiment: Experiment, key: str) -> ConfigScalar:
    """The value of the dotted setting ``key`` in the experiment's config (None if unset)."""
    return _settings(experiment).get(key)


def settings_label(values: Mapping[str, object]) -> str:
    """``batch_size=4, request_rate=2``: each setting by its last name, unless two share it."""
    names = _short_names(list(values))
    return ", ".join(f"{names[k]}={_value(v)}" for k, v in values.items())


def setting_name(key: str) -> str:
    """The last part of a dotted key (``pytorch.batch_size`` -> ``batch_size``)."""
    return key.rsplit(".", 1)[-1]


def _short_names(keys: Sequence[str]) -> dict[str, str]:
    short = [setting_name(k) for k in keys]
    return {k: s if short.count(s) == 1 else k for k, s in zip(keys, short, strict=True)}


def _value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _short_id(experiment_id: str) -> str:
    return experiment_id if len(experiment_id) <= 48 else experiment_id[:45] + "..."


def warning_lines(experiments: Sequence[Experiment], codes: Iterable[str]) -> list[str]:
    """One line per warning of ``experiments`` whose code is in ``codes`` (the ones that
    bear on a figure), prefixed by the experiment's label when there are several."""
    wanted = frozenset(codes)
    names = labels(experiments) if len(experiments) > 1 else [""]
    lines = []
    for name, experiment in zip(names, experiments, strict=True):
        for warning in all_warnings(experiment.result):
            if warning.code in wanted:
                lines.append(f"{name + ': ' if name else ''}{warning.code}: {warning.message}")
    unique = list(dict.fromkeys(lines))
    if len(unique) > _MAX_WARNING_LINES:
        left = len(unique) - _MAX_WARNING_LINES + 1
        unique = [*unique[: _MAX_WARNING_LINES - 1], f"and {left} more warnings: see the report"]
    return unique


def all_warnings(result: ExperimentResult) -> list[MeasurementWarning]:
    """The result's measurement warnings, then its aggregation's."""
    return [*result.measurement_warnings, *result.aggregation.warnings]


def footnote(figure: Figure, notes: Sequence[str], warnings: Sequence[str] = ()) -> None:
    """Write ``notes`` (what the figure shows and how it was reduced), then ``warnings``
    (marked), in small type under the axes, keeping room for them."""
    if not notes and not warnings:
        return
    width = int(WIDTH_IN * 16)  # characters of the footnote's size across the figure
    wrapped = [part for note in notes for part in textwrap.wrap(note, width) or [""]]
    for warning in warnings:  # each in two lines at most; the report has the whole text
        parts = textwrap.wrap(f"\N{WARNING SIGN} {warning}", width)
        if len(parts) > 2:
            parts = [
                parts[0],
                textwrap.shorten(" ".join(parts[1:]), width - 2, placeholder="")
                + " \N{HORIZONTAL ELLIPSIS}",
            ]
        wrapped += parts
    height = figure.get_figheight()
    reserve = (len(wrapped) * _LINE_IN + 0.08) / height
    engine = figure.get_layout_engine()
    if isinstance(engine, ConstrainedLayoutEngine):
        engine.set(rect=(0.0, reserve, 1.0, 1.0 - reserve))
    figure.text(
        0.01,
        reserve - 0.04 / height,
        "\n".join(wrapped),
        fontsize=_FOOTNOTE_SIZE,
        color="#444444",
        va="top",
        ha="left",
        wrap=False,
    )


def no_data(axes: Axes, text: str) -> None:
    """Mark ``axes`` as having nothing to draw, saying why."""
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, color="#777777")
    axes.set_xticks([])
    axes.set_yticks([])

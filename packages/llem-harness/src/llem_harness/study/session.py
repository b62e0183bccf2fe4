"""A study from start to end: read and expand the study file, create (or reopen) the study
directory, register it in the results store, run what remains, and write ``study.json``."""

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from llem_harness.backends import SettingsModels
from llem_harness.config import EXPERIMENT_ONLY_KEYS, STUDY_ONLY_KEYS, read_config_file
from llem_harness.errors import (
    StudyChangedError,
    StudyDirectoryError,
    StudyInterruptedError,
    UsageError,
    WrongFileKindError,
)
from llem_harness.indexing import StoreIndex
from llem_harness.prompts import check_prompts
from llem_harness.study.devices import check_parallel_plan
from llem_harness.study.display import PlainDisplay, StudyDisplay
from llem_harness.study.gaps import EnterSkips, NeverSkip, NvmlThermometer, Thermometer
from llem_harness.study.launcher import Launcher
from llem_harness.study.layout import StudyLayout, hold_study_lock, new_study_id
from llem_harness.study.results import write_study_result
from llem_harness.study.resume import carry_over, changed_file_error, file_sha256, settle_stale_runs
from llem_harness.study.runner import StudyRunner
from llem_harness.study.slurm import Slurm
from llem_harness.study.slurm_runner import SlurmRunner
from llem_schema import (
    ConfigError,
    StudyConfig,
    StudyManifest,
    StudyPlan,
    StudyResult,
    expand_study,
    parse_study,
)
from llem_schema.io import atomic_write_bytes
from llem_schema.study_config import (
    ExecutorConfig,
    LocalExecutorConfig,
    SlurmExecutorConfig,
)
from llem_schema.study_plan import format_overrides
from llem_store import DEFAULT_STORE_FILE

__all__ = [
    "LoadedStudy",
    "RunOptions",
    "StudyOutcome",
    "load_study",
    "resume_study",
    "run_study",
    "start_study",
    "study_from_config",
]

StoreChoice = Path | Literal[False] | None


@dataclass(frozen=True)
class LoadedStudy:
    """A study, read, validated and expanded; ``data`` is what ``study.yaml`` keeps of it
    (the file's bytes, or a study built in Python as JSON, which YAML reads too)."""

    path: Path | None
    data: bytes
    sha256: str
    study: StudyConfig
    plan: StudyPlan


def load_study(path: Path, *, started_from: str | None = None) -> LoadedStudy:
    """Read ``path`` with the strict YAML reader (duplicate keys refused), validate and expand
    it against the installed backends; every problem is a one-line :class:`ConfigError`
    naming the file (exit 2). ``started_from``: the SHA-256 of the file a study started from;
    the same file skips the invalid points it skipped then (a study started before
    ``skip_invalid`` existed skipped them all) rather than refusing to go on; a changed one
    follows the rules."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such study file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the study file: {exc.strerror or exc}") from None
    backends = SettingsModels()
    document = read_config_file(path)
    experiment_keys = sorted(EXPERIMENT_ONLY_KEYS.intersection(document))
    if experiment_keys and not STUDY_ONLY_KEYS.intersection(document):
        raise WrongFileKindError(path, kind="experiment", keys=experiment_keys)
    study = parse_study(document, source=path, backends=backends)
    if started_from is not None and started_from == file_sha256(data):
        study = study.model_copy(update={"skip_invalid": True})
    try:
        plan = expand_study(study, backends=backends)
        read: set[tuple[str, str]] = set()
        for point in plan.points:  # a prompt file that cannot be read fails every run of it
            source = (point.config.prompts.source, point.config.prompts.column)
            if source in read:
                continue
            read.add(source)
            try:
                check_prompts(point.config)
            except ConfigError as exc:
                raise ConfigError(
                    f"point {point.index} ({format_overrides(point.overrides)}): {exc}",
                    key=exc.key,
                ) from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}", key=exc.key) from None
    return LoadedStudy(path=path, data=data, sha256=file_sha256(data), study=study, plan=plan)


def study_from_config(study: StudyConfig) -> LoadedStudy:
    """A study built in Python, validated and expanded as a file would be."""
    data = (json.dumps(study.model_dump(mode="json"), indent=2) + "\n").encode("utf-8")
    backends = SettingsModels()
    checked = parse_study(study.model_dump(mode="json"), backends=backends)
    plan = expand_study(checked, backends=backends)
    return LoadedStudy(path=None, data=data, sha256=file_sha256(data), study=checked, plan=plan)


@dataclass(frozen=True)
class RunOptions:
    """How to run: the results store (None: ``<output>/llem.db``; False: none), the devices,
    and how to show progress (``display``: plain lines on stderr unless given)."""

    store: StoreChoice = None
    devices: Sequence[str | None] = (None,)
    display: StudyDisplay | None = None
    enter_skips: bool = False
    verbose: bool = False
    launcher: Launcher = field(default_factory=Launcher)
    grace_s: float = 10.0
    thermometer: Thermometer | None = None
    """Reads the GPUs for the study's cooldown (``gap``); None: NVML's, where it has one."""
    executor: ExecutorConfig | None = None
    """Where the runs run, over the study file's ``executor`` (and, on a resume, over the
    one the study last ran with); None: theirs."""
    executor_kind: Literal["local", "slurm"] | None = None
    """``--executor``: this machine or Slurm, whatever the study file or the manifest says
    (a Slurm executor's settings kept where it already was one)."""
    slurm_settings: Mapping[str, object] = field(default_factory=dict)
    """Settings of a Slurm executor (``partition``, ``max_parallel``, ...) over those of the
    one chosen; given for any other, a :class:`UsageError`."""
    detach: bool = False
    """On Slurm: submit the runs and return, leaving them to a resume."""
    cancel_on_interrupt: Callable[[int], bool] = lambda jobs: False
    """On Slurm: asked after Ctrl-C, with how many jobs are in Slurm, whether to cancel them."""
    slurm: Slurm = field(default_factory=Slurm)
    slurm_poll_s: float = 2.0


@dataclass(frozen=True)
class StudyOutcome:
    """Where the study is and how far it got."""

    layout: StudyLayout
    manifest: StudyManifest
    result: StudyResult

    def raise_if_interrupted(self) -> None:
        """A :class:`StudyInterruptedError` saying how far the study got, if it stopped early."""
        if self.manifest.status != "interrupted":
            return
        counts = self.manifest.counts()
        raise StudyInterruptedError(
            f"study {self.manifest.study_id} interrupted: {counts['completed']} completed, "
            f"{counts['failed']} failed, {counts['pending'] + counts['running']} not run",
            study_dir=self.layout.root,
        )


def start_study(loaded: LoadedStudy, output_dir: Path, options: RunOptions) -> StudyOutcome:
    """Create ``<output_dir>/<study_id>/`` for ``loaded`` and run it."""
    executor = _choose_executor(options, loaded.study.executor)
    if isinstance(executor, SlurmExecutorConfig):
        options.slurm.check()  # before anything is created
    else:
        check_parallel_plan(loaded.plan, options.devices)
    created = datetime.now(UTC)
    layout = StudyLayout(output_dir / new_study_id(loaded.study.name, created))
    try:
        layout.root.mkdir(parents=True)
    except OSError as exc:
        raise StudyDirectoryError(
            f"cannot create the study directory {layout.root} ({exc.strerror or exc})",
            directory=layout.root,
        ) from None
    with hold_study_lock(layout):
        atomic_write_bytes(layout.study_file, loaded.data)
        manifest = StudyManifest.new(
            loaded.plan,
            study_id=layout.study_id,
            study_name=loaded.study.name,
            study_file_sha256=loaded.sha256,
            created_at=created,
        ).model_copy(update={"executor": _recorded(executor)})
        manifest.save(layout.root)
        index = _index(options.store, output_dir / DEFAULT_STORE_FILE)
        display = options.display or PlainDisplay()
        return _run(layout, loaded, manifest, index, display, options)


def resume_study(
    study_dir: Path, study_file: Path | None, *, force: bool, options: RunOptions
) -> StudyOutcome:
    """Run what remains of the study in ``study_dir`` (see :mod:`llem_harness.study.resume`)."""
    layout = StudyLayout(study_dir)
    if not layout.manifest_file.is_file():
        raise UsageError(f"{study_dir} is not a study directory (it has no manifest.json)")
    with hold_study_lock(layout):
        manifest = StudyManifest.load(layout.root)
        stopped_at = manifest.updated_at  # its last change before it stopped
        source = study_file or layout.study_file
        loaded = load_study(source, started_from=manifest.study_file_sha256)
        # the executor it ran with: a manifest names a Slurm one; none, this machine
        executor = _choose_executor(options, manifest.executor or LocalExecutorConfig())
        in_slurm = [
            e.run_index for e in manifest.entries if e.status == "running" and e.slurm_job_id
        ]
        if isinstance(executor, SlurmExecutorConfig):
            options.slurm.check()
        elif in_slurm:
            raise UsageError(
                f"study {manifest.study_id} has {len(in_slurm)} run(s) submitted to Slurm: "
                "resume it where Slurm's commands are (they follow those runs)"
            )
        else:
            check_parallel_plan(loaded.plan, options.devices)
        changed = manifest.study_file_sha256 not in (None, loaded.sha256)
        if force and in_slurm:
            raise UsageError(
                f"study {manifest.study_id} has {len(in_slurm)} run(s) in Slurm: --force "
                "re-plans the study under them; let a --resume without --force collect them "
                "first, or cancel them (scancel --name=llem-" + manifest.study_id + ")"
            )
        if changed and not force:
            raise changed_file_error(
                manifest, study_file=source, study_dir=study_dir, given=study_file is not None
            )
        if not changed and not force and not _same_plan(manifest, loaded.plan):
            raise StudyChangedError(
                f"study {manifest.study_id} expands differently with this version of llem "
                f"(design {loaded.plan.design_hash}, manifest {manifest.design_hash})",
                study_dir=study_dir,
                force_does="re-plan it, keeping the completed runs that are still planned",
            )
        index = _index(options.store, _recorded_store(layout) or _default_store(layout))
        display = options.display or PlainDisplay()
        for skip in loaded.plan.skipped:
            display.note(
                f"skipped: point {skip.index} ({format_overrides(skip.overrides)}): {skip.reason}"
            )
        notes: list[str] = []
        if not isinstance(executor, SlurmExecutorConfig):  # Slurm's runs: its runner asks Slurm
            manifest, notes = settle_stale_runs(layout, manifest, index)
        # a run found saved after a crash finished later than the manifest last changed
        stopped_at = max(
            [stopped_at, *(e.finished_at for e in manifest.entries if e.finished_at is not None)]
        )
        for note in notes:
            display.note(note)
        if changed or not _same_plan(manifest, loaded.plan):
            manifest, kept, dropped = carry_over(
                manifest,
                loaded.plan,
                study_name=loaded.study.name,
                study_file_sha256=loaded.sha256,
            )
            atomic_write_bytes(layout.study_file, loaded.data)
            display.note(
                f"forced: re-planned study {manifest.study_id} from {source}: "
                f"{kept} completed run(s) kept"
                + (
                    f"; {dropped} completed run(s) are no longer in the study (their results "
                    f"stay in {layout.root})"
                    if dropped
                    else ""
                )
            )
        if in_slurm:  # its runs went on in Slurm meanwhile: no pause
            stopped_at = datetime.now(UTC)
        manifest = manifest.resumed(stopped_at=stopped_at)  # the pause is no study time
        manifest = manifest.model_copy(update={"executor": _recorded(executor)})
        manifest.save(layout.root)
        return _run(layout, loaded, manifest, index, display, options)


def _run(
    layout: StudyLayout,
    loaded: LoadedStudy,
    manifest: StudyManifest,
    index: StoreIndex,
    display: StudyDisplay,
    options: RunOptions,
) -> StudyOutcome:
    warning = index.register_study(
        manifest.study_id,
        manifest.study_name,
        design_hash=manifest.design_hash,
        created=manifest.created_at,
        study_dir=layout.root,
    )
    if warning is not None:
        display.note(f"warning: {warning}")
    remaining = len(manifest.remaining())
    devices = [device for device in options.devices if device is not None]
    display.note(
        f"study {manifest.study_id}: {remaining} of {len(loaded.plan.runs)} run(s) to go"
        + (f" on devices {', '.join(devices)}" if devices else "")
        + f", into {layout.root}"
    )
    executor = manifest.executor
    if isinstance(executor, SlurmExecutorConfig):
        if loaded.study.gap is not None or loaded.study.gap_between_experiments_s:
            display.note("on Slurm each run has a job of its own: the study's gaps do not apply")
        manifest = SlurmRunner(
            layout=layout,
            study=loaded.study,
            plan=loaded.plan,
            manifest=manifest,
            index=index,
            display=display,
            executor=executor,
            slurm=options.slurm,
            verbose=options.verbose,
            detach=options.detach,
            cancel_on_interrupt=options.cancel_on_interrupt,
            poll_s=options.slurm_poll_s,
        ).run()
        result = write_study_result(layout, manifest, loaded.study)
        return StudyOutcome(layout=layout, manifest=manifest, result=result)
    thermometer = _thermometer(loaded.study, options)
    runner = StudyRunner(
        layout=layout,
        study=loaded.study,
        plan=loaded.plan,
        manifest=manifest,
        index=index,
        display=display,
        launcher=options.launcher,
        skip=EnterSkips() if options.enter_skips else NeverSkip(),
        thermometer=thermometer,
        devices=options.devices,
        verbose=options.verbose,
        grace_s=options.grace_s,
    )
    try:
        manifest = runner.run()
    finally:
        if isinstance(thermometer, NvmlThermometer):
            thermometer.close()
    result = write_study_result(layout, manifest, loaded.study)
    return StudyOutcome(layout=layout, manifest=manifest, result=result)


def run_study(
    study: StudyConfig | str | PathLike[str],
    *,
    output_dir: str | PathLike[str] | None = None,
    store: str | PathLike[str] | Literal[False] | None = None,
    display: StudyDisplay | None = None,
    devices: Sequence[str] | None = None,
) -> StudyResult:
    """Run every configuration of ``study`` (a study file, or a :class:`StudyConfig`), each
    in its own process, and return its statistics (also saved as ``study.json``).

    The study directory goes into ``output_dir`` (default: the study's ``output_dir``).
    ``store``: None indexes every run in ``<output_dir>/llem.db``, a path in that store,
    False in none. ``display`` receives the study's progress (plain lines on stderr by
    default). ``devices`` runs one experiment per listed GPU at a time. An interrupted study
    raises :class:`StudyInterruptedError` naming its directory, which a resume takes.
    """
    loaded = study_from_config(study) if isinstance(study, StudyConfig) else load_study(Path(study))
    if isinstance(devices, str) or len(set(devices or ())) != len(devices or ()):
        raise UsageError(f"devices {devices!r}: give a list of distinct GPUs, such as ['0', '1']")
    chosen: StoreChoice = store if store is None or store is False else Path(store)
    options = RunOptions(
        store=chosen, devices=tuple(devices) if devices else (None,), display=display
    )
    target = Path(output_dir) if output_dir is not None else Path(loaded.study.output_dir)
    outcome = start_study(loaded, target, options)
    outcome.raise_if_interrupted()
    return outcome.result


def _choose_executor(options: RunOptions, default: ExecutorConfig) -> ExecutorConfig:
    """``options.executor`` (else ``default``), with ``options.slurm_settings`` over it."""
    executor = options.executor or default
    if options.executor_kind == "local":
        executor = LocalExecutorConfig()
    elif options.executor_kind == "slurm" and not isinstance(executor, SlurmExecutorConfig):
        executor = SlurmExecutorConfig()
    if options.detach and not isinstance(executor, SlurmExecutorConfig):
        raise UsageError("--detach leaves runs to Slurm: give --executor slurm")
    if isinstance(executor, SlurmExecutorConfig) and any(options.devices):
        raise UsageError(
            "--parallel runs on this machine's GPUs, but this study's runs are Slurm jobs: "
            "use --max-parallel, or --executor local"
        )
    if not options.slurm_settings:
        return executor
    if not isinstance(executor, SlurmExecutorConfig):
        names = ", ".join(sorted(options.slurm_settings))
        raise UsageError(f"{names}: Slurm settings, for a study run with --executor slurm")
    try:
        return SlurmExecutorConfig.model_validate(
            executor.model_dump() | dict(options.slurm_settings)
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        raise ConfigError(f"executor.{key}: {error['msg']}", key=f"executor.{key}") from None


def _recorded(executor: ExecutorConfig) -> SlurmExecutorConfig | None:
    """What the manifest keeps of the executor: a Slurm one; None for this machine."""
    return executor if isinstance(executor, SlurmExecutorConfig) else None


def _index(store: StoreChoice, default: Path) -> StoreIndex:
    if store is False:
        return StoreIndex(None)
    return StoreIndex(store or default)


def _same_plan(manifest: StudyManifest, plan: StudyPlan) -> bool:
    if manifest.design_hash != plan.design_hash or len(manifest.entries) < len(plan.runs):
        return False
    return all(
        manifest.entries[run.run_index].point_index == run.point_index
        and manifest.entries[run.run_index].cycle == run.cycle
        and manifest.entries[run.run_index].config_hash == plan.point(run.point_index).config_hash
        for run in plan.runs
    )


def _recorded_store(layout: StudyLayout) -> Path | None:
    """The store the study's runs were recorded in (from their specs), if any ran."""
    specs = [*layout.runs_dir.glob("run_*.json"), *layout.runs_dir.glob("*/run_*.json")]
    for spec in sorted(specs, key=lambda path: path.stat().st_mtime, reverse=True):
        try:
            document = json.loads(spec.read_bytes())
            value = document.get("store_path") or document.get("index_path")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, str) and value:
            return Path(value)
    return None


def _default_store(layout: StudyLayout) -> Path:
    return layout.root.parent / DEFAULT_STORE_FILE


def _thermometer(study: StudyConfig, options: RunOptions) -> Thermometer | None:
    if study.gap is None:
        return None
    return options.thermometer or NvmlThermometer()

"""A study from start to end: read and expand the study file, create (or reopen) the study
directory, register it in the results store, run what remains, and write ``study.json``."""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from llem.config import read_config_file
from llem.errors import UsageError
from llem.harness.indexing import StoreIndex
from llem.study.devices import check_parallel_plan
from llem.study.display import StudyDisplay, make_display
from llem.study.gaps import EnterSkips, NeverSkip
from llem.study.launcher import Launcher
from llem.study.layout import StudyLayout, hold_study_lock, new_study_id
from llem.study.results import write_study_result
from llem.study.resume import carry_over, changed_file_error, file_sha256, settle_stale_runs
from llem.study.runner import StudyRunner
from llem_persistence.store import DEFAULT_STORE_FILE
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

__all__ = [
    "LoadedStudy",
    "RunOptions",
    "StudyOutcome",
    "load_study",
    "resume_study",
    "start_study",
]


@dataclass(frozen=True)
class LoadedStudy:
    """A study file, read, validated and expanded."""

    path: Path
    data: bytes
    sha256: str
    study: StudyConfig
    plan: StudyPlan


def load_study(path: Path) -> LoadedStudy:
    """Read ``path`` with the strict YAML reader (duplicate keys refused), validate and expand
    it; every problem is a one-line :class:`ConfigError` naming the file (exit 2)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such study file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the study file: {exc.strerror or exc}") from None
    study = parse_study(read_config_file(path), source=path)
    try:
        plan = expand_study(study)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}", key=exc.key) from None
    return LoadedStudy(path=path, data=data, sha256=file_sha256(data), study=study, plan=plan)


@dataclass(frozen=True)
class RunOptions:
    """How to run: the store, the devices, and how to show progress."""

    db: Path | None = None
    devices: Sequence[str | None] = (None,)
    interactive: bool = False
    enter_skips: bool = False
    verbose: bool = False
    launcher: Launcher = field(default_factory=Launcher)
    grace_s: float = 10.0


@dataclass(frozen=True)
class StudyOutcome:
    """Where the study is and how far it got."""

    layout: StudyLayout
    manifest: StudyManifest
    result: StudyResult


def start_study(loaded: LoadedStudy, output_dir: Path, options: RunOptions) -> StudyOutcome:
    """Create ``<output_dir>/<study_id>/`` for ``loaded`` and run it."""
    check_parallel_plan(loaded.plan, options.devices)
    created = datetime.now(UTC)
    layout = StudyLayout(output_dir / new_study_id(loaded.study.name, created))
    try:
        layout.root.mkdir(parents=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create the study directory {layout.root} ({exc.strerror or exc}); "
            "choose another --output"
        ) from None
    with hold_study_lock(layout):
        atomic_write_bytes(layout.study_file, loaded.data)
        manifest = StudyManifest.new(
            loaded.plan,
            study_id=layout.study_id,
            study_name=loaded.study.name,
            study_file_sha256=loaded.sha256,
            created_at=created,
        )
        manifest.save(layout.root)
        index = StoreIndex(options.db or output_dir / DEFAULT_STORE_FILE)
        display = make_display(interactive=options.interactive)
        return _run(layout, loaded, manifest, index, display, options)


def resume_study(
    study_dir: Path, study_file: Path | None, *, force: bool, options: RunOptions
) -> StudyOutcome:
    """Run what remains of the study in ``study_dir`` (see :mod:`llem.study.resume`)."""
    layout = StudyLayout(study_dir)
    if not layout.manifest_file.is_file():
        raise UsageError(f"{study_dir} is not a study directory (it has no manifest.json)")
    with hold_study_lock(layout):
        manifest = StudyManifest.load(layout.root)
        loaded = load_study(study_file or layout.study_file)
        check_parallel_plan(loaded.plan, options.devices)
        changed = manifest.study_file_sha256 not in (None, loaded.sha256)
        if changed and not force:
            raise changed_file_error(
                manifest, study_file=loaded.path, study_dir=study_dir, given=study_file is not None
            )
        if not changed and not force and not _same_plan(manifest, loaded.plan):
            raise UsageError(
                f"study {manifest.study_id} expands differently with this version of llem "
                f"(design {loaded.plan.design_hash}, manifest {manifest.design_hash}); pass "
                "--force to re-plan it, keeping the completed runs that are still planned"
            )
        index = StoreIndex(options.db or _recorded_store(layout) or _default_store(layout))
        display = make_display(interactive=options.interactive)
        manifest, notes = settle_stale_runs(layout, manifest, index)
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
                f"--force: re-planned study {manifest.study_id} from {loaded.path}: "
                f"{kept} completed run(s) kept"
                + (
                    f"; {dropped} completed run(s) are no longer in the study (their results "
                    f"stay in {layout.root})"
                    if dropped
                    else ""
                )
            )
        manifest = manifest.with_status("running")
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
    runner = StudyRunner(
        layout=layout,
        study=loaded.study,
        plan=loaded.plan,
        manifest=manifest,
        index=index,
        display=display,
        launcher=options.launcher,
        skip=EnterSkips() if options.enter_skips else NeverSkip(),
        devices=options.devices,
        verbose=options.verbose,
        grace_s=options.grace_s,
    )
    manifest = runner.run()
    result = write_study_result(layout, manifest, loaded.study)
    return StudyOutcome(layout=layout, manifest=manifest, result=result)


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
    for spec in sorted(layout.runs_dir.glob("run_*.json"), reverse=True):
        try:
            value = json.loads(spec.read_bytes()).get("store_path")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, str) and value:
            return Path(value)
    return None


def _default_store(layout: StudyLayout) -> Path:
    return layout.root.parent / DEFAULT_STORE_FILE

"""A writer killed with SIGKILL at random moments never leaves a partial result.json or a
partial staged result: each is the previous complete file, or absent."""

import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from llem_persistence import StagingRepository
from llem_schema import ExperimentResult
from llem_schema.testing import example_raw_result, example_result

KILLS = 20

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from llem_persistence import StagingRepository
    from llem_schema.testing import example_raw_result, example_result

    results = Path(sys.argv[1])
    staging = StagingRepository(results)
    raws = [example_raw_result(seed=0), example_raw_result(seed=1)]
    result = example_result()
    i = 0
    while True:
        staging.save_raw(raws[0].experiment_id, raws[i % 2])
        result.save(results)
        if i == 0:
            print("saved once", flush=True)  # kills land after this, within later writes
        i += 1
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_at_random_moments_never_leaves_a_partial_file(tmp_path: Path) -> None:
    rng = random.Random(20261122)
    results = tmp_path / "results"
    staged_candidates = [example_raw_result(seed=0), example_raw_result(seed=1)]
    expected = example_result()
    staging = StagingRepository(results)
    experiment = staged_candidates[0].experiment_id
    for _ in range(KILLS):
        with subprocess.Popen(
            [sys.executable, "-c", WRITER, str(results)], stdout=subprocess.PIPE, text=True
        ) as writer:
            assert writer.stdout is not None
            assert writer.stdout.readline().strip() == "saved once"
            time.sleep(rng.uniform(0.0, 0.05))
            writer.send_signal(signal.SIGKILL)
            assert writer.wait(timeout=30) == -signal.SIGKILL

        staged = staging.load_all_raw(experiment)  # raises on a partial or mismatched file
        assert staged == [] or staged[0] in staged_candidates
        for directory in results.iterdir():
            if directory.name == ".staging" or not (directory / "result.json").exists():
                continue
            assert ExperimentResult.from_json(directory) == expected
    saved = [d for d in results.iterdir() if (d / "result.json").exists()]
    assert len(saved) >= KILLS  # every writer completed at least one save before its kill

"""Check each built wheel's Requires-Dist against llem's dependency rules.

Usage: python .ci/check_wheels.py DIST_DIR

The import contracts (.importlinter) check what the code imports; this checks what installing
a wheel brings. Standard library only, so it runs before anything is installed.
"""

import re
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

EXPECTED = {
    "llem",
    "llem-schema",
    "llem-persistence",
    "llem-store",
    "llem-report",
    "llem-energy",
    "llem-harness",
    "llem-backend-pytorch",
    "llem-backend-openai",
}

# requirement -> the only distributions that may declare it
ONLY_IN = {
    "torch": {"llem-backend-pytorch"},
    "transformers": {"llem-backend-pytorch"},
    "nvidia-ml-py": {"llem-energy"},
    "pynvml": set(),  # the unofficial wrapper; llem uses NVIDIA's nvidia-ml-py
}
# requirement -> distributions that must not declare it (extras aside): nothing of llem
# requires a backend, which llem finds by entry point; llem-schema stays pydantic only
BACKENDS = {"llem-backend-pytorch", "llem-backend-openai"}
LLEM_ITSELF = EXPECTED - BACKENDS - {"llem-schema"}
NEVER_IN = {
    "pyarrow": {"llem-schema", "llem-store"},
    "llem-backend-pytorch": LLEM_ITSELF,
    "llem-backend-openai": LLEM_ITSELF,
    "typer": {"llem-harness", "llem-report"},
    "rich": {"llem-harness", "llem-report"},
    "matplotlib": {"llem-schema", "llem-store", "llem-harness"},
}
# distribution -> its complete set of requirements
EXACTLY = {"llem-schema": {"pydantic"}, "llem-store": {"llem-schema"}}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise ValueError(f"unparseable requirement: {requirement!r}")
    return normalize(match[1])


def read_wheel(path: Path) -> tuple[str, set[str]]:
    with zipfile.ZipFile(path) as wheel:
        metadata_name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(wheel.read(metadata_name).decode("utf-8"))
    requires = {
        requirement_name(r)
        for r in metadata.get_all("Requires-Dist") or []
        if "extra ==" not in r  # optional extras are not installed by default
    }
    return normalize(metadata["Name"]), requires


def problems(wheels: dict[str, set[str]]) -> list[str]:
    found: list[str] = []
    for missing in sorted(EXPECTED - wheels.keys()):
        found.append(f"{missing}: no wheel was built")
    for dist, requires in sorted(wheels.items()):
        for requirement in sorted(requires):
            allowed = ONLY_IN.get(requirement)
            if allowed is not None and dist not in allowed:
                who = f"only {', '.join(sorted(allowed))}" if allowed else "no llem distribution"
                found.append(f"{dist} requires {requirement}, which {who} may require")
            if dist in NEVER_IN.get(requirement, set()):
                found.append(f"{dist} requires {requirement}, which it must never require")
        exact = EXACTLY.get(dist)
        if exact is not None and requires != exact:
            found.append(
                f"{dist} must require exactly {', '.join(sorted(exact))}; "
                f"it requires {', '.join(sorted(requires)) or 'nothing'}"
            )
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    wheels = dict(read_wheel(path) for path in sorted(Path(argv[1]).glob("*.whl")))
    for dist, requires in sorted(wheels.items()):
        print(f"{dist:<22} {', '.join(sorted(requires)) or '-'}")
    found = problems(wheels)
    for problem in found:
        print(f"FAIL {problem}", file=sys.stderr)
    print(f"{len(wheels)} wheels checked, {len(found)} problem(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

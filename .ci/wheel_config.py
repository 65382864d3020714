"""Check what can be checked here of the release's wheels: cibuildwheel's reading of pyproject.toml, and the workflow.

cibuildwheel builds nothing here (no Docker, no macOS): --print-build-identifiers says which
wheels the configuration selects, and they must be exactly those the README promises. The
workflow must parse and run cibuildwheel at the version checked here.

Usage: python .ci/wheel_config.py   (needs cibuildwheel and PyYAML)
"""

import importlib.metadata
import pathlib
import subprocess
import sys
from typing import Any, Dict, List, Set

REPO = pathlib.Path(__file__).resolve().parent.parent
CPYTHONS = [f"cp3{minor}" for minor in range(9, 15)]
PYPYS = [f"pp3{minor}" for minor in range(9, 13)]

# What the README's platform table says is built. PyPy has no musllinux builds; on an x86_64
# machine cibuildwheel lists no PyPy for arm64 macOS (the workflow builds those on arm64).
EXPECTED = {
    "linux": {
        f"{py}-{libc}_{arch}"
        for arch in ("x86_64", "aarch64")
        for libc, pys in (("manylinux", CPYTHONS + PYPYS), ("musllinux", CPYTHONS))
        for py in pys
    },
    "macos": {f"{py}-macosx_{arch}" for py in CPYTHONS for arch in ("x86_64", "arm64")}
    | {f"{py}-macosx_x86_64" for py in PYPYS},
}


def identifiers(platform: str) -> Set[str]:
    cmd = [sys.executable, "-m", "cibuildwheel", "--platform", platform, "--print-build-identifiers", str(REPO)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return set(out.split())


def main() -> int:
    import yaml  # PyYAML: only this check needs it

    problems: List[str] = []
    for platform, expected in EXPECTED.items():
        got = identifiers(platform)
        print(f"{platform}: {len(got)} wheels: {' '.join(sorted(got))}")
        if got != expected:
            problems.append(f"{platform}: missing {sorted(expected - got)}, unexpected {sorted(got - expected)}")
    workflow: Dict[Any, Any] = yaml.safe_load((REPO / ".github" / "workflows" / "wheels.yml").read_text())
    uses = [step.get("uses", "") for job in workflow["jobs"].values() for step in job["steps"]]
    version = importlib.metadata.version("cibuildwheel")
    if f"pypa/cibuildwheel@v{version}" not in uses:
        problems.append(f"the workflow does not use pypa/cibuildwheel@v{version}, the version checked here")
    print(f"workflow: jobs {', '.join(workflow['jobs'])}; cibuildwheel {version}")
    for p in problems:
        print(f"FAILED {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

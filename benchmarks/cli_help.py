"""How long ``--help`` of every console script takes, as a user starts it (a fresh interpreter each).

    python benchmarks/cli_help.py [--repeats 5]

Each repeat runs every script once, in rotating order (a shared machine's load hits them alike, as
in ``timing.py``); min and median seconds are printed per script with the load average. The
console scripts of ``pyproject.toml`` are started as installed (``.venv/bin/lfmri-train``) where
they are on this interpreter's ``bin`` folder, else through the same entry-point function.
The target is under 3 s; ``tests/unit/cli/test_console_scripts.py`` checks what makes it so
(no torch import), this script measures it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HELP_WORDS = {"lfmri-sweep": ["summarize", "--help"], "lfmri-pretrained": ["pack", "--help"]}


def command(script: str, target: str) -> list[str]:
    installed = Path(sys.executable).parent / script
    words = HELP_WORDS.get(script, ["--help"])
    if installed.is_file():
        return [str(installed), *words]
    module, function = target.split(":")
    code = f"import sys; sys.argv = [{script!r}, *sys.argv[1:]]; from {module} import {function}; {function}()"
    return [sys.executable, "-c", code, *words]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    commands = {name: command(name, target) for name, target in scripts.items()}
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    times: dict[str, list[float]] = {name: [] for name in commands}
    names = list(commands)
    for r in range(args.repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            subprocess.run(commands[name], cwd="/", env=env, capture_output=True, check=True)
            times[name].append(time.perf_counter() - start)
    print(f"--help of every console script, {args.repeats} alternated repeats; load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} logical CPUs")
    print("| script | s (min / median) | how started |")
    print("|---|---:|---|")
    for name in names:
        how = "installed script" if commands[name][0].endswith(name) else "entry point via python -c"
        print(f"| {name} | {min(times[name]):.2f} / {statistics.median(times[name]):.2f} | {how} |")


if __name__ == "__main__":
    main()

"""The Docker image installs lfmri exactly as the README and the Makefile do (no engine runs here)."""

from __future__ import annotations

import re
import shlex

import pytest
import yaml

from tests.helpers.run import ROOT

DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [(m.group(1).upper(), m.group(2).strip()) for m in re.finditer(r"^\s*(\w+)\s+(.*)$", joined, re.M)]


def canonical(command: str, makefile_vars: dict[str, str] | None = None) -> list[tuple[str, ...]]:
    """The install steps of a shell line as comparable tuples: venv creation and pip install."""
    for name, value in (makefile_vars or {}).items():
        command = command.replace(f"$({name})", value)
    steps = []
    for part in command.split("&&"):
        words = shlex.split(part)
        if words[1:3] == ["-m", "venv"]:
            steps.append(("venv", words[0], words[3]))
        elif "pip" in part and "install" in words:
            venv = words[0].rsplit("/bin/", 1)[0]
            args = words[words.index("install") + 1 :]
            args = [{"--constraint": "-c", "--editable": "-e"}.get(a, a) for a in args]
            steps.append(("pip", venv, *args))
    return steps


def test_image_installs_dependencies_with_the_readme_and_makefile_commands_before_the_source():
    steps = instructions(DOCKERFILE)
    runs = [args for kind, args in steps if kind == "RUN"]
    copies = [args for kind, args in steps if kind == "COPY"]

    readme = (ROOT / "README.md").read_text()
    readme_line = next(line for line in readme.splitlines() if line.startswith("python3.11 -m venv"))
    assert readme_line in runs  # the very same command

    makefile = (ROOT / "Makefile").read_text()
    variables = dict(re.findall(r"^(\w+)\s*\?=\s*(\S+)", makefile, re.M))
    variables["BIN"] = f"{variables['VENV']}/bin"
    recipe = re.search(r"^\$\(BIN\)/\.installed:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    make_steps = [s for line in recipe.splitlines() for s in canonical(line.strip(), variables)]
    assert canonical(readme_line) == make_steps

    # dependencies in a layer of their own, from the pins alone, before the source is copied
    first_copy = shlex.split(copies[0].split(" ", 1)[1] if copies[0].startswith("--chown") else copies[0])
    assert sorted(first_copy[:-1]) == ["README.md", "constraints.txt", "pyproject.toml"]
    source_copy = next(i for i, (kind, args) in enumerate(steps) if kind == "COPY" and ". ." in args)
    assert steps.index(("RUN", readme_line)) < source_copy
    assert any("--no-deps" in args for kind, args in steps[source_copy:] if kind == "RUN")


def test_image_runs_any_tool_as_a_non_root_user_without_a_second_copy_of_cuda():
    steps = instructions(DOCKERFILE)
    users = [args for kind, args in steps if kind == "USER"]
    assert users and users[-1] not in ("root", "0")
    entry = [args for kind, args in steps if kind == "ENTRYPOINT"]
    assert entry and yaml.safe_load(entry[-1]) == ["/app/docker/entrypoint.sh"]
    # the torch wheel brings its CUDA libraries (pinned): the base is plain Debian, not nvidia/cuda
    base = re.search(r"ARG BASE_IMAGE=(\S+)", DOCKERFILE).group(1)
    assert not base.startswith("nvidia/cuda") and "NVIDIA_DRIVER_CAPABILITIES=compute" in DOCKERFILE
    pins = dict(re.findall(r"^([\w.-]+)==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M))
    assert "nvidia-cuda-runtime" in pins and "torch" in pins
    assert "python3.11" in DOCKERFILE
    # Debian 12's own python3.11: one package source, the one CI's debootstrapped base has
    assert base == "debian:bookworm" and "add-apt-repository" not in DOCKERFILE and "ppa:" not in DOCKERFILE
    # any UID (docker run --user "$(id -u):$(id -g)") can write outputs and caches
    assert "chmod 1777 /app/outputs /cache" in DOCKERFILE and "XDG_CACHE_HOME=/cache" in DOCKERFILE


@pytest.mark.parametrize(
    "args,expected",
    [
        (["data=folder"], ["/app/train.py", "data=folder"]),
        (["train", "loss=l1"], ["/app/train.py", "loss=l1"]),
        (["evaluate", "ckpt_path=x"], ["/app/evaluate.py", "ckpt_path=x"]),
        (["predict", "inputs=a"], ["-m", "lfmri.cli.predict", "inputs=a"]),
        (["export", "--help"], ["-m", "lfmri.cli.export", "--help"]),
        (["sweep", "summarize", "sweep_dir=d"], ["-m", "lfmri.cli.sweep", "summarize", "sweep_dir=d"]),
        (["pretrained", "list"], ["-m", "lfmri.cli.pretrained", "list"]),
    ],
)
def test_entry_point_runs_train_evaluate_predict_export_and_sweep(args, expected):
    import os
    import subprocess

    env = {**os.environ, "LFMRI_PYTHON": "echo"}
    out = subprocess.run(["sh", str(ROOT / "docker" / "entrypoint.sh"), *args], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == expected


def test_compose_runs_on_the_cpu_reserves_gpus_in_its_override_and_mounts_data_outputs_and_the_wandb_key():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    service = compose["services"]["train"]
    # compose.yaml alone starts on a machine without a GPU; compose.gpu.yaml adds the reservation
    assert "deploy" not in service and "version" not in compose  # Compose Specification: v1 (1.27+) and v2
    gpu = yaml.safe_load((ROOT / "docker" / "compose.gpu.yaml").read_text())
    assert set(gpu["services"]) == {"train"} and "version" not in gpu
    devices = gpu["services"]["train"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    targets = {re.search(r"[}\w]:(/[^:\s]+)", volume).group(1) for volume in service["volumes"]}
    assert {"/data", "/app/outputs", "/run/secrets/wandb_api_key", "/cache"} <= targets
    assert service["user"] == "${LFMRI_UID:-1000}:${LFMRI_GID:-1000}"
    assert "WANDB_API_KEY_FILE=/run/secrets/wandb_api_key" in service["environment"]
    assert service["build"]["dockerfile"] == "docker/Dockerfile" and service.get("ipc") == "host"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "outputs", "wandb", "**/*.ckpt"} <= set(ignored)


def test_ci_builds_the_image_beside_the_suite_and_runs_every_console_script_in_it():
    import subprocess
    import tomllib

    script = ROOT / ".ci" / "docker-check"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    helped = re.search(r"for tool in ([^;]+);", text).group(1).split()
    assert sorted(helped) == sorted(scripts)  # a new console script is run in the image too
    assert "--network host --build-arg" in text and "--network none" in text
    run = (ROOT / ".ci" / "run").read_text()
    # the build (downloads) overlaps the suite; the checks follow it
    assert run.index("docker-check build") < run.index("make test") < run.index("docker-check check")

"""Every command in README.md and docs/*.md parses, and every docs page is reachable from the README.

A command of a fenced ``bash`` block is checked as far as it can be without running it: the block
is valid shell (``bash -n``); an lfmri training or evaluation command composes its config with its
overrides (the Hydra apps; a sweep's first value of each swept option); a ``key=value`` tool parses
its options (``--cfg job``); docker/apptainer lines parse the tool options they pass to the image's
entry point; a benchmark names a script that exists and options it defines; ``make`` a target of
the Makefile. Python blocks compile and their imports resolve. The main commands also run for real,
end to end, in the e2e tests of :data:`END_TO_END`.
"""

from __future__ import annotations

import ast
import importlib
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from tests.helpers.config import compose
from tests.helpers.run import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")

# tools of other projects: their lines are checked by bash -n only
EXTERNAL = {"wandb", "tensorboard", "pip", "python3.11", "sbatch", "git", "cd", "export"}
TOOLS = ("train", "evaluate", "predict", "export", "sweep", "pretrained")  # the Docker entry point's first word

# the end-to-end runs of the README's main commands (test file, test function)
END_TO_END = {
    "lfmri-train": ("tests/e2e/test_train_evaluate.py", "test_training_writes_a_complete_run_directory"),
    "lfmri-evaluate": ("tests/e2e/test_train_evaluate.py", "test_evaluate_on_input_volumes_writes_correct_niftis_tables_and_figures"),
    "lfmri-predict": ("tests/e2e/test_predict.py", "test_command_line_on_a_trained_checkpoint_folder_of_scans_bad_inputs_and_overwrite"),
    "lfmri-predict pretrained=": ("tests/e2e/test_pretrained.py", "test_shipped_network_predicts_a_generated_volume_with_the_right_geometry"),
    "lfmri-export": ("tests/e2e/test_export.py", "test_cli_exports_a_trained_checkpoint_and_refuses_to_overwrite"),
    "lfmri-train -m": ("tests/e2e/test_scaleout.py", "test_multirun_2x2_makes_four_complete_runs_and_a_summary"),
    "make demo": ("tests/e2e/test_train_evaluate.py", "test_default_config_smoke_runs_on_the_embedded_mni152"),
}


def blocks(page: Path, languages: tuple[str, ...]) -> list[str]:
    return [body for language, body in FENCE.findall(page.read_text()) if language in languages]


def commands(block: str) -> list[list[str]]:
    """The commands of a shell block as words: continuation lines joined, comments dropped, a
    quote that spans lines kept whole, ``&&`` splitting a line into its commands."""
    found, pending = [], ""
    block = re.sub(r"\$\([^)]*\)", "", block)  # command substitutions ($(id -u)) are the shell's business
    for line in block.replace("\\\n", " ").splitlines():
        pending = f"{pending}\n{line}" if pending else line
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # an open quote: the command goes on
            continue
        pending = ""
        command: list[str] = []
        for word in [*words, "&&"]:
            if word == "&&":
                if command:
                    found.append(command)
                command = []
            else:
                command.append(word)
    assert not pending, f"unclosed quote in:\n{block}"
    return found


def all_commands() -> list[tuple[str, list[str]]]:
    return [(f"{page.relative_to(ROOT)}: {' '.join(words)}", words)
            for page in PAGES for block in blocks(page, ("bash", "sh", "shell")) for words in commands(block)]


def first_of_sweeps(overrides: list[str]) -> list[str]:
    """A sweep's overrides as one of its jobs: the first value of each swept option."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    out = []
    for text, override in zip(overrides, parsed):
        if override.is_sweep_override():
            value = next(iter(override.sweep_string_iterator()))
            out.append(f"{override.get_key_element()}={value}")
        else:
            out.append(text)
    return out


def check_hydra_app(app: str, args: list[str]) -> None:
    # Hydra refuses more than one of --multirun, --cfg, --info ("Only one of ... can be specified")
    commands = [a for a in args if a in ("-m", "--multirun", "--cfg", "-c", "--info", "-i")]
    assert len({{"-m": "--multirun", "-c": "--cfg", "-i": "--info"}.get(a, a) for a in commands}) <= 1, args
    args = [a for a in args if a not in ("-m", "--multirun")]
    if "--help" in args or "--hydra-help" in args:
        return
    for flag in ("--cfg", "--package"):  # what to print: not an override
        if flag in args:
            at = args.index(flag)
            del args[at : at + 2]
    cfg = compose(*first_of_sweeps(args), config=app, hydra=True)
    assert cfg is not None


def check_key_value_tool(module: str, args: list[str]) -> None:
    main = importlib.import_module(f"lfmri.cli.{module}").main
    with pytest.raises(SystemExit) as done:
        main([*args, *([] if "--help" in args else ["--cfg", "job"])])
    assert done.value.code == 0


def check_image(args: list[str]) -> None:
    """The options after the image, as docker/entrypoint.sh hands them to a tool."""
    if args and args[0] in TOOLS:
        tool, args = args[0], args[1:]
    else:
        tool = "train"
    check(["lfmri-" + tool, *args])


def check(words: list[str]) -> None:
    words = list(words)
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):  # VAR=value before the command
        words.pop(0)
    if words and words[0] in ("exec", "sudo"):
        words.pop(0)
    program, args = Path(words[0]).name, words[1:]
    if program in ("python", "python3") and args:
        if args[0] == "-m":
            module, args = args[1], args[2:]
            if module == "pytest":
                valued = {"-n", "--dist", "-m", "-k", "-p"}  # options whose value follows them
                paths = [a for prev, a in zip(["", *args], args) if not a.startswith("-") and prev not in valued]
                assert all((ROOT / a.split("::")[0]).exists() for a in paths), words
                return
            assert module.startswith("lfmri."), f"unknown module {module}"
            program = {"lfmri.pretrained": "lfmri-pretrained"}.get(module, "lfmri-" + module.rsplit(".", 1)[-1])
            if module == "lfmri.cli.ixi":
                return check_key_value_tool("ixi", args)
        else:
            script, args = args[0], args[1:]
            if script.startswith("benchmarks/"):
                source = (ROOT / script).read_text()
                for flag in (a.split("=")[0] for a in args if a.startswith("--")):
                    assert f'"{flag}"' in source, f"{script} has no option {flag}"
                return
            program = {"train.py": "lfmri-train", "evaluate.py": "lfmri-evaluate"}[script]
    if program in ("lfmri-train", "lfmri-evaluate"):
        return check_hydra_app(program.removeprefix("lfmri-"), args)
    if program.startswith("lfmri-"):
        return check_key_value_tool(program.removeprefix("lfmri-"), args)
    if program == "slurm-cluster":  # .ci/slurm-cluster: the repository's script and its actions
        script = (ROOT / words[0]).read_text()
        assert args and all(re.search(rf"^\s*{re.escape(a)}\)", script, re.M) for a in args), words
        return
    if program == "make":
        makefile = (ROOT / "Makefile").read_text()
        assert all(re.search(rf"^{re.escape(t)}:", makefile, re.M) for t in args), words
        return
    if program == "docker":
        if args[0] == "build":
            assert (ROOT / args[args.index("-f") + 1]).is_file()
            return
        if args[0] == "compose":
            return check_image(args[args.index("--rm") + 2 :])  # after the service name
        if args[0] == "save":  # an archive of the image (apptainer build ... docker-archive://)
            assert "-o" in args and any(a.split(":")[0] == "lfmri" for a in args), words
            return
        assert args[0] == "run" and "lfmri" in args, words
        return check_image(args[args.index("lfmri") + 1 :])
    if program == "apptainer":
        image = next((a for a in args if a.endswith(".sif")), None)
        if args[0] == "run":
            return check_image(args[args.index(image) + 1 :])
        if args[0] == "exec":  # a program of the image by its name: lfmri-train, python -m lfmri...
            return check(args[args.index(image) + 1 :])
        assert args[0] == "build", words
        return
    if program == "srun":
        if args[0] == "bash" and args[1] == "-c":
            script = args[2].replace("$SLURM_JOB_ID", "1").replace("$SLURM_PROCID", "0")
            return check(shlex.split(script))
        return check(args)
    assert program in EXTERNAL, f"no check for {' '.join(words)}: add one to tests/unit/test_docs.py"


def test_every_fenced_shell_block_is_valid_shell():
    for page in PAGES:
        for block in blocks(page, ("bash", "sh", "shell")):
            proc = subprocess.run(["bash", "-n"], input=block, capture_output=True, text=True)
            assert proc.returncode == 0, f"{page.name}:\n{block}\n{proc.stderr}"


@pytest.mark.parametrize(("where", "words"), all_commands(), ids=[where for where, _ in all_commands()])
def test_every_command_parses(where, words, capsys):
    check(words)


def test_python_blocks_compile_and_their_imports_resolve():
    for page in PAGES:
        for block in blocks(page, ("python",)):
            tree = ast.parse(block, filename=str(page))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom):
                    module = importlib.import_module(node.module)
                    assert all(hasattr(module, a.name) for a in node.names), ast.unparse(node)


def test_every_docs_page_is_linked_from_the_readme_and_every_link_resolves():
    readme = (ROOT / "README.md").read_text()
    linked = {Path(link.split("#")[0]).name for link in LINK.findall(readme) if link.startswith("docs/")}
    assert linked == {p.name for p in (ROOT / "docs").glob("*.md")}
    for page in PAGES:
        for link in LINK.findall(page.read_text()):
            if link.startswith(("http://", "https://")):
                continue
            target, _, anchor = link.partition("#")
            path = (page.parent / target).resolve() if target else page
            assert path.exists(), f"{page.name}: broken link {link}"
            if anchor and path.suffix == ".md":
                headings = re.findall(r"^#+ (.*)$", path.read_text(), re.M)
                slugs = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}
                assert anchor in slugs, f"{page.name}: no heading for #{anchor} in {path.name}"


def test_readme_is_a_quick_start():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    first = commands(blocks_of(quick)[0])
    assert [w[:2] for w in first[:2]] == [["make", "demo"], ["make", "test"]]


def blocks_of(text: str) -> list[str]:
    return [body for _, body in FENCE.findall(text)]


def test_the_main_commands_run_end_to_end_in_e2e_tests():
    text = "\n".join(" ".join(words) for _, words in all_commands())
    for command, (file, name) in END_TO_END.items():
        assert command in text, f"{command} is no longer documented: update END_TO_END"
        assert re.search(rf"^def {name}\(", (ROOT / file).read_text(), re.M), f"{file}::{name} is gone"


def test_the_recipe_table_of_training_md_lists_every_experiment_file():
    """docs/training.md's table of recipes names exactly the files of conf/experiment/."""
    text = (ROOT / "docs" / "training.md").read_text()
    start = text.index("| experiment | what it trains |")
    rows = [line for line in text[start:].split("\n\n")[0].splitlines()[2:] if line.startswith("|")]
    listed = {name for row in rows for name in re.findall(r"`([\w.-]+)`", row.split("|")[1])}
    files = {path.stem for path in (ROOT / "conf" / "experiment").glob("*.yaml")}
    assert listed == files, f"missing from the table: {sorted(files - listed)}; not a file: {sorted(listed - files)}"

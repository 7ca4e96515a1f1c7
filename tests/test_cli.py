"""Every command line (``python -m flatlib.<module>``, ``python benchmarks/<script>.py``): its name as typed, a help
text for every option, ``--help``, and every command example of its module docstring, parsed by the parser of
the command it runs, naming repository files that exist."""
import argparse
import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flatlib.cli import examples

ROOT = Path(__file__).resolve().parent.parent
CLI_FILES = sorted(path.relative_to(ROOT).as_posix() for folder in ("flatlib", "benchmarks")
                   for path in (ROOT / folder).rglob("*.py") if 'if __name__ == "__main__":' in path.read_text())


def prog_of(file: str) -> str:
    """How the command line of ``file`` is typed."""
    return f"python -m {file[:-3].replace('/', '.')}" if file.startswith("flatlib/") else f"python {file}"


def load(file: str):
    if file.startswith("flatlib/"):
        return importlib.import_module(file[:-3].replace("/", "."))
    spec = importlib.util.spec_from_file_location(Path(file).stem, ROOT / file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def command_of(words: list[str]) -> tuple[str, list[str]]:
    """(CLI file, arguments) of an example's words: ``python -m M ...``, ``torchrun ... -m M ...`` or
    ``python benchmarks/x.py ...``."""
    if "-m" in words:
        at = words.index("-m")
        return words[at + 1].replace(".", "/") + ".py", words[at + 2:]
    return words[1], words[2:]


def example_problems(words: list[str]) -> list[str]:
    """What is wrong with one command example: a command that is not a CLI, arguments its parser refuses, a
    repository file (relative ``.py`` or ``.yaml``) that does not exist."""
    file, args = command_of(words)
    if file not in CLI_FILES:
        return [f"{file} is not a command line of the repository"]
    try:
        load(file).build_parser().parse_args(args)
    except SystemExit:
        return [f"{prog_of(file)} refuses {args}"]
    return [f"{word} does not exist" for word in words
            if word.endswith((".py", ".yaml")) and not Path(word).is_absolute() and not (ROOT / word).is_file()]


def test_every_cli_is_found():
    assert {"flatlib/training/train.py", "flatlib/stages/pipeline.py", "flatlib/stages/runs.py", "benchmarks/bench.py"} <= set(CLI_FILES)


@pytest.mark.parametrize("file", CLI_FILES)
def test_parser_names_the_command_and_helps_every_option(file, capsys):
    parser = load(file).build_parser()
    assert parser.prog == prog_of(file) and parser.prog.startswith("python ")
    undocumented = [action.dest for action in parser._actions
                    if not isinstance(action, argparse._HelpAction) and not action.help]
    assert not undocumented, f"{file}: options without help: {undocumented}"
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and out.startswith(f"usage: {parser.prog}")
    defaults = [a for a in parser._actions if a.nargs != 0 and a.default not in (None, [], argparse.SUPPRESS)]
    assert " ".join(out.split()).count("(default: ") >= len(defaults)  # every default is shown


@pytest.mark.parametrize("file", CLI_FILES)
def test_every_docstring_example_parses_and_names_existing_files(file):
    found = examples(load(file).__doc__)
    assert found, f"{file}: the module docstring shows no command example"
    problems = [problem for words in found for problem in example_problems(words)]
    assert not problems, f"{file}: {problems}"


def test_the_example_check_catches_bad_examples():
    assert example_problems("python -m flatlib.training.train --params paper/cifar10.yaml --variant adm --out x".split()) \
        == ["paper/cifar10.yaml does not exist"]
    assert example_problems("python -m flatlib.stages.pipeline sample --variant V --seed S".split()) == \
        ["python -m flatlib.stages.pipeline refuses ['sample', '--variant', 'V', '--seed', 'S']"]
    assert example_problems("python benchmarks/nothing.py".split()) == \
        ["benchmarks/nothing.py is not a command line of the repository"]


def test_examples_join_continued_lines_and_drop_comments():
    doc = "Title.\n\n    python -m flatlib.x --a 1 \\\n        --b 'two words'   # comment\n    not a command\n"
    assert examples(doc) == [["python", "-m", "flatlib.x", "--a", "1", "--b", "two words"]]


@pytest.mark.parametrize("command", [["-m", "flatlib.training.train"], ["benchmarks/stage_times.py"]])
def test_help_runs_as_typed(command):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, *command, "--help"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith(f"usage: python {' '.join(command)}")

"""The argument parser of every command line (``python -m flatlib.<module>``, ``python benchmarks/<script>.py``):
its name as typed, the first paragraph of the module docstring as description, the docstring's command
examples as epilog, and each option's default after its help. tests/test_cli.py parses every example."""
from __future__ import annotations

import argparse
import re
import shlex

#: a docstring line that starts a command example (indented four spaces)
EXAMPLE = re.compile(r"^    (python|torchrun) ")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Description and epilog as written; an option's default after its help, unless it is None or empty (the
    help says what no value means) or the option is a flag (``--dry-run``, ``--no-progress``)."""

    def _get_help_string(self, action):
        unset = action.default is None or action.default == [] or action.nargs == 0
        return action.help if unset else super()._get_help_string(action)


def example_lines(doc: str) -> list[str]:
    """The command examples of a docstring as written: each line that :data:`EXAMPLE` matches, with the lines
    its trailing backslashes continue onto."""
    out, continued = [], False
    for line in doc.splitlines():
        if continued:
            out[-1] += "\n" + line
        elif EXAMPLE.match(line):
            out.append(line)
        else:
            continue
        continued = line.endswith("\\")
    return out


def examples(doc: str) -> list[list[str]]:
    """Each of :func:`example_lines` as an argument list (shell words, the ``#`` comment dropped)."""
    return [shlex.split(line.replace("\\\n", " "), comments=True) for line in example_lines(doc)]


def cli_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """The parser of the command line ``prog`` (as typed: ``python -m flatlib.training.train``) documented by ``doc``."""
    lines = example_lines(doc)
    return argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0], formatter_class=HelpFormatter,
                                   epilog="examples:\n" + "\n".join(lines) if lines else None)

"""Switch params.yaml to a profile: deep-merge ``profiles/NAME.yaml`` into it, keeping its comments.

    python -m flatlib.profiles cifar10        # then: dvc repro   (git checkout params.yaml to go back)
    python -m flatlib.profiles smoke --params /tmp/ws/params.yaml    # a copy of the repository in /tmp/ws

Every key of a profile must already exist in params.yaml (a typo is an error, not a new knob); the entries of
``variants`` and ``imports`` are the profile's own names, so a profile gives those sections whole.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ruamel.yaml import YAML

from flatlib.cli import cli_parser
from flatlib.config import ConfigError

PROFILES = Path(__file__).resolve().parent.parent / "profiles"
#: sections whose keys are names the profile chooses (variants): a profile replaces them whole
NAMED_SECTIONS = ("variants", "imports")


def merge(base, overrides, where: str = "") -> None:
    """Recursively write ``overrides`` into ``base``; mappings merge, anything else replaces."""
    for key, value in overrides.items():
        path = f"{where}.{key}" if where else key
        if key not in base:
            raise ConfigError(f"profile key {path!r} is not in params.yaml")
        if isinstance(value, dict) and isinstance(base[key], dict) and path not in NAMED_SECTIONS:
            merge(base[key], value, path)
        else:
            base[key] = value


def apply_profile(name: str, params_path: str | Path = "params.yaml") -> Path:
    profile = PROFILES / f"{name}.yaml"
    if not profile.is_file():
        known = sorted(p.stem for p in PROFILES.glob("*.yaml"))
        raise ConfigError(f"unknown profile {name!r}; known: {known}")
    yaml = YAML()
    yaml.preserve_quotes = True
    params_path = Path(params_path)
    params = yaml.load(params_path.read_text())
    merge(params, yaml.load(profile.read_text()))
    with open(params_path, "w") as f:
        yaml.dump(params, f)
    return params_path


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser("python -m flatlib.profiles", __doc__)
    parser.add_argument("profile", choices=sorted(p.stem for p in PROFILES.glob("*.yaml")),
                        help="a file name under profiles/ without .yaml")
    parser.add_argument("--params", default="params.yaml", help="parameter file to rewrite in place")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        print(f"applied profile {args.profile} to {apply_profile(args.profile, args.params)}")
    except ConfigError as err:
        parser.exit(2, f"flatlib.profiles: {err}\n")


if __name__ == "__main__":
    main()

"""Typed, strict configuration: the base of every params section (flatlib.schema) and the one YAML reader and
writer of the package. Imports no torch.

Every section of params.yaml maps onto a frozen dataclass (:class:`StrictConfig`). Unknown keys, missing
required keys and wrong types raise ``ConfigError`` before any work starts (nanoGPT's rule: a typo must not be
silently ignored). ``--set section.key=value`` overrides are parsed as YAML scalars.

params.yaml is read as YAML 1.2, as DVC writes it: ``dvc exp run -S key=value`` rewrites the file through ruamel,
which drops the quotes of strings such as ``"off"`` that YAML 1.1 (PyYAML) reads as false.
"""
from __future__ import annotations

import dataclasses
import difflib
import io
import types
import typing
from pathlib import Path

from ruamel.yaml import YAML

from flatlib.errors import FlatlibError


class ConfigError(FlatlibError, ValueError):
    """A configuration value is unknown, missing, or of the wrong type (an expected failure: one line, no
    traceback, from every command line)."""


def _nearest(key: str, valid) -> str:
    """`` (did you mean 'x'?)`` for the closest valid key, or nothing when none is close."""
    match = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _accepts(kind, value) -> bool:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return any(_accepts(k, value) for k in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


@dataclasses.dataclass(frozen=True, kw_only=True)
class StrictConfig:
    """Base of every config section: type-checked on construction, built from dicts with ``from_dict``."""

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not _accepts(hints[field.name], value):
                raise ConfigError(f"{type(self).__name__}.{field.name} must be {hints[field.name]}, got {value!r}")
            if hints[field.name] is float and isinstance(value, int):
                object.__setattr__(self, field.name, float(value))

    @classmethod
    def from_dict(cls, values: dict, where: str = ""):
        """Build from a plain dict; nested sections recurse. Errors name the offending key path."""
        where = where or cls.__name__
        if not isinstance(values, dict):
            raise ConfigError(f"{where} must be a mapping, got {values!r}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError(f"unknown key{'s' if len(unknown) > 1 else ''} in {where}: "
                              + ", ".join(f"{key!r}{_nearest(key, fields)}" for key in unknown)
                              + f"; valid keys: {sorted(fields)}")
        missing = [name for name, f in fields.items() if name not in values
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise ConfigError(f"{where} is missing required keys {missing}")
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for name, value in values.items():
            kind = hints[name]
            if isinstance(kind, type) and issubclass(kind, StrictConfig):
                value = kind.from_dict(value, f"{where}.{name}")
            kwargs[name] = value
        try:
            return cls(**kwargs)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def parse_yaml(text) -> typing.Any:
    """YAML 1.2 through ruamel's pure-Python safe loader (plain dicts, lists and scalars; no Python objects)."""
    return YAML(typ="safe", pure=True).load(text)


def dump_yaml(data) -> str:
    """``data`` (plain dicts, lists and scalars) as block-style YAML 1.2 text, keys in their order."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    stream = io.StringIO()
    yaml.dump(data, stream)
    return stream.getvalue()


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"parameter file not found: {path.resolve()}")
    with open(path) as f:
        return parse_yaml(f) or {}


def apply_overrides(params: dict, overrides: list[str]) -> dict:
    """Apply ``a.b.c=value`` overrides (value parsed as YAML) to a nested dict, in place; returns it."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        *parents, leaf = key.split(".")
        node = params
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section of the parameters")
            node = node[part]
        if leaf not in node:
            raise ConfigError(f"override {item!r}: unknown key {leaf!r}{_nearest(leaf, node)} (known: {sorted(node)})")
        node[leaf] = parse_yaml(raw)
    return params

"""Typed, strict configuration: the base of every params section (flatlib.schema) and the one YAML reader and
writer of the package. Imports no torch.

Every section of params.yaml maps onto a frozen dataclass (:class:`StrictConfig`). Unknown keys, missing required keys,
wrong types and values out of a field's declared range (:func:`ranged`) raise ``ConfigError`` before any work
starts (nanoGPT's rule: a typo must not be silently ignored). ``--set section.key=value`` overrides are parsed
as YAML scalars. A parameter file that is not one (a folder, not UTF-8, malformed YAML, a duplicate key) is a
``ConfigError`` naming the file, and the line and column where YAML says.

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
from ruamel.yaml.error import MarkedYAMLError

from flatlib.errors import FlatlibError


class ConfigError(FlatlibError, ValueError):
    """A configuration value is unknown, missing, or of the wrong type (an expected failure: one line, no
    traceback, from every command line)."""


class FieldError(ConfigError):
    """One field's value is of the wrong type or out of its range: ``"{owner}.{field} {problem}"``, which
    ``from_dict`` reports under the key path it read the field from (``params.flatness.draws ...``)."""

    def __init__(self, owner: str, field: str, problem: str):
        super().__init__(f"{owner}.{field} {problem}")
        self.field, self.problem = field, problem


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


@dataclasses.dataclass(frozen=True)
class Range:
    """The values a numeric field accepts: ``low <= v`` (``low < v`` when ``low_open``) and ``v <= high``
    (``v < high`` when ``high_open``); ``also`` lists single values accepted outside it (a sentinel such as -1)."""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    also: tuple = ()

    def __contains__(self, value) -> bool:
        if value in self.also:
            return True
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        if self.low is not None and self.high is not None:
            text = f"in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"
        elif self.low is not None:
            text = f"{'>' if self.low_open else '>='} {self.low}"
        else:
            text = f"{'<' if self.high_open else '<='} {self.high}"
        return text + "".join(f" or {value}" for value in self.also)


def ranged(default=dataclasses.MISSING, *, gt=None, ge=None, lt=None, le=None, also: tuple = (),
           default_factory=dataclasses.MISSING) -> typing.Any:
    """A dataclass field whose value (each item, for a list) must lie in the range the bounds give; checked by
    :class:`StrictConfig` on construction, so the range travels with the schema::

        draws: int = ranged(20, ge=1)
        sigmas: list = ranged(default_factory=lambda: [0.01], ge=0)
    """
    bounds = Range(low=gt if gt is not None else ge, high=lt if lt is not None else le,
                   low_open=gt is not None, high_open=lt is not None, also=also)
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"range": bounds})


def field_range(field: dataclasses.Field) -> Range | None:
    """The :class:`Range` a field declares with :func:`ranged`, or None."""
    return field.metadata.get("range")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True, kw_only=True)
class StrictConfig:
    """Base of every config section: type- and range-checked on construction (:func:`ranged`), built from
    dicts with ``from_dict``."""

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            owner = type(self).__name__
            if not _accepts(hints[field.name], value):
                raise FieldError(owner, field.name, f"must be {hints[field.name]}, got {value!r}")
            if hints[field.name] is float and isinstance(value, int):
                object.__setattr__(self, field.name, float(value))
            bounds = field_range(field)
            if bounds is None or value is None:
                continue
            if isinstance(value, list):
                if not all(_number(item) and item in bounds for item in value):
                    raise FieldError(owner, field.name, f"must be a list of numbers {bounds}, got {value!r}")
            elif value not in bounds:
                raise FieldError(owner, field.name, f"must be {bounds}, got {value!r}")

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
        except FieldError as err:
            raise ConfigError(f"{where}.{err.field} {err.problem}") from None
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def parse_yaml(text, source: str = "YAML") -> typing.Any:
    """YAML 1.2 through ruamel's pure-Python safe loader (plain dicts, lists and scalars; no Python objects).
    Malformed YAML and duplicate keys raise one-line :class:`ConfigError` naming ``source``, line and column."""
    try:
        return YAML(typ="safe", pure=True).load(text)
    except MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark else source
        problem = " ".join(str(err.problem or err.context or type(err).__name__).split())
        raise ConfigError(f"{where}: {problem}" + (f" ({err.context})" if err.context and err.problem else "")
                          ) from None



def dump_yaml(data) -> str:
    """``data`` (plain dicts, lists and scalars) as block-style YAML 1.2 text, keys in their order."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    stream = io.StringIO()
    yaml.dump(data, stream)
    return stream.getvalue()


def load_yaml(path: str | Path) -> dict:
    """A parameter file as a dict: a missing file, a folder, bytes that are not UTF-8 or malformed YAML raise a
    one-line :class:`ConfigError` naming it."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"parameter file {path.resolve()} is a folder, not a file")
    if not path.is_file():
        raise ConfigError(f"parameter file not found: {path.resolve()}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise ConfigError(f"{path.resolve()}, line {line}: not UTF-8 (byte 0x{data[err.start]:02x} at offset "
                          f"{err.start}): save the file as UTF-8") from None
    params = parse_yaml(text, str(path.resolve())) or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{path.resolve()} must be a mapping of sections, got {type(params).__name__}")
    return params


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
        node[leaf] = parse_yaml(raw, f"override {item!r}")
    return params

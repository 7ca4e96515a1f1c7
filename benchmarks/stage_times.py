"""Wall time of every dvc.yaml stage (a benchmark, not a test): runs each stage's command in dvc.yaml
order, without DVC (for machines that have no dvc, such as a bare GPU box), and prints one JSON line per
stage and a total. ``foreach`` and ``matrix`` stages are expanded and ``${...}`` is filled from params.yaml as DVC does.

    python benchmarks/stage_times.py                          # every stage
    python benchmarks/stage_times.py --skip notebooks --out stage_times.json
"""
import argparse
import itertools
import json
import re
import subprocess
import sys
import time

from flatlib.cli import cli_parser
from flatlib.config import load_yaml


def lookup(params: dict, dotted: str):
    value = params
    for key in dotted.split("."):
        value = value[key]
    return value


def expand(dvc: dict, params: dict) -> list[tuple[str, str]]:
    """(name, command) per stage instance, ``name@key`` for foreach stages, in dvc.yaml order."""
    out = []
    for name, stage in dvc["stages"].items():
        if "matrix" in stage:
            axes = {key: lookup(params, v[2:-1]) if isinstance(v, str) else v for key, v in stage["matrix"].items()}
            for values in itertools.product(*axes.values()):
                item = dict(zip(axes, values))
                key = "-".join(map(str, values))
                out.append((f"{name}@{key}", fill(stage["cmd"], params, **{f"item.{k}": v for k, v in item.items()})))
        elif "foreach" in stage:
            items = stage["foreach"]
            items = lookup(params, items[2:-1]) if isinstance(items, str) else items
            pairs = items.items() if isinstance(items, dict) else ((item, item) for item in items)
            out += [(f"{name}@{key}", fill(stage["do"]["cmd"], params, key=key, item=item)) for key, item in pairs]
        else:
            out.append((name, fill(stage["cmd"], params)))
    return out


def fill(cmd: str, params: dict, **local) -> str:
    return re.sub(r"\$\{([^}]+)\}", lambda m: str(local[m[1]] if m[1] in local else lookup(params, m[1])), cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser("python benchmarks/stage_times.py", __doc__)
    parser.add_argument("--params", default="params.yaml", help="parameter file that fills dvc.yaml's ${...}")
    parser.add_argument("--skip", nargs="*", default=[], help="stage names to leave out (e.g. notebooks)")
    parser.add_argument("--out", help="also write the timings to this JSON file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    params = load_yaml(args.params)
    stages = [(n, c) for n, c in expand(load_yaml("dvc.yaml"), params) if n.split("@")[0] not in args.skip]
    timings, start = {}, time.perf_counter()
    for name, cmd in stages:
        tick = time.perf_counter()
        result = subprocess.run(cmd, shell=True)
        timings[name] = round(time.perf_counter() - tick, 1)
        print(json.dumps(dict(stage=name, seconds=timings[name], rc=result.returncode)), flush=True)
        if result.returncode:
            return result.returncode
    total = dict(total_seconds=round(time.perf_counter() - start, 1), stages=timings)
    print(json.dumps(total), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(total, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

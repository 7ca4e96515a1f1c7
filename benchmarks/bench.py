"""Throughput and MFU of training (Adam, SAM) and sampling, eager vs compiled, in one run (issue 13).

    python benchmarks/bench.py                                   # CPU: params.yaml default model
    python benchmarks/bench.py --configs default cifar10 --batch-size 128 --precision bf16 --json out.json  # GPU

For each config, compile mode ("off" and ``--compile``) and workload it times ``--steps`` steps after
``--warmup`` and reports the median: steps/s, images/s (sampling: images/s of a whole T' = ``--respacing``
chain), FLOP per step counted by ``torch.utils.flop_counter.FlopCounterMode`` on one eager step (matmuls and
convolutions, forward and backward; SAM counts both passes), achieved TFLOP/s and MFU against the device's
dense peak for the precision (:data:`PEAK_TFLOPS`; on a CPU MFU is not defined and is left empty). The
first call's excess over the median is reported as compile time (warm-up for eager); compiled code is
shared within a process, so SAM's row reuses the graphs Adam's compiled. A training step
is :meth:`flatlib.training.train.Trainer.training_step` (noise, forward, loss, backward, optimizer, EMA); a sampling
step is one ancestral ``p_sample`` of a batch.
"""
import argparse
import copy
import json
import os
import statistics
import time

import flatlib  # noqa: F401  (sets the OpenMP wait policy before torch loads)
import torch
from torch.utils.flop_counter import FlopCounterMode

from flatlib.cli import cli_parser
from flatlib.config import load_yaml
from flatlib.model.device import compiled
from flatlib.model.diffusion import StackedRandomGenerator, diffusion_from_config
from flatlib.schema import TRAIN_COMPILE_MODES, Params
from flatlib.training.trainer import Trainer
from flatlib.model.unet import NAMED_CONFIGS

#: Dense peak TFLOP/s by (device-name key, precision): NVIDIA datasheets; "fp32" is the TF32 tensor-core
#: peak when TF32 matmuls are allowed, else the plain FP32 peak (key "fp32-notf32").
PEAK_TFLOPS = {
    ("H100 SXM", "bf16"): 989.4, ("H100 SXM", "fp32"): 494.7, ("H100 SXM", "fp32-notf32"): 66.9,
    ("H100 PCIe", "bf16"): 756.5, ("H100 PCIe", "fp32"): 378.0, ("H100 PCIe", "fp32-notf32"): 51.2,
    ("H200", "bf16"): 989.4, ("H200", "fp32"): 494.7, ("H200", "fp32-notf32"): 66.9,
    ("A100", "bf16"): 312.0, ("A100", "fp32"): 156.0, ("A100", "fp32-notf32"): 19.5,
}


def device_key(device: torch.device) -> str | None:
    """The :data:`PEAK_TFLOPS` name of a CUDA device (None for a CPU or an unlisted GPU)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    if "H200" in name:
        return "H200"
    if "H100" in name:
        return "H100 PCIe" if "PCIe" in name else "H100 SXM"
    return "A100" if "A100" in name else None


def peak_tflops(device: torch.device, precision: str) -> float | None:
    if precision == "fp32" and not torch.backends.cuda.matmul.allow_tf32:
        precision = "fp32-notf32"
    return PEAK_TFLOPS.get((device_key(device), precision))


def timed(fn, device: torch.device, calls: int) -> list[float]:
    """Wall seconds of each of ``calls`` calls of ``fn`` (the GPU synchronised after each)."""
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def counted_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def training_workload(params: dict, variant: str, mode: str):
    """(one training step, its device, its batch, the Trainer) of ``params`` with ``train.compile = mode``."""
    params = copy.deepcopy(params)
    params["train"]["compile"] = mode
    trainer = Trainer(Params.from_dict(params, "params").run_config(variant), out_dir="/nonexistent-benchmark-run")
    model = params["model"]
    x0 = torch.randn(trainer.local_batch, model["in_channels"], model["image_size"], model["image_size"],
                     device=trainer.device)
    if params["train"].get("channels_last"):
        x0 = x0.contiguous(memory_format=torch.channels_last)
    trainer.model.train()
    return (lambda: trainer.training_step(x0)), trainer.device, trainer.local_batch, trainer


def sampling_workload(trainer: Trainer, mode: str, respacing: int):
    """One ancestral step (the middle one of a T' = ``respacing`` chain) of the trainer's model."""
    diffusion = diffusion_from_config(trainer.cfg.diffusion, trainer.cfg.model.learn_sigma, respacing)
    batch, device = trainer.local_batch, trainer.device
    rng = StackedRandomGenerator(device, range(batch))
    x = rng.randn((batch, *trainer.cfg.model.image_shape), device=device)
    t = torch.full((batch,), respacing // 2, dtype=torch.long, device=device)
    trainer.model.eval()
    forward = compiled(trainer.model, mode)
    autocast = trainer._autocast

    @torch.no_grad()
    def step():
        with autocast():
            diffusion.p_sample(forward, x, t, rng)
    return step


def measure(name: str, fn, flops: int, device, batch: int, precision: str, steps: int, warmup: int,
            chain: int = 1) -> dict:
    times = timed(fn, device, warmup + steps)
    median = statistics.median(times[warmup:])
    peak = peak_tflops(device, precision)
    achieved = flops / median / 1e12
    return dict(workload=name, steps_per_s=round(1 / median, 2), images_per_s=round(batch / median / chain, 1),
                gflop_per_step=round(flops / 1e9, 3), tflops=round(achieved, 4),
                mfu=None if peak is None else round(achieved / peak, 4),
                first_call_extra_s=round(times[0] - median, 2))


def bench_config(params: dict, modes: list[str], steps: int, warmup: int, respacing: int) -> list[dict]:
    rows = []
    for mode in modes:
        for label, variant in (("adam", "adm"), ("sam", "sam")):
            fn, device, batch, trainer = training_workload(params, variant, mode)
            flops = counted_flops(training_workload(params, variant, "off")[0])
            rows.append(dict(compile=mode, **measure(label, fn, flops, device, batch,
                                                     params["train"]["precision"], steps, warmup)))
        flops = counted_flops(sampling_workload(trainer, "off", respacing))
        rows.append(dict(compile=mode, **measure(f"sample T'={respacing}", sampling_workload(trainer, mode, respacing),
                                                 flops, device, batch, params["train"]["precision"], steps, warmup,
                                                 chain=respacing)))
    return rows


def markdown(rows: list[dict]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("" if row[c] is None else str(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser("python benchmarks/bench.py", __doc__)
    parser.add_argument("--params", default="params.yaml", help="parameter file (its model and train sections)")
    parser.add_argument("--configs", nargs="+", default=["default"],
                        help="'default' (params.yaml model) or names of flatlib.model.unet.NAMED_CONFIGS")
    parser.add_argument("--batch-size", type=int, help="override train.batch_size (also the sampling batch)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), help="override train.precision")
    parser.add_argument("--channels-last", action="store_true", help="train.channels_last: true")
    parser.add_argument("--compile", default="default", choices=TRAIN_COMPILE_MODES[1:],
                        help="the compiled mode measured beside eager")
    parser.add_argument("--eager-only", action="store_true", help="skip the compiled measurements")
    parser.add_argument("--device", default="auto", help="train.device")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (CPU)")
    parser.add_argument("--respacing", type=int, default=20, help="T' of the sampling chain (images/s)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement (the median is reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before them")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    return parser


def main(argv=None) -> list[dict]:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    base = load_yaml(args.params)
    rows = []
    for name in args.configs:
        params = copy.deepcopy(base)
        if name != "default":
            params["model"] = NAMED_CONFIGS[name].to_dict()
            params["data"]["image_size"] = params["model"]["image_size"]  # the checks across sections
        overrides = dict(batch_size=args.batch_size, precision=args.precision, device=args.device,
                         channels_last=args.channels_last or None)
        params["train"].update({k: v for k, v in overrides.items() if v is not None})
        modes = ["off"] if args.eager_only else ["off", args.compile]
        device = torch.device("cuda" if torch.cuda.is_available() and args.device in ("auto", "cuda") else "cpu")
        machine = (torch.cuda.get_device_name() if device.type == "cuda" else
                   f"cpu x{torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
        for row in bench_config(params, modes, args.steps, args.warmup, args.respacing):
            rows.append(dict(config=name, device=machine, batch=params["train"]["batch_size"],
                             precision=params["train"]["precision"], **row))
            print(json.dumps(rows[-1]), flush=True)
    print(markdown(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == "__main__":
    main()

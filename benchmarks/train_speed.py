"""Training throughput of Adam vs SAM (benchmark, not a test): steps/s and SAM's cost relative to Adam.

    python benchmarks/train_speed.py                     # CPU default profile + the paper's CIFAR-10 config
    python benchmarks/train_speed.py --configs cifar10 --batch-size 128 --precision bf16 --channels-last  # GPU

Each measurement builds a Trainer from params.yaml (variant adm or sam) with the model swapped for a named
config, runs warm-up steps, then times ``--steps`` steps (synchronising the GPU only at the ends).
"""
import argparse
import copy
import json
import time

import torch

from flatlib.config import load_yaml
from flatlib.train import Trainer, resolve_config
from flatlib.unet import NAMED_CONFIGS


def steps_per_second(params: dict, variant: str, steps: int, warmup: int) -> float:
    trainer = Trainer(resolve_config(params, variant), out_dir="/nonexistent-benchmark-run")
    x0 = torch.randn(trainer.local_batch, params["model"]["in_channels"], params["model"]["image_size"],
                     params["model"]["image_size"], device=trainer.device)
    if params["train"].get("channels_last"):
        x0 = x0.contiguous(memory_format=torch.channels_last)
    trainer.model.train()
    for i in range(warmup + steps):
        if i == warmup:
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        trainer.training_step(x0)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--configs", nargs="+", default=["default", "cifar10"],
                        help="'default' (params.yaml model) or names of flatlib.unet.NAMED_CONFIGS")
    parser.add_argument("--batch-size", type=int, help="override train.batch_size")
    parser.add_argument("--precision", choices=("fp32", "bf16"))
    parser.add_argument("--channels-last", action="store_true", help="train.channels_last: true")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    base = load_yaml(args.params)
    results = []
    for name in args.configs:
        params = copy.deepcopy(base)
        if name != "default":
            params["model"] = NAMED_CONFIGS[name].to_dict()
        if args.batch_size:
            params["train"]["batch_size"] = args.batch_size
        elif name == "cifar10" and not torch.cuda.is_available():
            params["train"]["batch_size"] = 8  # the paper's 128 would take minutes per step on 2 CPU cores
        if args.precision:
            params["train"]["precision"] = args.precision
        if args.channels_last:
            params["train"]["channels_last"] = True
        adam = steps_per_second(params, "adm", args.steps, args.warmup)
        sam = steps_per_second(params, "sam", args.steps, args.warmup)
        row = dict(config=name, device="cuda" if torch.cuda.is_available() else f"cpu x{torch.get_num_threads()}",
                   batch_size=params["train"]["batch_size"], precision=params["train"]["precision"],
                   channels_last=bool(params["train"].get("channels_last")),
                   adam_steps_per_s=round(adam, 3), sam_steps_per_s=round(sam, 3), sam_cost_ratio=round(adam / sam, 2))
        results.append(row)
        print(json.dumps(row), flush=True)
    return results


if __name__ == "__main__":
    main()

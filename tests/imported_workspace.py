"""Inputs of a workspace whose params import variants (tests/test_runs.py, tests/test_import_pipeline.py): a tiny
guided-diffusion UNet's flags, its weights saved as guided-diffusion saves them, stand-in CIFAR-10 batches, and
params.yaml with the smoke profile applied, made RGB 32x32 at the flags' UNet, with ``imports``."""
from pathlib import Path

import numpy as np
import torch
import yaml

from flatlib.gd.flags import parse_flags
from flatlib.profiles import apply_profile
from flatlib.model.unet import create_unet

ROOT = Path(__file__).resolve().parent.parent
#: the smoke profile's UNet at 32x32 with 3 channels, as guided-diffusion flags (attention at rate 2)
FLAGS = ("--image_size 32 --num_channels 32 --num_res_blocks 1 --channel_mult 1,2 --attention_resolutions 16 "
         "--num_head_channels 32 --dropout 0.1 --learn_sigma True --noise_schedule cosine "
         "--rescale_learned_sigmas True")


def save_gd_weights(path: Path, seed: int, flags: str = FLAGS) -> Path:
    """``torch.save(model.state_dict(), path)`` of the UNet of ``flags``, away from its zero init (N(0, 0.02^2)
    added to every parameter), as guided-diffusion saves model*.pt and ema_*.pt."""
    torch.manual_seed(seed)
    model = create_unet(parse_flags(flags).unet_config())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


def write_cifar10_batches(root: Path, per_batch: int = 100, seed: int = 0) -> None:
    """Stand-in CIFAR-10 python batches (data_batch_1..5 under root/cifar-10-batches-py): random 32x32 RGB
    images with labels 0..9, in the official pickle layout (flatlib.training.data.load_cifar10 reads them)."""
    import pickle

    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        batch = {b"data": rng.integers(0, 256, (per_batch, 3 * 32 * 32), dtype=np.uint8),
                 b"labels": [int(x) for x in rng.integers(0, 10, per_batch)]}
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump(batch, f, protocol=2)


def write_imported_params(path: Path, imports: dict, variants: dict | None = None, **sections) -> Path:
    """The repository's params.yaml with the smoke profile applied, CIFAR-10 32x32 (holdout 50 of the stand-in
    500 images), the model section of :data:`FLAGS`, ``imports`` and ``variants`` (default: adm, ip, sam), 2-D
    surfaces of EMA weights, no rho sweep, and ``sections`` merged into their sections."""
    path.write_text((ROOT / "params.yaml").read_text())
    apply_profile("smoke", path)
    params = yaml.safe_load(path.read_text())
    params["data"].update(name="cifar10", image_size=32, holdout=50)
    params["model"] = {k: v for k, v in parse_flags(FLAGS).unet_config().to_dict().items() if k != "use_checkpoint"}
    params["variants"] = variants or {"adm": {}, "ip": {}, "sam": {"optimizer": "adam-sam"}}
    params["imports"] = imports
    params["flatness"]["surface_weights"] = ["ema"]
    params["rho_sweep"]["rhos"] = []
    for section, values in sections.items():
        params[section].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path

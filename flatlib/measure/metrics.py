"""Sample quality (FID, KID, precision/recall) through torch-fidelity, always offline.

FID (Heusel et al. 2017) fits a Gaussian to the features of each set and reports
``|mu_1 - mu_2|^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2})``; KID (Binkowski et al. 2018) is the unbiased
MMD^2 with the cubic kernel ``(x.y / d + 1)^3`` averaged over random subsets; precision/recall is the
k-NN manifold estimate of Kynkaanniemi et al. 2019 (k = 3). torch-fidelity computes all three; this
module only chooses the feature extractor and feeds it data:

* ``"inception"``: torch-fidelity's ``inception-v3-compat`` (a port of the TF graph the lineage's
  evaluator uses; pool3 2048-d features). Its weights file must be given by path
  (``feature_extractor_weights_path``); it is never downloaded. Grayscale images are repeated to 3
  channels, and every image is resized to 299x299 inside the extractor.
* ``"featurenet"``: :class:`FeatureNet`, a small classifier the CPU default profile trains on its own
  data set (a 16x16 image carries too little for Inception to be meaningful or fast on a CPU). Its
  pooled 128-d layer ``feat`` plays the role of pool3 (FID/KID/PRC) and ``logits`` that of the
  Inception logits (IS). Values are therefore "FID with FeatureNet features", comparable only with
  each other, never with the paper's numbers.

Reference statistics are cached under ``cache_root`` by torch-fidelity under the name
``{reference_cache_name}-{data digest}-{weights digest}`` (issue 14, guarantee 0: never a stale result):
torch-fidelity's own key holds the extractor's name only, so the SHA-256 of the reference images (the
uint8 tensor, whatever file they came from) and of the extractor's weights file make a changed reference
set or extractor a new entry. torch-fidelity unpickles its cache and the Inception weights with
``weights_only=False``; we let it only after checking them (guarantee 5): the Inception file against its
published SHA-256 (:data:`INCEPTION_SHA256`), every cache entry of our key by loading it weights-only.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import typing
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch_fidelity
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from flatlib import layout, seeding
from flatlib.atomic import sha256_file
from flatlib.training.checkpoints import read_checkpoint
from flatlib.training.data import uint8_to_float
from flatlib.errors import CorruptFileError, MissingInputError
from flatlib.progress import progress_bar

FEATURENET_NAME = "flatlib-featurenet"
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_WEIGHTS_FILE}"
#: SHA-256 of that file (95,628,359 bytes; the same bytes as pytorch-fid's pt_inception-2015-12-05-6726825d.pth).
#: Its name carries the first 8 hex digits, as torch.hub's check_hash expects: "6726825d".
INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
#: what torch-fidelity's cache entries hold besides tensors: numpy arrays (the FID statistics)
_CACHE_GLOBALS = [np._core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.float64)),
                  type(np.dtype(np.float32))]


class FeatureNet(nn.Module):
    """Small classifier: three conv3x3-GroupNorm-ReLU blocks (width, 2*width, feature_dim channels; 2x
    max-pool after the first two) -> global average pool (any image size >= 4) -> ``feature_dim`` feature
    -> linear logits. Takes float images in [-1, 1]."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32, feature_dim: int = 128):
        super().__init__()
        self.config = dict(in_channels=in_channels, num_classes=num_classes, width=width, feature_dim=feature_dim)
        widths = [in_channels, width, 2 * width, feature_dim]
        layers = []
        for i in range(3):
            layers += [nn.Conv2d(widths[i], widths[i + 1], 3, padding=1), nn.GroupNorm(8, widths[i + 1]), nn.ReLU()]
            if i < 2:
                layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@torch.no_grad()
def _accuracy(model: FeatureNet, images: torch.Tensor, labels: torch.Tensor, batch_size: int, device) -> float:
    correct = sum(int((model(x.to(device)).argmax(1).cpu() == y).sum())
                  for x, y in zip(images.split(batch_size), labels.split(batch_size)))
    return correct / len(labels)


def train_feature_net(dataset: Dataset, epochs: int = 5, batch_size: int = 128, lr: float = 1e-3, seed: int = 0,
                      device: str | torch.device = "cpu", progress: bool = True, val_fraction: float = 0.1
                      ) -> tuple[FeatureNet, dict]:
    """Train a :class:`FeatureNet` with Adam and cross-entropy on ``dataset`` ((image in [-1, 1], label)).

    A seeded ``val_fraction`` of the set is held out; initialisation and batch order come from ``seed`` only (streams
    featurenet_init and featurenet_data of flatlib.seeding; the global RNG is left as it was). Returns ``(model
    in eval mode, dict(train_acc, val_acc))``.
    """
    generator = seeding.generator(seed, "featurenet_data")  # a DataLoader would draw its base seed from the global RNG
    images, labels = next(iter(DataLoader(dataset, batch_size=len(dataset), generator=generator)))
    labels = torch.as_tensor(labels).long()
    if labels.min() < 0:
        raise ValueError("train_feature_net needs a labelled data set (got label -1)")
    order = torch.randperm(len(labels), generator=generator)
    num_val = max(1, round(val_fraction * len(labels)))
    val, train = order[:num_val], order[num_val:]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seeding.derive(seed, "featurenet_init"))
        model = FeatureNet(images.shape[1], int(labels.max()) + 1).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    with progress_bar(epochs * -(-len(train) // batch_size), "featurenet", enabled=progress) as bar:
        for _ in range(epochs):
            model.train()
            total = 0.0
            for idx in train[torch.randperm(len(train), generator=generator)].split(batch_size):
                loss = F.cross_entropy(model(images[idx].to(device)), labels[idx].to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
                bar.update()
            bar.set_postfix(loss=f"{total / len(train):.4f}")  # of the last epoch
    model.eval()
    return model, {f"{split}_acc": _accuracy(model, images[idx], labels[idx], batch_size, device)
                   for split, idx in (("train", train), ("val", val))}


def save_feature_net(path: str | Path, model: FeatureNet, meta: dict | None = None) -> None:
    """Write ``{config, state_dict, meta}`` (plain types only, so it loads with ``weights_only=True``)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"config": model.config, "state_dict": state, "meta": dict(meta or {})}, path)


def _require_file(path, what: str) -> Path:
    if path is None or not Path(path).is_file():
        raise MissingInputError(f"{what} not found: {'no path given' if path is None else Path(path).resolve()}")
    return Path(path)


def check_inception_weights(path) -> Path:
    """``path`` if it holds torch-fidelity's published Inception weights (SHA-256 checked before anything
    unpickles it); else :class:`MissingInputError` or :class:`CorruptFileError` saying where to get them."""
    where = f"place {INCEPTION_WEIGHTS_FILE} from {INCEPTION_WEIGHTS_URL} there and pass its path"
    path = _require_file(path, "Inception weights for torch-fidelity (fid.inception_weights, "
                               f"feature_extractor_weights_path; nothing is downloaded: {where})")
    digest = sha256_file(path)
    if digest != INCEPTION_SHA256:
        raise CorruptFileError(f"{path.resolve()} is not torch-fidelity's Inception weights: SHA-256 {digest}, "
                               f"the published file has {INCEPTION_SHA256}; {where}")
    return path


def load_feature_net(path: str | Path) -> tuple[FeatureNet, dict]:
    """Inverse of :func:`save_feature_net`: ``(model on CPU in eval mode, meta)``."""
    path = _require_file(path, "FeatureNet weights (train them with flatlib.measure.metrics.train_feature_net)")
    checkpoint = read_checkpoint(path, remedy="train and save the FeatureNet again (DVC stage featurenet)")
    model = FeatureNet(**checkpoint["config"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval(), checkpoint["meta"]


class FeatureNetExtractor(torch_fidelity.FeatureExtractorBase):
    """A saved :class:`FeatureNet` as a torch-fidelity feature extractor (``feature_extractor_weights_path``).

    Input: uint8 ``NxCxHxW`` as torch-fidelity feeds it, mapped to [-1, 1] like the training data. A
    1-channel net averages 3 input channels (exact for grayscale stored as RGB, e.g. PNGs read by
    torch-fidelity); a 3-channel net repeats a single input channel. Features: ``feat`` (pooled 128-d;
    FID/KID/PRC) and ``logits`` (IS).
    """

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        self.net, _ = load_feature_net(feature_extractor_weights_path)
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def get_provided_features_list():
        return "feat", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "logits" if metric == "isc" else "feat"

    @staticmethod
    def can_be_compiled():
        return False

    def forward(self, x):
        if x.dtype != torch.uint8 or x.dim() != 4:
            raise ValueError(f"expected uint8 NxCxHxW images, got {x.dtype} {tuple(x.shape)}")
        channels = self.net.config["in_channels"]
        x = uint8_to_float(x)
        if x.shape[1] != channels:
            if (channels, x.shape[1]) == (1, 3):
                x = x.mean(1, keepdim=True)
            elif (channels, x.shape[1]) == (3, 1):
                x = x.expand(-1, 3, -1, -1)
            else:
                raise ValueError(f"FeatureNet takes {channels} channels, got {x.shape[1]}")
        feat = self.net.features(x)
        out = {"feat": feat, "logits": self.net.head(feat)}
        return tuple(out[name] for name in self.features_list)


if FEATURENET_NAME not in FEATURE_EXTRACTORS_REGISTRY:  # the registry refuses a second registration
    torch_fidelity.register_feature_extractor(FEATURENET_NAME, FeatureNetExtractor)


class UInt8Images(Dataset):
    """uint8 ``NxCxHxW`` images as torch-fidelity takes a Dataset: items are bare ``CxHxW`` tensors."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


def _to_nchw(array: np.ndarray) -> np.ndarray:
    """``N,H,W`` (grayscale), ``N,C,H,W`` or ``N,H,W,C`` (guided-diffusion's layout) with C in {1, 3};
    a shape where both axis 1 and axis 3 could be channels is refused."""
    if array.ndim == 3:
        return array[:, None]
    if array.ndim == 4 and (array.shape[1] in (1, 3)) != (array.shape[3] in (1, 3)):
        return array if array.shape[1] in (1, 3) else array.transpose(0, 3, 1, 2)
    raise ValueError(f"cannot tell the channel axis of samples with shape {array.shape}")


def load_images(source) -> torch.Tensor:
    """uint8 ``NxCxHxW`` from a uint8 tensor/array, a folder of PNGs (grayscale PNGs stay 1-channel, others
    become RGB) or an ``.npz`` with key ``samples``."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            files = sorted(path.glob("*.png"))
            if not files:
                raise MissingInputError(f"no .png files in {path.resolve()}")
            arrays = []
            for file in files:
                with Image.open(file) as image:
                    arrays.append(np.asarray(image if image.mode == "L" else image.convert("RGB")))
            images = _to_nchw(np.stack(arrays))
        elif path.suffix == ".npz":
            with np.load(_require_file(path, "samples file")) as archive:
                images = _to_nchw(archive["samples"])
        else:
            raise MissingInputError(f"expected a folder of PNGs or an .npz file: {path.resolve()}")
        source = np.ascontiguousarray(images)
    images = torch.as_tensor(source).cpu()
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"expected uint8 NxCxHxW images, got {images.dtype} {tuple(images.shape)}")
    return images


def tensor_sha256(images: torch.Tensor) -> str:
    """SHA-256 of a tensor's shape, dtype and bytes: the same images give the same digest whatever file
    (npz, PNG folder) they were read from."""
    sha = hashlib.sha256(f"{tuple(images.shape)} {images.dtype}".encode())
    sha.update(images.contiguous().numpy().tobytes())
    return sha.hexdigest()


def _check_cache_entries(cache_root, cache_name: str) -> None:
    """torch-fidelity unpickles its cache with ``weights_only=False``: every entry of our key must first load
    weights-only (tensors and numpy arrays), else it is reported as corrupt."""
    for path in sorted(Path(cache_root).glob(f"{cache_name}-*.pt")):
        with torch.serialization.safe_globals(_CACHE_GLOBALS):
            read_checkpoint(path, remedy="a FID cache entry that torch-fidelity would unpickle; delete it, it "
                                         "is recomputed")


def _inception_weights(path) -> tuple[Path, str]:
    return check_inception_weights(path), INCEPTION_SHA256


def _featurenet_weights(path) -> tuple[Path, str]:
    path = _require_file(path, "FeatureNet weights (feature_extractor_weights_path; train them with train_feature_net)")
    return path, sha256_file(path)


@dataclasses.dataclass(frozen=True)
class Extractor:
    """A FID feature extractor that params.yaml's ``fid.extractor`` names: torch-fidelity's registered name of
    it, where its weights file is (``weights(fid)``: from the ``fid`` section, relative to the workspace),
    ``check_weights(path) -> (path, SHA-256)`` (a missing or wrong file raises, naming it), whether the file is
    placed by hand (preflight checks it before any work) and whether it takes RGB only (grey is repeated)."""
    fidelity_name: str
    weights: typing.Callable
    check_weights: typing.Callable[[typing.Any], tuple[Path, str]]
    placed_by_hand: bool
    rgb: bool


#: The FID feature extractors by name, one entry each. To add one (say FD with DINOv2): register its
#: torch-fidelity FeatureExtractorBase subclass, write its weights check and add an entry here; a profile then
#: sets ``fid.extractor`` (and the field its weights path is read from).
EXTRACTORS = {
    "inception": Extractor("inception-v3-compat", lambda fid: fid.inception_weights, _inception_weights,
                           placed_by_hand=True, rgb=True),
    "featurenet": Extractor(FEATURENET_NAME, lambda fid: layout.FEATURENET, _featurenet_weights,
                            placed_by_hand=False, rgb=False),
}


def compute_metrics(samples, reference, *, extractor: str, weights_path, cache_root, reference_cache_name=None,
                    kid: bool = True, prc: bool = False, batch_size: int = 64, device="cpu",
                    kid_subset_size: int | None = None) -> dict:
    """FID (and KID, precision/recall) of ``samples`` against ``reference`` with torch-fidelity.

    ``samples``/``reference``: anything :func:`load_images` takes. ``extractor``: ``"inception"`` or
    ``"featurenet"``; ``weights_path`` is required for both (torch-fidelity would download Inception when
    it is None) and Inception's must be the published file. ``reference_cache_name`` caches the reference
    features/statistics under ``cache_root``, keyed by it and the digests of the reference images and of
    the weights.
    KID subsets hold ``min(1000, N)`` images by default (torch-fidelity's 1000 fails for smaller sets).
    Returns ``dict(fid, kid_mean, kid_std[, precision, recall])``; precision is the fraction of samples
    inside the reference manifold, recall the converse.
    """
    if extractor not in EXTRACTORS:
        raise ValueError(f"unknown extractor {extractor!r}; choose from {sorted(EXTRACTORS)}")
    entry = EXTRACTORS[extractor]
    weights_path, weights_digest = entry.check_weights(weights_path)
    inputs = [load_images(samples), load_images(reference)]
    if entry.rgb:
        inputs = [x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x for x in inputs]
    device = torch.device(device)
    kwargs = dict(input1=UInt8Images(inputs[0]), input2=UInt8Images(inputs[1]), fid=True, kid=kid, prc=prc,
                  feature_extractor=entry.fidelity_name, feature_extractor_weights_path=str(weights_path),
                  cuda=device.type == "cuda", batch_size=batch_size, cache_root=str(cache_root),
                  save_cpu_ram=True, verbose=False,
                  kid_subset_size=kid_subset_size or min(1000, len(inputs[0]), len(inputs[1])))
    if reference_cache_name is not None:
        cache_name = f"{reference_cache_name}-{tensor_sha256(inputs[1])[:16]}-{weights_digest[:16]}"
        _check_cache_entries(cache_root, cache_name)
        kwargs["input2_cache_name"] = cache_name
    with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
        raw = torch_fidelity.calculate_metrics(**kwargs)
    keys = {"fid": torch_fidelity.KEY_METRIC_FID, "kid_mean": torch_fidelity.KEY_METRIC_KID_MEAN,
            "kid_std": torch_fidelity.KEY_METRIC_KID_STD, "precision": torch_fidelity.KEY_METRIC_PRECISION,
            "recall": torch_fidelity.KEY_METRIC_RECALL}
    return {ours: float(raw[theirs]) for ours, theirs in keys.items() if theirs in raw}

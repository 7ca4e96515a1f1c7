"""Loaders on small files written in the real formats, the clear-error path, and the batch stream."""
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from flatlib.training import data


def write_cifar_batches(folder, per_batch=4):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": list(rng.integers(0, 10, per_batch))}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)


def test_cifar10_reads_official_pickles(tmp_path):
    write_cifar_batches(tmp_path / "cifar-10-batches-py")
    dataset = data.load_dataset("cifar10", root=tmp_path)
    assert len(dataset) == 20
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        first = pickle.load(f, encoding="bytes")
    image, label = dataset[0]
    assert image.shape == (3, 32, 32) and label == first[b"labels"][0]
    # row-major 3072 bytes = R plane, G plane, B plane of 32x32
    expected = torch.from_numpy(first[b"data"][0].reshape(3, 32, 32)).float() / 127.5 - 1
    assert torch.equal(image, expected)


def test_missing_cifar10_names_the_path(tmp_path):
    with pytest.raises(data.DatasetMissingError, match=str(tmp_path / "cifar-10-batches-py")):
        data.load_dataset("cifar10", root=tmp_path)


def test_missing_image_folder_names_the_path(tmp_path):
    with pytest.raises(data.DatasetMissingError, match="lsun_tower"):
        data.load_dataset("image_folder", root=tmp_path, path="lsun_tower", image_size=64)
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DatasetMissingError, match="no image files"):
        data.load_dataset("image_folder", root=tmp_path, path="empty", image_size=64)


def test_image_folder_center_crops_and_resizes(tmp_path):
    folder = tmp_path / "faces" / "sub"
    folder.mkdir(parents=True)
    wide = np.zeros((40, 80, 3), dtype=np.uint8)
    wide[:, 20:60] = 255  # white centre square; the crop must keep only it
    Image.fromarray(wide).save(folder / "a.png")
    Image.fromarray(np.full((10, 10, 3), 128, np.uint8)).save(folder / "b.jpg")
    (folder / "notes.txt").write_text("ignored")
    dataset = data.load_dataset("image_folder", root=tmp_path, path="faces", image_size=16)
    assert len(dataset) == 2
    image, label = dataset[0]
    assert image.shape == (3, 16, 16) and label == -1
    assert image.min() > 0.9  # only the white centre survives the centre crop


def test_mnist5k_is_shipped_and_scaled():
    dataset = data.load_dataset("mnist5k", image_size=16)
    assert len(dataset) == 5000
    assert dataset.images.shape == (5000, 1, 16, 16)
    assert sorted(dataset.labels.unique().tolist()) == list(range(10))
    image, _ = dataset[0]
    assert image.min() >= -1 and image.max() <= 1 and image.min() == -1


def test_digits_alternative():
    dataset = data.load_dataset("digits", image_size=16)
    assert dataset.images.shape == (1797, 1, 16, 16) and dataset.images.max() > 200


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown data set 'svhn'"):
        data.load_dataset("svhn")


def test_batch_stream_is_resumable_and_ranks_are_disjoint():
    stream = data.BatchStream(num_items=50, batch_size=4, seed=3, world_size=2)
    other = data.BatchStream(num_items=50, batch_size=4, seed=3, rank=1, world_size=2)
    assert stream.steps_per_epoch == 6
    first_epoch = torch.cat([torch.cat([stream.indices(s), other.indices(s)]) for s in range(6)])
    assert len(set(first_epoch.tolist())) == 48  # no index twice within an epoch, across ranks
    resumed = data.BatchStream(num_items=50, batch_size=4, seed=3, world_size=2, start_step=7)
    iterator = iter(stream)
    straight = [next(iterator) for _ in range(10)]
    assert next(iter(resumed)) == straight[7]
    assert not torch.equal(stream.indices(0), stream.indices(6))  # a new permutation each epoch


def test_batch_iterator_follows_the_stream():
    dataset = data.load_dataset("digits", image_size=8)
    stream = data.BatchStream(len(dataset), batch_size=5, seed=0, start_step=2)
    images, labels = next(data.batch_iterator(dataset, stream))
    expected = stream.indices(2)
    assert torch.equal(labels, dataset.labels[expected])
    assert torch.equal(images, data.uint8_to_float(dataset.images[expected]))


def test_random_hflip_is_seeded_and_flips_whole_images():
    x = torch.arange(2 * 1 * 2 * 3, dtype=torch.float32).reshape(2, 1, 2, 3).repeat(8, 1, 1, 1)
    a = data.random_hflip(x, torch.Generator().manual_seed(0))
    b = data.random_hflip(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    flipped = (a != x).flatten(1).any(1)
    assert 0 < flipped.sum() < len(x)
    assert torch.equal(a[flipped], x[flipped].flip(-1))


def test_evaluation_subset_is_deterministic():
    dataset = data.load_dataset("digits", image_size=8)
    a = data.evaluation_subset(dataset, 32, seed=1)
    assert torch.equal(a, data.evaluation_subset(dataset, 32, seed=1))
    assert not torch.equal(a, data.evaluation_subset(dataset, 32, seed=2))

"""Independent random streams (issue 21): no two streams of (seed, purpose, rank, epoch) coincide; the same training
seed pairs the variants (initial weights, batches); a resumed run stays bitwise identical."""
import copy

import numpy as np
import torch

from flatlib import seeding
from flatlib.training.data import BatchStream
from flatlib.training.trainer import Trainer
from tests.test_train import TINY, load, resolve, run

SEEDS, RANKS, EPOCHS = range(10), range(4), range(100)


def test_no_two_streams_coincide():
    keys = [()] + [(k,) for k in EPOCHS] + [(r, e) for r in RANKS for e in EPOCHS]
    derived = [seeding.derive(s, p, *k) for s in SEEDS for p in seeding.PURPOSES for k in keys]
    assert len(set(derived)) == len(derived) == len(SEEDS) * len(seeding.PURPOSES) * len(keys)
    assert all(0 <= x < 2 ** 64 for x in derived)


def test_first_draws_of_the_training_streams_differ():
    """The streams the trainer draws from: what seed + epoch and seed + rank used to share."""
    streams = [(s, p, r) for s in SEEDS for p in ("dropout", "timesteps", "noise") for r in RANKS]
    streams += [(s, "data_order", e) for s in SEEDS for e in EPOCHS] + [(s, "init") for s in SEEDS]
    draws = {tuple(torch.randint(2 ** 62, (2,), generator=seeding.generator(*key)).tolist()) for key in streams}
    assert len(draws) == len(streams)
    # the old collision: seed 1's order in epoch e was seed 0's in epoch e + 1
    one, zero = BatchStream(100, 10, seed=1), BatchStream(100, 10, seed=0)
    assert not torch.equal(one.indices(0), zero.indices(zero.steps_per_epoch))


def test_derive_is_deterministic_and_torch_free():
    assert seeding.derive(3, "noise", 1) == seeding.derive(3, "noise", 1) != seeding.derive(3, "noise", 2)
    assert len(set(seeding.PURPOSES.values())) == len(seeding.PURPOSES)
    assert np.random.SeedSequence(3, spawn_key=(seeding.PURPOSES["noise"], 1)).generate_state(1, np.uint64)[0] \
        == seeding.derive(3, "noise", 1)


def test_a_seed_gives_every_variant_the_same_initial_weights_and_first_batches(tmp_path):
    first = {}
    for variant in ("adm", "sam_ip"):
        trainer = Trainer(resolve(copy.deepcopy(TINY), variant, 0), tmp_path / variant)
        batches = BatchStream(200, trainer.local_batch, trainer.cfg.seed)
        first[variant] = (trainer.model.state_dict(), [batches.indices(step) for step in range(3)])
    (weights_a, batches_a), (weights_b, batches_b) = first.values()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert all(torch.equal(a, b) for a, b in zip(batches_a, batches_b))


def test_resume_stays_bitwise(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run(tmp_path, "sam_ip", straight)
    run(tmp_path, "sam_ip", resumed, train__steps=3)
    run(tmp_path, "sam_ip", resumed)
    for name in ("model000006.pt", "ema_0.9_000006.pt", "opt000006.pt"):
        a, b = load(straight / name), load(resumed / name)
        if name.startswith("opt"):
            a, b = a["rng"], b["rng"]
        assert all(torch.equal(a[k], b[k]) for k in a), name

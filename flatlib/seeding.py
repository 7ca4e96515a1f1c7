"""Every random stream of the suite, derived from (seed, purpose, keys) (issue 21: independent streams).

A stream's seed is numpy's ``SeedSequence(entropy=seed, spawn_key=(PURPOSES[purpose], *keys))`` hashed to 64 bits,
so streams of different training seeds, purposes, ranks, epochs or images do not coincide (``seed + epoch`` made
training seed 1's data order in epoch e that of seed 0 in epoch e + 1; ``seed + rank`` made seed s on rank 1 share
seed s + 1's initialisation and dropout). The seed is a training seed (``RunConfig.seed``: initial weights and data
order shared by the variants of one seed, paired), the evaluation seed (``params.seed``: the measurement sets
shared by every model, common random numbers) or an image seed (``sample.seeds``: image i's noise, whatever the
batch size). Torch is imported only by :func:`generator`.
"""
from __future__ import annotations

import numpy as np

#: one code per purpose; a new purpose takes a new code (changing a code changes its stream)
PURPOSES = {
    "init": 0,                 # training: initial weights (global RNG; the same on every rank)
    "dropout": 1,              # training: the global RNG after initialisation (dropout), keys (rank,)
    "data_order": 2,           # training: the permutation of epoch e, keys (epoch,)
    "timesteps": 3,            # training: timesteps and flips, keys (rank,)
    "noise": 4,                # training: eps and the IP noise xi, keys (rank,)
    "heldout_images": 5,       # training: the held-out images of eval_mse
    "heldout_triples": 6,      # training: their (t, eps)
    "sampling": 7,             # measurement: x_T and every step's noise of one image seed
    "fid_reference": 8,        # measurement: the FID reference subset
    "fid_floor": 9,            # measurement: the real-vs-real floor, keys (draw,)
    "flatness_images": 10,     # measurement: the flatness set's images
    "flatness_triples": 11,    # measurement: its (t, eps)
    "flatness_lpf": 12,        # measurement: LPF / MC-sharpness perturbations
    "flatness_curve": 13,      # measurement: the directions of the 1-D loss curve and the 2-D surface (shared)
    "flatness_eigen": 14,      # measurement: the power iteration's start of the Hessian's top eigenvalue
    "flatness_trace": 15,      # measurement: the Hutchinson probes of the Hessian trace
    "exposure_images": 16,     # measurement: exposure bias' real images
    "exposure_chain": 17,      # measurement: sampling chain of image i, keys (i,)
    "exposure_forward": 18,    # measurement: forward-process noise of image i, keys (i,)
    "featurenet_init": 19,     # measurement: the feature net's initial weights
    "featurenet_data": 20,     # measurement: its validation split and batch order
    "evaluation": 21,          # measurement: the global RNG of an evaluation stage
}


def derive(seed: int, purpose: str, *keys: int) -> int:
    """The 64-bit seed of stream (``seed``, ``purpose``, ``keys``) (seed and keys non-negative ints)."""
    sequence = np.random.SeedSequence(entropy=int(seed), spawn_key=(PURPOSES[purpose], *map(int, keys)))
    return int(sequence.generate_state(1, np.uint64)[0])


def generator(seed: int, purpose: str, *keys: int, device="cpu"):
    """A ``torch.Generator`` on ``device`` seeded with :func:`derive`."""
    import torch

    return torch.Generator(device).manual_seed(derive(seed, purpose, *keys))

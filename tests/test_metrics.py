"""FeatureNet training/IO, the torch-fidelity round trip, FID/KID/PRC against hand computations, the
offline Inception path and the reference cache."""
import socket

import numpy as np
import pytest
import torch
import torch_fidelity
from PIL import Image

from flatlib.measure import metrics
from flatlib.training.data import ArrayImageDataset, uint8_to_float


def make_patterns(n, seed, size=16):
    """Four labelled classes of 16x16 grayscale uint8 patterns with random phase, position, contrast and
    noise: horizontal bars, vertical bars, a bright square, a checkerboard. Classes are stratified (equal
    counts), so two draws differ only in phase/position/contrast/noise; this makes the unbiased KID of two
    draws slightly negative (same-class pairs are rarer within a set than across sets)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    coords = torch.arange(size)
    images = torch.empty(n, 1, size, size)
    for i, label in enumerate(labels.tolist()):
        phase, top, left = torch.randint(0, 8, (3,), generator=g).tolist()
        rows, cols = ((coords + phase) // 2 % 2)[:, None], ((coords + phase) // 2 % 2)[None, :]
        square = ((coords[:, None] - top).clamp(0, 6) == (coords[:, None] - top)) & \
                 ((coords[None, :] - left).clamp(0, 6) == (coords[None, :] - left))
        pattern = [rows.expand(size, size), cols.expand(size, size), square, rows ^ cols][label]
        contrast = 150 + 80 * torch.rand((), generator=g)
        images[i, 0] = 20 + contrast * pattern.float() + 10 * torch.randn(size, size, generator=g)
    return images.round().clamp(0, 255).to(torch.uint8), labels


def shift(images, offset):
    return (images.int() + offset).clamp(0, 255).to(torch.uint8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    images, labels = make_patterns(400, seed=0)
    model, acc = metrics.train_feature_net(ArrayImageDataset(images, labels), epochs=2, batch_size=32, lr=3e-3,
                                           seed=0, device="cpu", progress=False)
    path = tmp_path_factory.mktemp("featurenet") / "featurenet.pt"
    metrics.save_feature_net(path, model, {"data": "patterns", **acc})
    return model, acc, path


@pytest.fixture(scope="module")
def sets():
    reference, _ = make_patterns(240, seed=1)
    samples, _ = make_patterns(240, seed=2)
    return reference, samples


def features(path, images):
    model, _ = metrics.load_feature_net(path)
    with torch.no_grad():
        return model.features(uint8_to_float(images)).double().numpy()


def frechet_distance(f1, f2):
    """Hand FID: |mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^{1/2}), the last trace computed as
    Tr((S1^{1/2} S2 S1^{1/2})^{1/2}) from symmetric eigendecompositions (torch-fidelity uses eigvals(S1 S2))."""
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(w.clip(0))) @ v.T
    tr_covmean = np.sqrt(np.linalg.eigvalsh(root1 @ s2 @ root1).clip(0)).sum()
    return float(((f1.mean(0) - f2.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def test_training_and_save_load_round_trip(trained, tmp_path):
    model, acc, path = trained
    assert acc["train_acc"] > 0.9 and acc["val_acc"] > 0.9, acc
    loaded, meta = metrics.load_feature_net(path)
    assert meta == {"data": "patterns", **acc}
    x = uint8_to_float(make_patterns(16, seed=5)[0])
    with torch.no_grad():
        assert torch.equal(loaded.features(x), model.features(x)) and torch.equal(loaded(x), model(x))
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        metrics.load_feature_net(tmp_path / "nowhere.pt")


def test_training_is_seeded_and_leaves_global_rng_alone():
    dataset = ArrayImageDataset(*make_patterns(64, seed=3))
    state = torch.get_rng_state()
    runs = [metrics.train_feature_net(dataset, epochs=1, batch_size=16, lr=1e-3, seed=7, device="cpu",
                                      progress=False) for _ in range(2)]
    assert torch.equal(torch.get_rng_state(), state)
    assert runs[0][1] == runs[1][1]
    for a, b in zip(runs[0][0].parameters(), runs[1][0].parameters()):
        assert torch.equal(a, b)


def test_registered_extractor_round_trips_through_torch_fidelity(trained, sets):
    _, _, path = trained
    reference, _ = sets
    extractor = torch_fidelity.registry.FEATURE_EXTRACTORS_REGISTRY[metrics.FEATURENET_NAME](
        metrics.FEATURENET_NAME, ["feat", "logits"], feature_extractor_weights_path=str(path))
    feat, logits = extractor(reference[:8])
    assert feat.shape == (8, 128) and logits.shape == (8, 4)
    rgb_feat, _ = extractor(reference[:8].expand(-1, 3, -1, -1))  # grayscale stored as RGB: same features
    assert torch.allclose(rgb_feat, feat, atol=1e-6)
    assert np.allclose(feat.double().numpy(), features(path, reference[:8]), atol=1e-6)
    # IS on the "logits" feature, one split: exp(E_x KL(p(y|x) || p(y))) by hand
    out = torch_fidelity.calculate_metrics(input1=metrics.UInt8Images(reference), isc=True, isc_splits=1,
                                           feature_extractor=metrics.FEATURENET_NAME, cuda=False, verbose=False,
                                           feature_extractor_weights_path=str(path), save_cpu_ram=True)
    with torch.no_grad():
        log_p = metrics.load_feature_net(path)[0](uint8_to_float(reference)).double().log_softmax(1)
    log_marginal = log_p.exp().mean(0).log()
    expected = (log_p.exp() * (log_p - log_marginal)).sum(1).mean().exp().item()
    assert out[torch_fidelity.KEY_METRIC_ISC_MEAN] == pytest.approx(expected, rel=1e-5)
    assert 2.0 < expected <= 4.0  # a 4-class classifier that separates the classes


def kernel_distance(f1, f2):
    """Hand KID on the full sets: unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3 (diagonals dropped within
    each set, kept across sets, as in Binkowski et al. and torch-fidelity)."""
    k = lambda a, b: (a @ b.T / a.shape[1] + 1) ** 3
    m = len(f1)
    within = (k(f1, f1).sum() - np.trace(k(f1, f1)) + k(f2, f2).sum() - np.trace(k(f2, f2))) / (m * (m - 1))
    return float(within - 2 * k(f1, f2).mean())


def test_fid_kid_prc_against_hand_values_and_known_shifts(trained, sets, tmp_path):
    _, _, path = trained
    reference, samples = sets
    common = dict(extractor="featurenet", weights_path=path, cache_root=tmp_path, batch_size=64, device="cpu")
    itself = metrics.compute_metrics(reference, reference, prc=True, **common)
    shifted = [metrics.compute_metrics(shift(samples, offset), reference, **common) for offset in (0, 20, 60)]
    fids, kids = [r["fid"] for r in shifted], [r["kid_mean"] for r in shifted]
    assert abs(itself["fid"]) < 1e-3 * fids[0]
    assert fids[0] < fids[1] < fids[2] and kids[0] < kids[1] < kids[2]
    assert itself["precision"] == 1.0 and itself["recall"] == 1.0  # every point lies in its own k-NN ball
    far, ref = features(path, shift(samples, 60)), features(path, reference)
    assert fids[2] == pytest.approx(frechet_distance(far, ref), rel=1e-4)
    # kid_subset_size defaults to N = 240 here: every subset is the whole set, so KID is the full-set value
    assert kids[2] == pytest.approx(kernel_distance(far, ref), rel=1e-3) and shifted[2]["kid_std"] < 1e-5


def test_tensor_png_folder_and_npz_inputs_agree(trained, sets, tmp_path):
    _, _, path = trained
    reference, samples = sets
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(samples):
        Image.fromarray(image[0].numpy()).save(folder / f"{i:05d}.png")
    np.savez(tmp_path / "samples.npz", samples=samples.permute(0, 2, 3, 1).numpy())  # NHWC as guided-diffusion
    assert torch.equal(metrics.load_images(folder), samples)
    assert torch.equal(metrics.load_images(tmp_path / "samples.npz"), samples)
    fids = [metrics.compute_metrics(source, reference, extractor="featurenet", weights_path=path,
                                    cache_root=tmp_path / "cache", kid=False, batch_size=64)["fid"]
            for source in (samples, folder, tmp_path / "samples.npz")]
    assert fids[0] == fids[1] == fids[2]
    with pytest.raises(ValueError, match="uint8"):
        metrics.load_images(uint8_to_float(samples))
    np.savez(tmp_path / "ambiguous.npz", samples=np.zeros((2, 3, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="channel axis"):
        metrics.load_images(tmp_path / "ambiguous.npz")


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch_fidelity.feature_extractor_inceptionv3, "load_state_dict_from_url", refuse)


def test_inception_without_weights_raises_clear_error_offline(sets, tmp_path, no_network):
    reference, samples = sets
    common = dict(extractor="inception", cache_root=tmp_path)
    with pytest.raises(FileNotFoundError, match="feature_extractor_weights_path.*no path given"):
        metrics.compute_metrics(samples, reference, weights_path=None, **common)
    missing = tmp_path / "weights" / metrics.INCEPTION_WEIGHTS_FILE
    with pytest.raises(FileNotFoundError, match=str(missing)):
        metrics.compute_metrics(samples, reference, weights_path=missing, **common)
    with pytest.raises(FileNotFoundError, match="FeatureNet weights"):
        metrics.compute_metrics(samples, reference, extractor="featurenet", weights_path=missing, cache_root=tmp_path)


def test_inception_runs_offline_from_a_weights_file(sets, tmp_path, monkeypatch, no_network):
    """Random Inception weights in torch-fidelity's format (the real file cannot be shipped): grayscale input is
    expanded to 3 channels and nothing is downloaded."""
    cls = torch_fidelity.FeatureExtractorInceptionV3
    with monkeypatch.context() as patch:
        patch.setattr(torch_fidelity.feature_extractor_inceptionv3, "load_state_dict_from_url", lambda *a, **k: {})
        patch.setattr(cls, "load_state_dict", lambda self, state: None)
        torch.manual_seed(0)
        state = torch.nn.Module.state_dict(cls("inception-v3-compat", ["2048"]))
    weights = tmp_path / metrics.INCEPTION_WEIGHTS_FILE
    torch.save(state, weights)
    reference, samples = sets
    with pytest.raises(metrics.CorruptFileError, match=f"SHA-256 {metrics.sha256_file(weights)}"):
        metrics.compute_metrics(samples[:4], reference[:4], extractor="inception", weights_path=weights,
                                cache_root=tmp_path, batch_size=4)  # not the published file: refused
    monkeypatch.setattr(metrics, "INCEPTION_SHA256", metrics.sha256_file(weights))
    out = metrics.compute_metrics(samples[:4], reference[:4], extractor="inception", weights_path=weights,
                                  cache_root=tmp_path, batch_size=4)
    assert np.isfinite(out["fid"]) and np.isfinite(out["kid_mean"]) and out["fid"] > 0


def test_reference_cache_is_reused_and_keyed_by_data_and_weights(trained, sets, tmp_path):
    model, _, path = trained
    reference, samples = sets
    common = dict(extractor="featurenet", cache_root=tmp_path / "cache", reference_cache_name="patterns-ref")
    first = metrics.compute_metrics(samples, reference, weights_path=path, **common)
    cached = sorted(p.name for p in (tmp_path / "cache").glob("patterns-ref-*.pt"))
    key = f"patterns-ref-{metrics.tensor_sha256(reference)[:16]}-{metrics.sha256_file(path)[:16]}"
    assert cached == [f"{key}-{metrics.FEATURENET_NAME}-features-feat.pt",
                      f"{key}-{metrics.FEATURENET_NAME}-stat-fid-feat.pt"]
    assert metrics.compute_metrics(samples, reference, weights_path=path, **common) == first
    # same cache name, different reference: a new entry, never the stale statistics (issue 14)
    again = metrics.compute_metrics(samples, shift(reference, 60), weights_path=path, **common)
    assert again["fid"] != first["fid"]
    assert again == metrics.compute_metrics(samples, shift(reference, 60), weights_path=path,
                                            extractor="featurenet", cache_root=tmp_path / "nocache")
    # other weights (same architecture) get their own entry
    other = tmp_path / "other.pt"
    metrics.save_feature_net(other, model, {"copy": True})
    metrics.compute_metrics(samples, reference, weights_path=other, **common)
    assert len(list((tmp_path / "cache").glob("patterns-ref-*stat-fid-feat.pt"))) == 3

"""Post-training quantization: hand-computed grids, error bounds, granularity and model copies."""
import pytest
import torch
import torch.nn as nn

from flatlib.measure.quant import quantize_model, quantize_tensor


def test_8bit_grid_of_known_tensor():
    # max|w| = 2.54 -> scale = 2.54 / 127 = 0.02; w / scale = -127, -50, 0, 0.65, 50, 121.8, 127
    w = torch.tensor([-2.54, -1.0, 0.0, 0.013, 1.0, 2.436, 2.54])
    expected = torch.tensor([-2.54, -1.0, 0.0, 0.02, 1.0, 2.44, 2.54])
    q = quantize_tensor(w, 8)
    torch.testing.assert_close(q, expected, rtol=0, atol=1e-6)
    # 4 bits: qmax = 7, scale = 2.54 / 7; w / scale = -7, -2.76, 0, 0.036, 2.76, 6.71, 7
    torch.testing.assert_close(quantize_tensor(w, 4), torch.tensor([-7., -3., 0., 0., 3., 7., 7.]) * 2.54 / 7)


def test_error_bound_and_bit_width():
    w = torch.randn(64, 32, generator=torch.Generator().manual_seed(0))
    for bits in (4, 8):
        scale = w.abs().max() / (2 ** (bits - 1) - 1)
        err = (quantize_tensor(w, bits) - w).abs()
        assert err.max() <= scale / 2 * (1 + 1e-5)
    assert (quantize_tensor(w, 4) - w).norm() > 8 * (quantize_tensor(w, 8) - w).norm()


def test_per_channel_beats_per_tensor():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(8, 4, 3, 3, generator=g) * torch.logspace(-3, 0, 8).view(8, 1, 1, 1)
    q_tensor, q_channel = quantize_tensor(w, 8), quantize_tensor(w, 8, per_channel=True)
    assert (q_channel - w).norm() < 0.5 * (q_tensor - w).norm()
    # each output channel keeps its own max exactly and stays within half of its own step
    amax = w.abs().amax(dim=(1, 2, 3))
    torch.testing.assert_close(q_channel.abs().amax(dim=(1, 2, 3)), amax)
    assert ((q_channel - w).abs().amax(dim=(1, 2, 3)) <= amax / 127 / 2 * (1 + 1e-5)).all()
    # the smallest channel underflows to zero with one scale for the whole tensor
    assert (q_tensor[0] == 0).all() and (q_channel[0] != 0).any()


def test_zero_tensor_and_dtype():
    z = torch.zeros(3, 4, dtype=torch.float64)
    for per_channel in (False, True):
        q = quantize_tensor(z, 8, per_channel)
        assert q.dtype == torch.float64 and torch.equal(q, z)
    with pytest.raises(ValueError):
        quantize_tensor(z, 1)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.norm = nn.GroupNorm(2, 4)
        self.qkv = nn.Conv1d(4, 12, 1)
        self.fc = nn.Linear(12, 3)


def test_quantize_model_copy_layers_and_report():
    torch.manual_seed(0)
    net = Net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    qnet, report = quantize_model(net, 4)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # original untouched
    after = qnet.state_dict()
    weights = ["conv.weight", "qkv.weight", "fc.weight"]
    for k, v in after.items():
        if k in weights:
            assert not torch.equal(v, before[k])
            torch.testing.assert_close(v, quantize_tensor(before[k], 4), rtol=0, atol=0)
            assert v.unique().numel() <= 15
        else:  # biases and GroupNorm stay fp32 and unchanged
            assert torch.equal(v, before[k])
    assert report["num_quantized"] == 3 and set(report["per_layer"]) == set(weights)
    assert report["num_params"] == sum(before[k].numel() for k in weights)
    for k in weights:
        rel = (after[k] - before[k]).norm() / before[k].norm()
        assert report["per_layer"][k] == pytest.approx(rel.item())
    err = sum(((after[k] - before[k]) ** 2).sum() for k in weights).sqrt()
    norm = sum((before[k] ** 2).sum() for k in weights).sqrt()
    assert report["rel_error"] == pytest.approx((err / norm).item())

    qlin, rep_lin = quantize_model(net, 4, layer_types=("linear",))
    assert rep_lin["num_quantized"] == 1 and list(rep_lin["per_layer"]) == ["fc.weight"]
    assert torch.equal(qlin.conv.weight, net.conv.weight) and not torch.equal(qlin.fc.weight, net.fc.weight)
    _, rep8 = quantize_model(net, 8)
    assert rep8["rel_error"] < report["rel_error"] / 8
    with pytest.raises(ValueError, match="attention"):
        quantize_model(net, 8, layer_types=("attention",))

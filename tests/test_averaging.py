"""EMA and SWA arithmetic against hand-computed averages."""
import pytest
import torch

from flatlib.training.averaging import EMA, SWA, swa_learning_rate


def constant_model(value):
    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(value)
        model.bias.fill_(value)
    return model


def test_ema_matches_hand_computation():
    model = constant_model(0.0)
    ema = EMA(model, rate=0.9)
    expected = 0.0
    for value in [1.0, 2.0, 4.0]:
        with torch.no_grad():
            model.weight.fill_(value)
            model.bias.fill_(value)
        ema.update(model)
        expected = 0.9 * expected + 0.1 * value
    assert torch.allclose(ema.model.weight, torch.full((1, 2), expected))
    assert expected == pytest.approx(0.1 * 4 + 0.09 * 2 + 0.081 * 1)
    assert torch.allclose(ema.model.bias, torch.tensor([0.661]))


def test_ema_warmup_rate_and_state_round_trip():
    ema = EMA(constant_model(0.0), rate=0.9999, warmup=True)
    assert ema.current_rate() == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    ema.num_updates = 90
    assert ema.current_rate() == pytest.approx(91 / 100)
    ema.num_updates = 10 ** 7
    assert ema.current_rate() == 0.9999
    restored = EMA(constant_model(5.0), rate=0.9999, warmup=True)
    restored.load_state_dict(ema.state_dict())
    assert restored.num_updates == 10 ** 7 and torch.equal(restored.model.weight, ema.model.weight)


def test_ema_rejects_bad_rate():
    with pytest.raises(ValueError, match="EMA rate"):
        EMA(constant_model(0.0), rate=1.0)


def test_swa_learning_rate_cycles():
    lrs = [swa_learning_rate(s, window=5, lr_max=1e-4, lr_min=1e-6) for s in range(10)]
    assert lrs[0] == 1e-4 and lrs[4] == pytest.approx(1e-6) and lrs[5] == 1e-4
    assert lrs[2] == pytest.approx((1e-4 + 1e-6) / 2)


def test_swa_averages_window_ends_equally():
    model = constant_model(0.0)
    swa = SWA(model, window=2, lr_max=1e-4, lr_min=1e-6)
    averaged_at = []
    for step, value in enumerate([1.0, 3.0, 5.0, 7.0, 9.0, 11.0]):
        with torch.no_grad():
            model.weight.fill_(value)
        if swa.after_step(model, step):
            averaged_at.append(value)
    assert averaged_at == [3.0, 7.0, 11.0] and swa.num_averaged == 3
    assert torch.allclose(swa.model.weight, torch.full((1, 2), 7.0))
    assert torch.allclose(swa.model.bias, torch.zeros(1))

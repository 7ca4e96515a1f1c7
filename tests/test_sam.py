"""SAM against hand computations on a quadratic, state round trip, and replicas in sync under DDP (gloo)."""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from flatlib.training.sam import SAM

A = torch.tensor([[3.0, 0.5], [0.5, 1.0]], dtype=torch.float64)


class Quadratic(torch.nn.Module):
    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(w, dtype=torch.float64))

    def loss(self):
        return 0.5 * self.w @ A @ self.w


@pytest.mark.parametrize("adaptive", [False, True])
def test_first_and_second_step_match_hand_computation(adaptive):
    w0 = torch.tensor([1.0, -2.0], dtype=torch.float64)
    model, rho, lr = Quadratic(w0.tolist()), 0.1, 0.05
    opt = SAM(model.parameters(), torch.optim.SGD, rho=rho, adaptive=adaptive, lr=lr)
    model.loss().backward()
    g = A @ w0
    if adaptive:
        e = rho * w0 ** 2 * g / torch.linalg.norm(w0.abs() * g)
    else:
        e = rho * g / torch.linalg.norm(g)
    opt.first_step(zero_grad=True)
    assert torch.allclose(model.w.detach(), w0 + e, atol=1e-12, rtol=0)
    model.loss().backward()
    opt.second_step(zero_grad=True)
    expected = w0 - lr * (A @ (w0 + e))  # restored w, stepped with the gradient taken at w + e
    assert torch.allclose(model.w.detach(), expected, atol=1e-12, rtol=0)


def test_rho_zero_is_the_base_optimizer():
    sam_model, plain_model = Quadratic([1.0, 2.0]), Quadratic([1.0, 2.0])
    sam = SAM(sam_model.parameters(), torch.optim.Adam, rho=0.0, lr=0.1)
    adam = torch.optim.Adam(plain_model.parameters(), lr=0.1)
    for _ in range(3):
        sam_model.loss().backward()
        sam.step(closure=lambda: sam_model.loss().backward())
        sam.zero_grad()
        plain_model.loss().backward()
        adam.step()
        adam.zero_grad()
    assert torch.equal(sam_model.w, plain_model.w)


def test_negative_rho_is_rejected():
    with pytest.raises(ValueError, match="rho >= 0"):
        SAM(Quadratic([1.0, 1.0]).parameters(), torch.optim.Adam, rho=-0.1, lr=1e-4)


def test_state_dict_keeps_base_moments_and_shares_groups_after_load():
    model = Quadratic([1.0, -1.0])
    opt = SAM(model.parameters(), torch.optim.Adam, rho=0.1, lr=0.01)
    model.loss().backward(); opt.first_step(True); model.loss().backward(); opt.second_step(True)
    state = opt.state_dict()
    assert torch.equal(state["state"][0]["exp_avg"], opt.base_optimizer.state[model.w]["exp_avg"])
    fresh = SAM(model.parameters(), torch.optim.Adam, rho=0.1, lr=0.01)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.base_optimizer.state[model.w]["exp_avg_sq"], opt.base_optimizer.state[model.w]["exp_avg_sq"])
    fresh.param_groups[0]["lr"] = 0.5  # a scheduler acting on SAM must reach the base optimizer
    assert fresh.base_optimizer.param_groups[0]["lr"] == 0.5


def _ddp_worker(rank, world_size, port, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    ddp = torch.nn.parallel.DistributedDataParallel(net)
    opt = SAM(ddp.parameters(), torch.optim.Adam, rho=0.1, lr=1e-2)
    data = torch.Generator().manual_seed(100 + rank)  # each replica sees its own batch
    perturbations = []
    for _ in range(3):
        x, y = torch.randn(16, 4, generator=data), torch.randn(16, 1, generator=data)
        before = [p.detach().clone() for p in net.parameters()]
        with ddp.no_sync():  # per-replica ascent
            torch.nn.functional.mse_loss(ddp(x), y).backward()
        opt.first_step(zero_grad=True)
        perturbations.append(torch.cat([(p - b).flatten() for p, b in zip(net.parameters(), before)]))
        torch.nn.functional.mse_loss(ddp(x), y).backward()  # synchronised descent gradient
        opt.second_step(zero_grad=True)
    flat = torch.cat([p.detach().flatten() for p in net.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(world_size)]
    dist.all_gather(gathered, flat)
    pert = [torch.zeros_like(perturbations[0]) for _ in range(world_size)]
    dist.all_gather(pert, perturbations[0])
    if rank == 0:
        results.put((torch.equal(gathered[0], gathered[1]), torch.equal(pert[0], pert[1]),
                     float(perturbations[0].norm())))
    dist.destroy_process_group()


def test_sam_under_ddp_keeps_replicas_in_sync(unused_tcp_port):
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    mp.spawn(_ddp_worker, args=(2, unused_tcp_port, results), nprocs=2, join=True)
    in_sync, same_perturbation, norm = results.get()
    assert in_sync, "replicas diverged after SAM steps"
    assert not same_perturbation, "first backward was synchronised: ascent should be per replica"
    assert abs(norm - 0.1) < 1e-5  # ||e|| = rho

"""Issue 21 items 3-5: the checkpoints stage length measures (flatlib.stages.length) and the equal-progress
picker on synthetic training logs."""
import pytest

from flatlib.config import ConfigError
from flatlib.stages.length import equal_progress_step, held_out_losses, nearest_step


def write_log(path, losses: dict) -> None:
    """A log.csv as the trainer writes it: eval_mse only where it was measured (blank elsewhere)."""
    lines = ["step,loss,mse,vb,lr,eval_mse"] + [f"{s},1.0,0.9,0.1,0.002,{'' if v is None else v}"
                                                 for s, v in losses.items()]
    path.write_text("\n".join(lines) + "\n")


def test_the_picker_takes_the_checkpoint_whose_held_out_loss_is_closest_to_sams_final(tmp_path):
    write_log(tmp_path / "log.csv", {25: 0.40, 50: None, 100: 0.30, 150: 0.24, 200: 0.21, 250: 0.20})
    losses = held_out_losses(tmp_path / "log.csv")
    assert 50 not in losses and losses[150] == 0.24
    checkpoints = [100, 200, 250]                       # 150 is logged but no checkpoint: not a candidate
    assert equal_progress_step(losses, checkpoints, 0.235) == 200
    assert equal_progress_step(losses, checkpoints, 0.10) == 250   # SAM further along: ADM's final
    assert equal_progress_step(losses, checkpoints, 0.90) == 100
    assert equal_progress_step({100: 0.3, 200: 0.2}, [100, 200], 0.25) == 200  # a tie: the later checkpoint
    with pytest.raises(ConfigError, match="log_every"):
        equal_progress_step(losses, [50], 0.2)


def test_a_fraction_of_training_is_the_nearest_saved_checkpoint():
    steps = [250, 500, 750, 1000, 1250, 1500, 1750, 2000]
    assert [nearest_step(steps, f * 2000) for f in (0.5, 0.75, 0.6)] == [1000, 1500, 1250]
    assert nearest_step([2, 4], 3) == 2                 # a tie: the earlier checkpoint

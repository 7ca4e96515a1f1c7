"""Progress of the long loops: tqdm on a terminal, a plain flushed line every INTERVAL_S seconds in a log, and
nothing that changes a result."""
import argparse
import io
import re

import torch
from tqdm import tqdm

from flatlib import progress
from flatlib.training import train
from flatlib.progress import INTERVAL_S, LogLines, add_progress_flag, duration, progress_bar, track
from tests.test_train import load, write_params


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_a_line_every_interval_and_none_in_between():
    clock, stream = FakeClock(), io.StringIO()
    bar = LogLines(100, "train runs/adm/seed0", stream=stream, clock=clock)
    lines_after = [0]  # lines written after step 0, 1, ...
    for step in range(1, 101):
        clock.now += INTERVAL_S / 10  # ten steps per interval
        bar.update()
        if step == 20:
            bar.set_postfix(loss="0.0312")
        lines_after.append(len(stream.getvalue().splitlines()))
    written_at = [step for step in range(1, 101) if lines_after[step] > lines_after[step - 1]]
    assert written_at == list(range(10, 101, 10))  # a line at steps 10, 20, ..., 100 and none in between
    bar.close()
    bar.close()  # a second close writes nothing
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11 and "\r" not in stream.getvalue()
    assert lines[0] == "train runs/adm/seed0: step 10/100  0.333 steps/s  ETA 4m30s"
    assert lines[4] == "train runs/adm/seed0: step 50/100  loss 0.0312  0.333 steps/s  ETA 2m30s"
    assert lines[-1] == "train runs/adm/seed0: step 100/100  loss 0.0312  0.333 steps/s  done in 5m00s"


def test_rate_and_eta_count_only_the_steps_of_this_process():
    clock, stream = FakeClock(), io.StringIO()
    with LogLines(2000, "train", initial=1500, stream=stream, clock=clock) as bar:
        clock.now += INTERVAL_S
        bar.update(60)
    first = stream.getvalue().splitlines()[0]
    assert first == "train: step 1560/2000  2 steps/s  ETA 3m40s"


def test_a_log_without_updates_or_total_still_ends_with_one_line():
    clock, stream = FakeClock(), io.StringIO()
    with LogLines(None, "sampling", stream=stream, clock=clock):
        clock.now += 3 * INTERVAL_S
    assert stream.getvalue() == "sampling: step 0  done in 1m30s\n"


def test_a_terminal_gets_tqdm_and_a_log_gets_lines():
    assert isinstance(progress_bar(10, "x", stream=Terminal()), tqdm)
    assert isinstance(progress_bar(10, "x", stream=io.StringIO()), LogLines)
    disabled = progress_bar(10, "x", enabled=False, stream=io.StringIO())
    assert isinstance(disabled, tqdm) and disabled.disable


def test_track_counts_every_item_and_the_one_a_loop_breaks_on(monkeypatch):
    monkeypatch.setattr(progress, "INTERVAL_S", 0.0)  # a line after every item
    stream = io.StringIO()
    assert list(track(range(3), "draws", "draw", stream=stream)) == [0, 1, 2]
    assert [line.split("  ")[0] for line in stream.getvalue().splitlines()] == \
        ["draws: draw 1/3", "draws: draw 2/3", "draws: draw 3/3", "draws: draw 3/3"]
    stream = io.StringIO()
    for item in track(range(8), "power", "iteration", stream=stream):
        if item == 2:
            break
    last = stream.getvalue().splitlines()[-1]
    assert last.startswith("power: iteration 3/8") and "stopped after" in last  # short of the total


def test_durations_and_the_cli_flag():
    assert [duration(s) for s in (0, 45, 484, 3723)] == ["0s", "45s", "8m04s", "1h02m03s"]
    parser = argparse.ArgumentParser()
    add_progress_flag(parser)
    assert parser.parse_args([]).progress and not parser.parse_args(["--no-progress"]).progress


def test_a_tiny_training_run_logs_plain_lines_and_the_same_weights(tmp_path, capsys, monkeypatch):
    """Captured stderr is not a terminal: progress lines with the loss, no carriage return; the weights are
    bitwise those of a run without progress (progress draws no random numbers)."""
    monkeypatch.setattr(progress, "INTERVAL_S", 0.0)
    params = str(write_params(tmp_path))
    common = ["--params", params, "--variant", "sam_ip"]
    train.main([*common, "--out", str(tmp_path / "quiet"), "--no-progress"])
    assert capsys.readouterr().err == ""
    train.main([*common, "--out", str(tmp_path / "shown")])
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert len(lines) == 7 and all(re.fullmatch(rf"train {tmp_path / 'shown'}: step \d/6  loss [\d.]+  mse [\d.]+  "
                                                r"[\d.e+]+ steps/s  (ETA|done in) \w+", line) for line in lines[1:])
    assert lines[-1].startswith(f"train {tmp_path / 'shown'}: step 6/6") and "done in" in lines[-1]
    quiet, shown = load(tmp_path / "quiet/model000006.pt"), load(tmp_path / "shown/model000006.pt")
    assert all(torch.equal(quiet[k], shown[k]) for k in quiet)

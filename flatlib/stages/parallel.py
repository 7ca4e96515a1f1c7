"""A DVC pipeline's independent stages at once: on one node (one GPU per job) or on SLURM (submitit job arrays).

    python -m flatlib.stages.parallel --jobs 2 --threads-per-job 1           # this machine, two stages at a time (CPU)
    python -m flatlib.stages.parallel --gpus 0,1,2,3,4,5,6,7                 # one 8-GPU node: one GPU per job
    python -m flatlib.stages.parallel --executor slurm --jobs 64 --slurm-partition gpu --timeout-min 2880
    dvc repro                                                         # afterwards: nothing reruns (preflight aside)

No scheduler of its own: DVC decides what to run and what is up to date, the executor decides where.
``dvc dag --dot`` gives the stage graph; its topological generations are waves of mutually independent stages
(every train/SWA/rho run, then every per-run measurement, ...). For each wave ``dvc status`` names the stages
that are not up to date, and each of them is one job running ``dvc --wait-for-lock repro --single-item STAGE``
in this workspace; the next wave starts when the wave's jobs are done. Each job's output is in
``.dvc/tmp/parallel/STAGE.log``, and ``.dvc/tmp/parallel/runs.json`` lists every job with its start and end.

Why one workspace, not a clone per job: DVC's run-cache does not restore a stage with a ``persist: true``
output (dvc/stage/cache.py refuses to hash it), and the train, swa and rho_train stages persist their run
folders so that an interrupted run resumes. A job in a clone would leave their results only in that clone's
dvc.lock, and the workspace's ``dvc repro`` would run them again. In one workspace each job records its stage
in the one dvc.lock: ``dvc repro`` holds the repository lock only to check and record a stage and releases it
while the stage's command runs (dvc/stage/run.py, ``unlocked_repo``), so jobs' commands overlap, and
``--wait-for-lock`` makes a job wait for another one's bookkeeping instead of failing. The per-output read/write
locks (``.dvc/tmp/rwlock``) still refuse two jobs writing one output. On SLURM the workspace and its DVC cache
sit on the shared file system every node mounts (``dvc config core.hardlink_lock true`` where it lacks flock).
"""
from __future__ import annotations

import argparse
import dataclasses
import graphlib
import json
import os
import queue
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from flatlib.cli import cli_parser
from flatlib.errors import FlatlibError, add_debug_flag, cli_errors

LOGS = Path(".dvc/tmp/parallel")  # per-stage logs and submitit's files (.dvc/tmp is git-ignored)
RUNS = LOGS / "runs.json"         # every job of the last call: stage, exit status, start, end, log
EXECUTORS = ("node", "slurm", "submitit-local")
DVC = (sys.executable, "-m", "dvc")  # this interpreter's DVC, wherever a job runs


@dataclasses.dataclass(frozen=True)
class StageRun:
    """One job: its stage, exit status, wall-clock start and end (time.time()) and log file."""

    stage: str
    returncode: int
    start: float
    end: float
    log: str


def dvc(args: list[str], cwd: Path) -> str:
    result = subprocess.run([*DVC, *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode:
        raise FlatlibError(f"dvc {' '.join(args)} failed in {cwd}:\n{result.stderr[-3000:]}")
    return result.stdout


def stage_waves(workspace: Path) -> list[list[str]]:
    """The stages of ``dvc dag --dot`` as waves: each wave's stages depend only on earlier waves (dvc.yaml
    order within a wave)."""
    dot = dvc(["dag", "--dot"], workspace)
    nodes = re.findall(r'^"([^"]+)";$', dot, re.MULTILINE)
    sorter = graphlib.TopologicalSorter({node: () for node in nodes})
    for upstream, downstream in re.findall(r'^"([^"]+)" -> "([^"]+)";$', dot, re.MULTILINE):
        sorter.add(downstream, upstream)
    sorter.prepare()
    waves = []
    while sorter.is_active():
        wave = sorted(sorter.get_ready(), key=nodes.index)
        sorter.done(*wave)
        waves.append(wave)
    return waves


def pending(workspace: Path, stages: list[str]) -> list[str]:
    """The stages of ``stages`` that ``dvc status`` finds changed (their upstream waves have run)."""
    changed = json.loads(dvc(["--wait-for-lock", "status", "--json", *stages], workspace) or "{}")
    return [stage for stage in stages if stage in changed]


def run_stage(workspace: str, stage: str, devices: str | None = None, threads: int | None = None) -> StageRun:
    """One job: ``dvc repro --single-item stage`` in ``workspace``, on ``devices`` (CUDA_VISIBLE_DEVICES) and with
    ``threads`` CPU threads (OMP_NUM_THREADS, which torch reads) if given; its output goes to ``LOGS/stage.log``.
    A module-level function, so submitit can pickle it."""
    env = dict(os.environ)
    if devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = devices
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    log = Path(workspace) / LOGS / f"{stage}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    with open(log, "w") as out:
        code = subprocess.run([*DVC, "--wait-for-lock", "repro", "--single-item", stage], cwd=workspace, env=env,
                              stdout=out, stderr=subprocess.STDOUT).returncode
    return StageRun(stage, code, start, time.time(), str(log))


def run_on_node(workspace: Path, stages: list[str], slots: list[str | None], threads: int | None) -> list[StageRun]:
    """Plain processes on this machine, one per slot at a time (a slot: the GPUs of one job, or None), each with
    ``threads`` CPU threads if given."""
    free: queue.Queue = queue.Queue()
    for slot in slots:
        free.put(slot)

    def job(stage):
        slot = free.get()
        try:
            return run_stage(str(workspace), stage, slot, threads)
        finally:
            free.put(slot)

    with ThreadPoolExecutor(len(slots)) as pool:
        return list(pool.map(job, stages))


def run_with_submitit(workspace: Path, stages: list[str], args) -> list[StageRun]:
    """One submitit job array per wave: SLURM (``--executor slurm``) or submitit's local executor."""
    import submitit

    cluster = "slurm" if args.executor == "slurm" else "local"
    executor = submitit.AutoExecutor(folder=workspace / LOGS / "submitit" / "%j", cluster=cluster)
    executor.update_parameters(name="flatlib", timeout_min=args.timeout_min, nodes=1, tasks_per_node=1,
                               gpus_per_node=args.gpus_per_job, cpus_per_task=args.cpus_per_job,
                               slurm_array_parallelism=args.jobs, slurm_partition=args.slurm_partition,
                               slurm_additional_parameters=dict(args.slurm_parameter))
    jobs = executor.map_array(run_stage, [str(workspace)] * len(stages), stages)
    return [job.result() for job in jobs]


def run_waves(workspace: Path, args) -> list[StageRun]:
    """Every wave's changed stages through the executor; stops after a wave in which a job failed."""
    runs = []
    (workspace / LOGS).mkdir(parents=True, exist_ok=True)
    (workspace / RUNS).write_text("[]")
    for wave in stage_waves(workspace):
        stages = pending(workspace, wave)
        if not stages:
            continue
        print(f"flatlib.stages.parallel: a wave of {len(stages)} stage(s): {' '.join(stages)}", flush=True)
        if args.executor == "node":
            done = run_on_node(workspace, stages, node_slots(args), args.threads_per_job)
        else:
            done = run_with_submitit(workspace, stages, args)
        runs += done
        for run in done:
            print(f"  {run.stage}: {'done' if run.returncode == 0 else 'FAILED'} in {run.end - run.start:.0f}s "
                  f"({run.log})", flush=True)
        (workspace / RUNS).write_text(json.dumps([dataclasses.asdict(run) for run in runs], indent=1))
        failed = [run.stage for run in done if run.returncode]
        if failed:
            raise FlatlibError(f"{len(failed)} stage(s) failed, see their logs: {' '.join(failed)}")
    return runs


def node_slots(args) -> list[str | None]:
    """The node executor's concurrent jobs: groups of --gpus-per-job of --gpus, else --jobs CPU jobs."""
    if not args.gpus:
        return [None] * args.jobs
    gpus = args.gpus.split(",")
    if len(gpus) % args.gpus_per_job:
        raise FlatlibError(f"--gpus {args.gpus}: not a multiple of --gpus-per-job {args.gpus_per_job}")
    return [",".join(gpus[i:i + args.gpus_per_job]) for i in range(0, len(gpus), args.gpus_per_job)]


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser("python -m flatlib.stages.parallel", __doc__)
    parser.add_argument("--executor", choices=EXECUTORS, default="node",
                        help="node: processes on this machine; slurm: submitit job arrays; submitit-local: "
                             "submitit's local executor (the slurm path on one machine, every job of a wave at once)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="stages at once (node without --gpus; slurm: the job array's parallelism)")
    parser.add_argument("--gpus", help="node: comma-separated GPU ids, --gpus-per-job of them per job")
    parser.add_argument("--gpus-per-job", type=int, default=1,
                        help="GPUs per job (with launch.nproc_per_node equal to it, a DDP run per job)")
    parser.add_argument("--threads-per-job", type=int,
                        help="node: CPU threads of each job (OMP_NUM_THREADS); default: inherited. On the 2-core CPU "
                             "profile 1 with --jobs 2 (make repro): one small model's step is not faster on 2 threads")
    parser.add_argument("--cpus-per-job", type=int, default=8, help="slurm: CPUs per job")
    parser.add_argument("--timeout-min", type=int, default=60 * 24, help="slurm: time limit of one job (minutes)")
    parser.add_argument("--slurm-partition", help="slurm: partition")
    parser.add_argument("--slurm-parameter", action="append", default=[], type=lambda kv: kv.split("=", 1),
                        metavar="KEY=VALUE", help="slurm: any other sbatch option, e.g. account=myproject (repeatable)")
    parser.add_argument("--workspace", type=Path, default=Path("."), help="the DVC workspace")
    add_debug_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> list[StageRun]:
    args = build_parser().parse_args(argv)
    with cli_errors("parallel", args.debug):
        return run_waves(args.workspace.resolve(), args)


if __name__ == "__main__":
    main()

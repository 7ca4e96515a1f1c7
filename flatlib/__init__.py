"""flatlib: a thin library reproducing "Understanding Flatness in Generative Models" (arXiv 2503.11078).

Layers, from the bottom (an import only points down): ``schema`` (params.yaml, torch-free), ``vocabulary``,
``layout`` and small utilities; ``model`` (UNet, diffusion); ``training`` (data, optimizers, SAM, EMA/SWA, the
loop, run folders); ``measure`` (sampling, FID, quantization, flatness, exposure, stats); ``gd`` (published
checkpoints); ``report``; ``stages`` (the DVC stages' commands). Import the module you need; importing the
package stays cheap.
"""
import os

# Thread policy (issue 13): an idle OpenMP thread spins at most 10,000 iterations (a few microseconds) before it
# sleeps. Spinning without a bound collapses when another process is busy (the tiny training step: 36 ms alone,
# 1.2 s beside a busy process); sleeping at once (OMP_WAIT_POLICY=PASSIVE) halves the speed of this step's many
# small parallel regions alone (73 ms); the short spin keeps both (38 ms alone, 167 ms beside a busy process;
# README). libgomp reads it once, when torch loads it: set here, before any flatlib module imports torch; an
# explicit GOMP_SPINCOUNT in the environment wins.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

__version__ = "0.1.0"

"""flatlib: a thin library reproducing "Understanding Flatness in Generative Models" (arXiv 2503.11078).

One module per concern: ``unet`` (ADM UNet), ``diffusion`` (Gaussian diffusion, respacing, samplers),
``data``, ``sam``, ``averaging`` (EMA/SWA), ``train``, ``sample``, ``metrics`` (FID), ``quant``,
``flatness`` and ``exposure``. Import the submodule you need; importing the package stays cheap.
"""
import os

# Thread policy (issue 13): OpenMP threads sleep instead of spinning while they wait, so a second busy process
# on a small machine slows a step ~2x instead of ~15x. libgomp reads this once, when torch loads it: set here,
# before any flatlib module imports torch; an explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

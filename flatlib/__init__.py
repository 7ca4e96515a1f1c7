"""flatlib: a thin library reproducing "Understanding Flatness in Generative Models" (arXiv 2503.11078).

One module per concern: ``unet`` (ADM UNet), ``diffusion`` (Gaussian diffusion, respacing, samplers),
``data``, ``sam``, ``averaging`` (EMA/SWA), ``train``, ``sample``, ``metrics`` (FID), ``quant``,
``flatness`` and ``exposure``. Import the submodule you need; importing the package stays cheap.
"""
__version__ = "0.1.0"

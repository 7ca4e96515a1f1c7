"""The model: the ADM UNet (``unet``) and Gaussian diffusion (``diffusion``: schedules, losses, samplers)."""

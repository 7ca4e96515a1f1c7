"""The paper's published numbers (arXiv 2503.11078): Table 1 and the secondary results the notebooks
compare with. Facts, not measurements; row labels, T' and data sets follow flatlib.vocabulary."""
from __future__ import annotations

from flatlib.vocabulary import PAPER_RESPACINGS
#: Table 1 (FID, lower is better): row -> data set -> FID at each of PAPER_RESPACINGS (T'=20, T'=100).
PAPER_TABLE1 = {
    "ADM":      {"CIFAR-10": (34.47, 8.80), "LSUN Tower": (36.65, 8.57), "FFHQ": (30.81, 7.53)},
    "+EMA":     {"CIFAR-10": (10.63, 4.06), "LSUN Tower": (7.87, 2.49), "FFHQ": (19.03, 6.19)},
    "+SWA":     {"CIFAR-10": (11.00, 3.78), "LSUN Tower": (8.72, 2.31), "FFHQ": (17.93, 5.49)},
    "+IP":      {"CIFAR-10": (20.11, 7.23), "LSUN Tower": (25.77, 7.00), "FFHQ": (15.03, 13.55)},
    "+IP+EMA":  {"CIFAR-10": (9.10, 3.46), "LSUN Tower": (7.66, 2.43), "FFHQ": (11.72, 4.00)},
    "+IP+SWA":  {"CIFAR-10": (9.04, 3.07), "LSUN Tower": (8.55, 2.34), "FFHQ": (12.99, 3.54)},
    "+SAM":     {"CIFAR-10": (9.01, 3.83), "LSUN Tower": (16.02, 4.79), "FFHQ": (11.59, 5.29)},
    "+SAM+EMA": {"CIFAR-10": (7.00, 3.18), "LSUN Tower": (6.66, 2.30), "FFHQ": (11.41, 5.04)},
    "+SAM+SWA": {"CIFAR-10": (7.27, 2.96), "LSUN Tower": (6.50, 2.27), "FFHQ": (12.15, 4.17)},
}
#: CIFAR-10, T'=20: FID at full precision (32) and with 8-bit weights.
PAPER_QUANT_8BIT = {"ADM": {32: 34.47, 8: 48.02}, "+SAM": {32: 9.01, 8: 8.94}}
#: Parameters of the paper's CIFAR-10 UNet with the official repository's README flags (52,546,438 exactly:
#: NAMED_CONFIGS["cifar10"], checked against guided-diffusion's create_model in tests/test_unet.py).
PAPER_UNET_PARAMS = 52.5e6
#: Exposure-bias gap of the predicted-noise norm (sampling minus training), CIFAR-10.
PAPER_EXPOSURE_GAP = {"ADM": 11.39, "+SAM": 3.32}


def paper_fid(row: str, respacing: int, dataset: str = "CIFAR-10") -> float:
    """The paper's FID of a Table 1 row at T' (NaN where the paper has none)."""
    values = PAPER_TABLE1.get(row, {}).get(dataset)
    return values[PAPER_RESPACINGS.index(respacing)] if values and respacing in PAPER_RESPACINGS else float("nan")

"""The experiment's vocabulary, spelled once: Table 1's rows (variant, weights, label), the weights kinds, the
paper's T' and data sets and the verdict words. The pipeline, claims, summary,
notebooks, figures and publish read it; nothing here imports torch (nor anything of flatlib).

A Table 1 row is a (variant, weights) pair of the pipeline: ``adm/raw`` is "ADM", ``adm/ema`` "+EMA", ``sam/swa``
"+SAM+SWA". A variant or weights kind the paper lacks is labelled ``variant/weights``. The T' measured and shown
are ``sample.respacings`` (:func:`measured_respacings`); a paper column beside a T' the paper lacks (T'=50) is
empty, and a claim about the paper's T'=100 is "not evaluated" without it (:data:`PAPER_RESPACINGS`).
"""
from __future__ import annotations

WEIGHT_KINDS = ("raw", "ema", "swa")
#: the weights every saved checkpoint of a run has (SWA weights exist only after the SWA phase, at the final step)
CHECKPOINT_WEIGHTS = ("raw", "ema")
#: the paper's name of each row, in the paper's order
PAPER_ROWS = {("adm", "raw"): "ADM", ("adm", "ema"): "+EMA", ("adm", "swa"): "+SWA",
              ("ip", "raw"): "+IP", ("ip", "ema"): "+IP+EMA", ("ip", "swa"): "+IP+SWA",
              ("sam", "raw"): "+SAM", ("sam", "ema"): "+SAM+EMA", ("sam", "swa"): "+SAM+SWA"}
#: row label -> (variant, weights) of every paper row, and -> its variant
ROW_OF = {label: row for row, label in PAPER_ROWS.items()}
VARIANT_OF = {label: variant for label, (variant, _) in ROW_OF.items()}
#: the rows of the flatness comparison "explicit (SAM) vs indirect (EMA, SWA, IP) flatness"
FLATNESS_ROWS = ("ADM", "+EMA", "+SWA", "+IP", "+SAM")
#: the rows the IP claims compare: ADM and +IP with each weights kind
IP_ROWS = tuple(PAPER_ROWS[(v, w)] for w in WEIGHT_KINDS for v in ("adm", "ip"))

#: the paper's FID feature extractor (params.yaml ``fid.extractor``): its FIDs are comparable with the paper's
PAPER_EXTRACTOR = "inception"
#: the T' of the paper's Table 1 columns, and its data sets (params.yaml ``paper_dataset`` names one)
PAPER_RESPACINGS = (20, 100)
PAPER_DATASETS = ("CIFAR-10", "LSUN Tower", "FFHQ")

#: the outcome of a claim (flatlib.measure.stats decides the four; "not evaluated": nothing to decide on)
OUTCOMES = ("reproduced", "contradicted", "weaker than the paper", "inconclusive")
NOT_EVALUATED = "not evaluated"
VERDICTS = OUTCOMES + (NOT_EVALUATED,)
#: statsmodels ``multipletests`` methods offered for the family of claims (params.yaml ``verdict.multiplicity``)
MULTIPLICITY = ("holm", "fdr_bh")


def label(variant: str, weights: str) -> str:
    """The paper's name of a row ("+SAM+EMA"), or ``variant/weights`` for a row the paper does not have."""
    return PAPER_ROWS.get((variant, weights), f"{variant}/{weights}")


def measured_respacings(params) -> tuple[int, ...]:
    """The T' every Table 1 row is sampled at: ``sample.respacings``."""
    return tuple(params.sample.respacings)


#: what a run's held-out loss did over its last window (flatlib.training.trainer.plateau, issue 21): only PLATEAUED
#: is a plateau; no run is called "converged"
PLATEAUED, DESCENDING, RISING, NOISY, NOT_LEARNED, TOO_FEW = (
    "plateaued", "still descending", "rising", "not shown flat (noisy)", "not learned", "too few points")

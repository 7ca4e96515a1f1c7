"""flatlib.measure.stats: intervals over training seeds and the three-valued verdict rule on constructed inputs."""
import math

import numpy as np
import pytest

from flatlib.config import ConfigError
from flatlib.measure.stats import estimate, replicates
from flatlib.schema import VerdictConfig


def test_interval_is_students_t_over_seeds():
    est = estimate([1.0, 2.0, 3.0])  # mean 2, sd 1, n 3: t_{0.975, 2} = 4.302653
    assert (est.mean, est.n, est.unit) == (2.0, 3, "seeds")
    assert est.half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert estimate([1.0, 2.0, 3.0], confidence=0.9).half_width == pytest.approx(2.919986 / math.sqrt(3), rel=1e-6)


def test_sample_sets_are_averaged_within_a_seed():
    values = np.array([[1.0, 3.0], [2.0, 4.0], [3.0, 5.0]])  # 3 seeds x 2 sample sets
    units, unit = replicates(values)
    assert unit == "seeds" and units.tolist() == [2.0, 3.0, 4.0]
    one_seed = estimate([[1.0, 2.0, 3.0]])  # one seed: the interval covers the sample sets only
    assert (one_seed.unit, one_seed.n, one_seed.mean) == ("sample sets", 3, 2.0)
    single = estimate([7.0])
    assert single.n == 1 and math.isnan(single.half_width)


def test_confidence_is_checked():
    with pytest.raises(ConfigError, match=r"VerdictConfig.confidence must be in \[0.5, 1\), got 1.0"):
        VerdictConfig(confidence=1.0, multiplicity="holm", barely=0.2)
    with pytest.raises(ConfigError, match="verdict.multiplicity"):
        VerdictConfig(multiplicity="bonferroni", barely=0.2)

"""Shared helpers of the listening tests (as fixtures: the tests import no sibling modules)."""

import numpy as np
import pytest


@pytest.fixture
def model_values():
    """``f(model, names, point)``: the named model variables at a point of the value variables."""

    def values(model, names, point):
        fn = model.compile_fn(model.replace_rvs_by_values([model[n] for n in names]),
                              inputs=model.value_vars, on_unused_input="ignore",
                              mode="FAST_COMPILE")
        return dict(zip(names, fn(point), strict=True))

    return values


@pytest.fixture
def random_point():
    """``f(model, seed)``: the model's initial point, jittered by N(0, 0.3) per element."""

    def point(model, seed):
        rng = np.random.default_rng(seed)
        return {k: v + rng.normal(scale=0.3, size=np.shape(v))
                for k, v in model.initial_point().items()}

    return point

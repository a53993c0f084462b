import pytest

from models.priors import Prior


def test_round_trip_and_equality():
    p = Prior("Gamma", alpha=2, beta=[1.0, 2.0])
    assert Prior.from_dict(p.to_dict()) == p
    assert p != Prior("Gamma", alpha=2, beta=[1.0, 3.0])
    assert repr(p) == 'Prior("Gamma", alpha=2, beta=[1.0, 2.0])'


def test_unknown_distribution():
    with pytest.raises(ValueError, match="must name a PyMC distribution .* Got 'Gama'"):
        Prior("Gama", alpha=1)


def test_non_numeric_parameter():
    with pytest.raises(ValueError, match="parameter 'sigma' of Prior\\('HalfNormal'\\) must be numeric"):
        Prior("HalfNormal", sigma="wide")


def test_immutable():
    p = Prior("Normal", mu=0, sigma=1)
    with pytest.raises(AttributeError):
        p.distribution = "Gamma"

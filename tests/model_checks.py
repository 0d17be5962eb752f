"""Whole-network gradient checks for the test suite (not a test module itself).

The check lives in the library (``npmobilenet.gradcheck_network``, also behind ``npmobilenet
gradcheck MODEL``); this wraps it the way the tests use it: fail with an AssertionError naming
every tensor that was never verified.
"""
from npmobilenet.gradcheck_network import check_network, perturb  # noqa: F401  (perturb: re-exported)


def directional_check(model, draw_input, **kwargs):
    """(first report, {tensor: h it passed at}); AssertionError unless every tensor passed."""
    result = check_network(model, draw_input, **kwargs)
    result.assert_passed()
    return result.first, result.verified

"""Logarithm and exponential for the package's compiled loops, written so that they vectorise.

``np.log`` and ``np.exp`` in numba code are calls into the C math library, one value
at a time (the pip llvmlite has no SVML, the vector math library that would replace
them): a loop that calls them is vectorised around the calls, which take the values
out of the vector registers and back. :func:`vlog` and :func:`vexp` are the same
functions in plain arithmetic and bit operations, without calls and without branches
that LLVM cannot turn into selects, so the loops they are inlined into vectorise
whole. On a CPU with full-width AVX2 that is several times faster; on the 2-core AMD
EPYC (Zen 1, AVX2 split in two 128-bit halves) of the development machine a value
costs about 6 ns instead of 7 to 8 ns, and a loop of the Laplace kernel that also
divides gains more (no values spilled around the calls).

Both are accurate to about one unit in the last place (relative error below 3e-16
in the tests) over the whole double range, subnormal numbers included, and treat
0, infinity and NaN as ``np.log`` and ``np.exp`` do. Their only fast-math flag is
fused multiply-adds, set explicitly: a numba function without flags inherits its
caller's, and reassociation would undo the argument reduction, which relies on the
exact order of its operations.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

__all__ = ["vexp", "vlog"]


@intrinsic
def _bits(typingctx: object, x: types.Type) -> object:
    """Return the bits of a float64 as an int64 (a reinterpretation, not a conversion)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):  # pragma: no cover - compiled
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _from_bits(typingctx: object, i: types.Type) -> object:
    """Return the float64 whose bits are the int64 ``i`` (a reinterpretation, no conversion)."""
    if i != types.int64:
        return None

    def codegen(context, builder, signature, args):  # pragma: no cover - compiled
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


#: ln 2 split into a head with 32 significant bits (k * _LN2_HI is exact for
#: |k| < 2**21) and the rest (Cody and Waite's argument reduction, fdlibm's constants).
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
#: 1.5 * 2**52: adding it rounds a float of magnitude below 2**51 to an integer, which
#: then sits in the low bits of the sum (round to nearest without a float-to-int
#: conversion, which AVX2 cannot vectorise).
_SHIFT = 6755399441055744.0
#: Coefficients of fdlibm's log (e_log.c): a minimax fit of
#: (log((1 + s) / (1 - s)) - 2 s) / s in z = s**2 for |s| <= 0.1716.
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_SQRT_HALF_BITS = 0x3FE6A09E667F3BCD  # sqrt(1/2)
_EXPONENT = -(1 << 52)  # 0xFFF0000000000000: sign and exponent field
_TINY = 2.2250738585072014e-308  # the smallest normal double
_TWO54 = 18014398509481984.0
#: Fast-math flags of these functions: fused multiply-adds only. Set explicitly: a numba
#: function without them inherits its caller's flags, and reassociation would undo the
#: argument reduction (``(a + _SHIFT) - _SHIFT`` is ``a`` in real numbers).
_STRICT = {"contract"}


@numba.njit(cache=True, error_model="numpy", fastmath=_STRICT)
def vexp(x: float) -> float:  # pragma: no cover - compiled
    """``exp(x)``, vectorisable.

    ``x = k ln 2 + r`` with integer ``k`` and ``|r| <= ln 2 / 2``; ``exp(r)`` by its
    Taylor polynomial of degree 13 (truncation error below 5e-18 relative) and
    ``2**k`` built from its bits, in two factors so that results that are subnormal
    or overflow are rounded once, as by ``np.exp``.
    """
    xc = min(max(x, -746.0), 710.0)  # beyond: 0 and infinity; keeps k in range
    kf = xc * _INV_LN2 + _SHIFT
    k = _bits(kf) - _bits(_SHIFT)
    kf -= _SHIFT
    r = (xc - kf * _LN2_HI) - kf * _LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = 1.0 + (r + r * r * p)
    k1 = k >> 1
    y = p * _from_bits((k1 + 1023) << 52) * _from_bits((k - k1 + 1023) << 52)
    return y if x == x else x  # NaN stays NaN


@numba.njit(cache=True, error_model="numpy", fastmath=_STRICT)
def vlog(x: float) -> float:  # pragma: no cover - compiled
    """``log(x)``, vectorisable.

    ``x = 2**k m`` with ``m`` in ``[sqrt(1/2), sqrt(2))``, both read from the bits of
    ``x`` by integer operations (subnormal ``x`` are scaled by ``2**54`` first);
    ``log(m) = 2 atanh(s)`` with ``s = (m - 1) / (m + 1)``, by fdlibm's minimax version
    of the atanh series and its way of adding the terms (error below one unit in the
    last place). ``log(0) = -inf``, ``log(inf) = inf``, NaN for negative ``x`` and NaN.
    """
    tiny = x < _TINY
    bits = _bits(x * _TWO54 if tiny else x)
    # bits - bits(sqrt(1/2)) has k in its exponent field; shifted up by 1024 so that it
    # stays non-negative for every positive x (a logical shift: AVX2 has no 64-bit
    # arithmetic one)
    ix = bits - _SQRT_HALF_BITS
    k = ((ix + (1024 << 52)) >> 52) & 0xFFF
    m = _from_bits(bits - (ix & _EXPONENT))  # x / 2**k, in [sqrt(1/2), sqrt(2))
    kf = _from_bits(_bits(_SHIFT) + k) - (_SHIFT + 1024.0) - (54.0 if tiny else 0.0)
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    hfsq = 0.5 * f * f
    y = kf * _LN2_HI - ((hfsq - (s * (hfsq + (t2 + t1)) + kf * _LN2_LO)) - f)
    y = y if x < np.inf else x  # inf and NaN
    return y if x > 0.0 else (-np.inf if x == 0.0 else np.nan)

"""Validation of integer arrays, shared by the chip and the inference engine."""
import numpy as np

from .errors import ChipValueError
from .geometry import ACT_MAX


def as_int_array(a, what, lo, hi, *, error=ChipValueError, note=""):
    """Return ``a`` as an array after checking it holds integers in ``lo..hi``.

    Integer-valued floats are accepted; NaN, inf, non-integer floats, booleans
    and objects are refused with ``error`` (a ValueError subclass) whose
    one-line message names ``what``. The array is not copied or converted.

    Parameters
    ----------
    a : array-like
    what : str
        Name used in messages ("activations", "weights", ...).
    lo, hi : int
        Inclusive legal range.
    error : type, default=ChipValueError
    note : str, default=""
        Appended in parentheses to the range message, e.g. "5-bit inputs".
    """
    arr = np.asarray(a)
    if arr.dtype == object:
        raise error(f"{what} must be a numeric array of integers, got objects")
    if arr.dtype.kind not in "biuf":
        raise error(f"{what} must hold integers (a numeric array), got dtype {arr.dtype}")
    if arr.dtype.kind == "b":
        raise error(f"{what} must hold integers, got booleans")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise error(f"{what} contains NaN or inf")
        if not np.all(arr == np.rint(arr)):
            raise error(f"{what} must hold integers, got non-integer values")
    if arr.size:
        amin, amax = arr.min(), arr.max()
        if amin < lo or amax > hi:
            bad = amin if amin < lo else amax
            suffix = f" ({note})" if note else ""
            raise error(f"{what} value {bad:g} outside {lo}..{hi}{suffix}")
    return arr


def activation_range_error(x):
    """The one-line error for integer activations ``x`` (non-empty) that hold a value outside 0..31."""
    lo, hi = x.min(), x.max()
    bad = lo if lo < 0 else hi
    return ChipValueError(f"activations value {bad} outside 0..{ACT_MAX} (5-bit inputs)")

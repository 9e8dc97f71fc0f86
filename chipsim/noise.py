"""Trial-to-trial noise generators.

Two methods, chosen by the preset's ``noise.method``:

``"gaussian"``
    numpy's exact standard normal (ziggurat), float32.
``"fast"``
    inverse-transform sampling through a 65 536-entry table of standard normal
    quantiles, indexed by fresh 16-bit random integers. Every sample is an
    independent draw (no pool is reused); the distribution is the normal one
    quantized to 2**-16 in probability and truncated at +-4.17 sigma
    (a true normal exceeds that with probability 3e-5).
"""
import numpy as np
from scipy.special import ndtri

_TABLE = ndtri((np.arange(65536) + 0.5) / 65536).astype(np.float32)
_TABLE -= _TABLE.mean()
_TABLE /= np.sqrt(np.mean(_TABLE.astype(np.float64) ** 2))


class NoiseSource:
    """Independent standard-normal-like samples for every call.

    Parameters
    ----------
    rng : numpy.random.Generator
        The trial-to-trial stream; never shared with fixed-pattern draws.
    method : {"fast", "gaussian"}
    """

    def __init__(self, rng, method):
        self.rng = rng
        self.method = method

    def standard(self, shape):
        """A float32 array of independent unit-variance samples of ``shape``."""
        n = int(np.prod(shape))
        if self.method == "gaussian":
            return self.rng.standard_normal(n, dtype=np.float32).reshape(shape)
        words = (n + 3) // 4
        idx = self.rng.bit_generator.random_raw(words).view(np.uint16)[:n]
        return np.take(_TABLE, idx).reshape(shape)

    def add_scaled(self, y, std):
        """Add ``std`` (scalar or per-column array) times fresh noise to ``y`` in place."""
        z = self.standard(y.shape)
        std = np.asarray(std, dtype=np.float32)
        if std.ndim == 0 or np.all(std == std.flat[0]):
            s = float(std.flat[0]) if std.size else 0.0
            if s == 0.0:
                return y
            if s != 1.0:
                z *= np.float32(s)
        else:
            z *= std
        y += z
        return y

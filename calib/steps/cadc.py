"""CADC: per-quadrant ramp offset and slope, then per-channel digital offsets.

All three observe raw reads of the global reference DAC (``read_cadc_reference``):

* ``cadc_v_ramp_offset`` (quadrant): median read of the quadrant's channels at
  the low end of the reference range -> ``Target.cadc_read_range[0]`` (20);
* ``cadc_i_ramp_slope`` (quadrant): median difference of the reads at the two
  ends of the range -> the read span (200);
* ``cadc_channel_offset`` (channel, digital, slope exactly 1 LSB per code):
  mean read of each channel at the voltage that should read
  ``Target.baseline_read`` -> that read, so all channels read alike.
"""
import numpy as np

from bss2_calib.chipsim import N_QUADRANTS, NEURON_QUADRANT

from ..problem import KnobProblem, solve
from ..probes import group_median, reference_code

VALID_READS = (2.0, 253.0)  #: reads outside are clipped by the 8-bit ADC


def _valid(v):
    return (v > VALID_READS[0]) & (v < VALID_READS[1])


class CadcRampOffsetProblem(KnobProblem):
    """Per-quadrant CADC ramp start: the low end of the reference range reads the low target.

    Parameters
    ----------
    chip : chipsim.Chip
    target : Target
        Uses ``cadc_reference_v[0]`` (V) and ``cadc_read_range[0]`` (LSB).
    reads : int, default=16
        Raw reads averaged per channel and measurement.
    instances : array-like of int or None, default=None
        Quadrants to calibrate (None: all four).
    """

    name = "cadc_ramp_offset"
    knob = "cadc_v_ramp_offset"
    quantity = "median read at the low reference voltage"
    unit = "LSB"
    increasing = False
    nominal_slope = 0.23  # LSB per code at 400 LSB/V
    characterisation_codes = (250, 350, 450)

    def __init__(self, chip, target, reads=16, instances=None):
        super().__init__(chip, instances, target=target.cadc_read_range[0], tolerance=1.0)
        self.code_lo = reference_code(target.cadc_reference_v[0])
        self.reads = reads

    def measure(self):
        r = self.chip.read_cadc_reference(self.code_lo, n=self.reads).astype(np.float64).mean(axis=0)
        med, err = group_median(r, NEURON_QUADRANT, N_QUADRANTS)
        return self._result(med, err, _valid(med))


class CadcRampSlopeProblem(KnobProblem):
    """Per-quadrant CADC ramp slope: the reference range spans the target read range.

    The span is measured between the low end of the reference range and
    three quarters of it, and scaled to the full range: the reads stay clear
    of the ADC's upper rail even for steep quadrants.

    Parameters
    ----------
    chip : chipsim.Chip
    target : Target
        Uses both ends of ``cadc_reference_v`` and ``cadc_read_range``.
    reads : int, default=16
    instances : array-like of int or None, default=None
    """

    name = "cadc_ramp_slope"
    knob = "cadc_i_ramp_slope"
    quantity = "median read span over the reference range"
    unit = "LSB"
    increasing = True
    nominal_slope = 0.38  # LSB of span per code
    characterisation_codes = (320, 400, 480)
    fraction = 0.75

    def __init__(self, chip, target, reads=16, instances=None):
        lo, hi = target.cadc_read_range
        super().__init__(chip, instances, target=hi - lo, tolerance=1.0)
        v0, v1 = target.cadc_reference_v
        self.codes_ref = (reference_code(v0), reference_code(v0 + self.fraction * (v1 - v0)))
        self.scale = (v1 - v0) / (self.fraction * (v1 - v0))
        self.reads = reads

    def measure(self):
        # read the upper point first: the low end stays selected for the offset problem
        r_hi = self.chip.read_cadc_reference(self.codes_ref[1], n=self.reads).astype(np.float64).mean(axis=0)
        r_lo = self.chip.read_cadc_reference(self.codes_ref[0], n=self.reads).astype(np.float64).mean(axis=0)
        clipped = ~_valid(r_hi) | ~_valid(r_lo)
        span = np.where(clipped, np.nan, (r_hi - r_lo) * self.scale)
        med, err = group_median(span, NEURON_QUADRANT, N_QUADRANTS)
        share, _ = group_median((~clipped).astype(np.float64), NEURON_QUADRANT, N_QUADRANTS)
        return self._result(med, err, share > 0.5)


class CadcChannelOffsetProblem(KnobProblem):
    """Per-channel digital offset: every channel reads the target at the mid reference voltage.

    Parameters
    ----------
    chip : chipsim.Chip
    target : Target
        The channel should read ``baseline_read`` at ``cadc_read_mid_v``.
    reads : int, default=16
    instances : array-like of int or None, default=None
        Knob instances to calibrate (None: all).
    """

    name = "cadc_channel_offset"
    knob = "cadc_channel_offset"
    quantity = "read at the mid reference voltage"
    unit = "LSB"
    increasing = True
    nominal_slope = 1.0  # digital: exactly one LSB per code
    characterisation_codes = (-16, 0, 16)

    def __init__(self, chip, target, reads=16, instances=None):
        super().__init__(chip, instances, target=target.baseline_read, tolerance=0.8)
        self.code_mid = reference_code(target.cadc_read_mid_v)
        self.reads = reads

    def measure(self):
        r = self.chip.read_cadc_reference(self.code_mid, n=self.reads).astype(np.float64)
        v = r.mean(axis=0)
        std = r.std(axis=0, ddof=1) / np.sqrt(self.reads) if self.reads > 1 else 0.5
        return self._result(v, std, _valid(v))


def run(session):
    """Ramp offset, ramp slope (per quadrant), then channel offsets (zeroed first)."""
    chip, target, reads = session.chip, session.target, session.options.knobs.reads
    chip.set_knob("cadc_channel_offset", 0)
    results = [solve(CadcRampOffsetProblem(chip, target, reads), session.algorithm()),
               solve(CadcRampSlopeProblem(chip, target, reads), session.algorithm())]
    # the slope moves the low read a little when the ramp start is off: re-centre once
    offset_again = CadcRampOffsetProblem(chip, target, reads)
    offset_again.name = "cadc_ramp_offset_refine"
    results.append(solve(offset_again, session.algorithm("linear")))
    results.append(solve(CadcChannelOffsetProblem(chip, target, reads), session.algorithm("linear")))
    return results

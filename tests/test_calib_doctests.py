"""Run the docstring examples of the calibration package (testpaths only collects tests/)."""
import doctest
import importlib

import pytest

MODULES = ["bss2_calib.calib.fits.monotone", "bss2_calib.calib.result"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module(name)
    res = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0 and res.failed == 0

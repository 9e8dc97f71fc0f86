"""Applications built on the engine: the paper's MNIST network and activity recognition (HAR).

Each application is an :class:`~infer.apps.common.App`: an architecture of the chip's shape, an
input encoding, its test data and its shipped models. They share one forward pass, evaluation
and file format (:mod:`infer.apps.common`), one quantization (:mod:`infer.apps.quantize`) and
one float and hardware-in-the-loop training (:mod:`infer.apps.training`, needs torch).

>>> from bss2_calib.infer import apps
>>> apps.names()
('har', 'mnist')
>>> apps.get("har").arch.input_shape
(12, 128)
"""
import importlib

from .common import App, Architecture, FloatWeights, IntegerModel, Layer, MockEngine, ModelFileError, Scores

__all__ = ["App", "Architecture", "FloatWeights", "IntegerModel", "Layer", "MockEngine", "ModelFileError",
           "Scores", "get", "names"]

_MODULES = {"har": "har", "mnist": "mnist"}


def names():
    """Names of the applications, sorted."""
    return tuple(sorted(_MODULES))


def get(name) -> App:
    """The application called ``name`` (ValueError naming the known ones otherwise)."""
    if name not in _MODULES:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(names())}")
    return importlib.import_module(f"{__name__}.{_MODULES[name]}").APP

"""infer: run networks on simulated BrainScaleS-2 chips, with calibration corrections applied.

The numpy path (engine, functional API, layers) needs no torch; :mod:`infer.torch`
holds the PyTorch layers (extra ``[torch]``) and is imported only on request.
"""
from . import functional, layers, routing
from .corrections import CorrectionOptions, Corrections
from .engine import Engine, Measurement
from .errors import (ArtifactMismatchWarning, CorrectionTableError, IncompatibleArtifact, InferError,
                     InferValueError)
from .functional import argmax, conv1d, conv2d, converting_relu, matmul, relu
from .layers import Conv1d, Conv2d, ConvertingReLU, Flatten, Linear, ReLU, Sequential
from .routing import FaultReport

__all__ = [
    "ArtifactMismatchWarning", "Conv1d", "Conv2d", "ConvertingReLU", "CorrectionOptions", "CorrectionTableError",
    "Corrections", "Engine", "FaultReport", "Flatten", "IncompatibleArtifact", "InferError", "InferValueError",
    "Linear", "Measurement", "ReLU", "Sequential", "argmax", "conv1d", "conv2d", "converting_relu", "functional",
    "layers", "matmul", "relu", "routing",
]

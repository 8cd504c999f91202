"""Deployment of a trained run (cookbook chapter 10): export, int8 quantization and profiling.

Everything starts from a run directory, through :func:`deeprecipes.load_run` and the model's export view
(:meth:`deeprecipes.models.base.Model.export_module`); the run's dataset is read only for real inputs to check
exports on, to calibrate int8 activations with and to score accuracy on (its test and validation splits).

- :func:`export_run`: ONNX (dynamo exporter, dynamic batch axis), TorchScript or ExecuTorch, checked against
  PyTorch (:mod:`.export`);
- :func:`quantize_run`: post-training int8 through ``onnxruntime.quantization``, size, accuracy and latency before
  and after (:mod:`.quantize`);
- :func:`profile_run`: latency, per-operator times and FLOPs per layer of PyTorch, ONNX Runtime and int8 side by
  side (:mod:`.profile`).

The heavy packages (onnx, onnxscript, onnxruntime, executorch: ``pip install 'deeprecipes[deploy]'``) are imported
only when a function needs them.
"""

from .export import FORMATS, TOLERANCE, ExportResult, export_run
from .profile import ProfileResult, profile_run
from .quantize import QuantizeResult, quantize_run
from .target import DeployError, load_target

__all__ = [
    "export_run",
    "quantize_run",
    "profile_run",
    "ExportResult",
    "QuantizeResult",
    "ProfileResult",
    "FORMATS",
    "TOLERANCE",
    "DeployError",
    "load_target",
]

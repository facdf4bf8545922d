"""The torch-free serving engine: a model bundle on ONNX Runtime, with task-named calls.

`Engine(bundle).generate / inpaint / continue_ / extend_left / vary` -> `Result`; see
pipeline.py for the conventions (shapes, units, guidance) and regions.py for the splicing rules.
Importing this package loads numpy only; onnxruntime is imported when an Engine is created.
"""

from jenbridge.bundle import BundleError
from jenbridge.engine.pipeline import Cancelled, Engine, GridLock, Result
from jenbridge.engine.providers import choose_providers, usable_providers

__all__ = ["BundleError", "Cancelled", "Engine", "GridLock", "Result", "choose_providers",
           "usable_providers"]

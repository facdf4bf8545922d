"""jenbridge: a local JEN-1 music engine for producers.

Importing the package is cheap: torch and onnxruntime are imported only by the modules that
need them (training and serving respectively).
"""

__version__ = "0.1.0"

"""Musical analysis and control: tempo/key estimation and locking generated audio to a DAW grid.

Importing this package is cheap: librosa, soxr and pedalboard are imported inside the functions.
"""

from jenbridge.music.estimate import KeyEstimate, TempoEstimate, estimate_key, estimate_tempo
from jenbridge.music.gridlock import GridLockResult, grid_lock

__all__ = ["GridLockResult", "KeyEstimate", "TempoEstimate", "estimate_key", "estimate_tempo",
           "grid_lock"]

"""Single-producer/single-consumer float32 ring buffer for a PortAudio callback.

The buffer holds a stretch of one *timeline*: slot ``p % capacity`` stores absolute frame ``p``.
Two monotonic integer positions describe it:

- ``write_pos`` (owned by the producer, e.g. the player's feeder thread): frames ``< write_pos``
  have been written;
- ``read_pos`` (owned by the consumer, the audio callback): frames ``< read_pos`` have been played.

Each side only *reads* the other's position, and a Python attribute store of an ``int`` is atomic
under the GIL, so no lock is needed anywhere. The producer publishes ``write_pos`` only after the
frames are in place; the consumer publishes ``read_pos`` only after it has copied them out.

On underrun the consumer still advances ``read_pos`` by the whole block (the audio clock keeps
running): the producer then sees ``write_pos < read_pos`` and skips forward, dropping the frames
that arrived too late, so slot and absolute frame stay in step. ``read_into`` allocates no array;
it only creates slice views of preallocated memory.
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """Preallocated ``(capacity, channels)`` float32 ring indexed by absolute frame numbers."""

    def __init__(self, capacity: int, channels: int) -> None:
        if capacity <= 0 or channels <= 0:
            raise ValueError(f"capacity and channels must be positive, got {capacity}, {channels}")
        self.capacity = int(capacity)
        self.channels = int(channels)
        self._buf = np.zeros((self.capacity, self.channels), dtype=np.float32)
        self.write_pos = 0
        self.read_pos = 0

    # ---- producer side -------------------------------------------------------------------------
    def writable_from(self) -> int:
        """First absolute frame the producer should write next (skips frames already too late)."""
        return max(self.write_pos, self.read_pos)

    def free(self) -> int:
        """Frames the producer may write now without overwriting unread frames."""
        return self.read_pos + self.capacity - self.writable_from()

    def write(self, frames: np.ndarray) -> int:
        """Append ``frames`` (N, channels) float32 at ``writable_from()``; return frames written.

        Writes at most ``free()`` frames (the rest is not written: call again later).
        """
        start = self.writable_from()
        n = min(len(frames), self.read_pos + self.capacity - start)
        if n <= 0:
            return 0
        i = start % self.capacity
        first = min(n, self.capacity - i)
        self._buf[i : i + first] = frames[:first]
        if n > first:
            self._buf[: n - first] = frames[first:n]
        self.write_pos = start + n
        return n

    # ---- consumer side (audio callback) --------------------------------------------------------
    def available(self) -> int:
        """Frames ready to read (0 when the consumer has run past the producer)."""
        return max(0, self.write_pos - self.read_pos)

    def read_into(self, out: np.ndarray) -> int:
        """Copy the next ``len(out)`` frames into ``out`` (frames, channels), zero-filling what is
        missing, and advance ``read_pos`` by ``len(out)``. Return the frames that were available.
        """
        n = len(out)
        r = self.read_pos
        k = min(n, max(0, self.write_pos - r))
        if k:
            i = r % self.capacity
            first = min(k, self.capacity - i)
            out[:first] = self._buf[i : i + first]
            if k > first:
                out[first:k] = self._buf[: k - first]
        if k < n:
            out[k:] = 0.0
        self.read_pos = r + n
        return k

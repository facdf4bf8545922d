"""Real-time playback of generated audio through sounddevice (DESIGN.md §4).

- :mod:`.devices`: output devices by name; "audio unavailable: <reason>" without PortAudio;
- :mod:`.ringbuffer`: the lock-free single-producer/single-consumer buffer the callback reads;
- :mod:`.player`: sample-accurate clip scheduling on one output stream;
- :mod:`.looper`: a loop that keeps evolving, iteration after iteration, in tempo.

Nothing here imports sounddevice at import time.
"""

"""The OSC daemon: a DAW sends a region and a prompt over OSC/UDP, the daemon answers with a WAV.

Files, one component each:
  config.py    the typed, strict YAML config (`DaemonConfig`) and the allowed-folder checks
  protocol.py  the address table's argument convention: key/value pairs -> a validated `Request`
  outputs.py   the atomic Broadcast-WAV writer (bext TimeReference, LIST/INFO metadata)
  jobs.py      the bounded job queue and the worker thread that drives the engine
  server.py    the UDP receive loop, the address table and the replies

Importing this package is cheap (no onnxruntime, never torch): the engine is created by
`jenbridge serve` (jenbridge/commands/serve.py). The protocol is documented in docs/osc.md.
"""

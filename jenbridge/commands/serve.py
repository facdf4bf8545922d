"""`jenbridge serve`: the OSC daemon a DAW talks to (docs/osc.md).

  jenbridge serve --model BUNDLE --allow ~/Music --output-dir ~/Music/jenbridge
  jenbridge serve --config daemon.yaml --port 9000 --reply-port 9001

Command-line options override the YAML config (jenbridge/daemon/config.py). The daemon loads
the bundle into warm ONNX Runtime sessions, logs what it loaded, on which providers and where
it listens, then serves until SIGINT or SIGTERM: it stops receiving, cancels the running job
within one sampler step, answers every waiting job ("shutting_down"), leaves no temporary file
behind, and exits 0. Torch is never imported.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="daemon YAML config (see docs/osc.md)")
    p.add_argument("--model", type=Path, metavar="BUNDLE",
                   help="model bundle folder (default: jenbridge/assets/default)")
    p.add_argument("--host", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="UDP port to listen on (default 9000)")
    p.add_argument("--reply-port", type=int, metavar="N",
                   help="send replies to this port on the sender's host (default: the "
                        "sender's own port, unless a request declares reply_port)")
    p.add_argument("--output-dir", type=Path, metavar="DIR",
                   help="folder for the WAV files (default ~/jenbridge-out)")
    p.add_argument("--allow", type=Path, nargs="+", metavar="DIR",
                   help="folders requests may read from and write to (the output folder is "
                        "always allowed)")
    p.add_argument("--queue-size", type=int, help="jobs that may wait (default 8)")
    p.add_argument("--wav-format", choices=("float32", "pcm24"),
                   help="output WAV sample format (default float32)")
    p.add_argument("--providers", help="execution providers to try, comma-separated "
                   "(cuda, coreml, cpu; default: the best that works here)")
    p.add_argument("--threads", type=int, help="CPU threads (default: all available, <= 8)")
    p.add_argument("--audio-device", metavar="NAME",
                   help="output device name or unique substring (default: PortAudio's default)")
    p.add_argument("--audio-hostapi", metavar="API",
                   help="look for the device in this host API only (JACK, ALSA, CoreAudio, ...)")
    p.add_argument("--play-results", action="store_true", default=None,
                   help="play every finished job's audio on the output device")
    p.add_argument("--presets", type=Path, nargs="+", metavar="DIR",
                   help="more preset folders (after the shipped presets and "
                        "~/.config/jenbridge/presets; a later folder's preset wins)")
    p.add_argument("--link", action="store_true", default=None,
                   help="join an Ableton Link session: live loops follow its tempo and bar "
                        "lines (needs the link extra: pip install 'jenbridge[link]')")
    p.add_argument("-v", "--verbose", action="store_true", help="log every request")


def run(args: argparse.Namespace) -> int:
    import logging
    import signal

    from jenbridge.daemon.config import bundle_path, load_daemon_config

    overrides = dict(model=args.model, host=args.host, port=args.port,
                     reply_port=args.reply_port, output_dir=args.output_dir,
                     allow=tuple(args.allow) if args.allow else None,
                     queue_size=args.queue_size, wav_format=args.wav_format,
                     providers=args.providers, threads=args.threads,
                     audio_device=args.audio_device, audio_hostapi=args.audio_hostapi,
                     play_results=args.play_results,
                     presets_dirs=tuple(args.presets) if args.presets else None,
                     link=args.link)
    config = load_daemon_config(args.config, overrides)
    bundle = bundle_path(config)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="jenbridge serve: %(message)s")
    log = logging.getLogger("jenbridge.daemon")

    from jenbridge.daemon.server import Server
    from jenbridge.engine import Engine

    engine = Engine(bundle, providers=config.providers, threads=config.threads)
    m = engine.manifest
    log.info("loaded model %r from %s (%d Hz, %d ch) on %s", m.name, bundle, m.sample_rate,
             m.channels, ", ".join(engine.providers))
    server = Server(engine, config, bundle)
    log.info("output folder %s; allowed folders: %s", server.output_dir,
             ", ".join(str(r) for r in server.allowed.roots))
    good, bad = server.presets.check_all()
    log.info("presets: %d (%s) from %s", len(good), ", ".join(p.name for p in good) or "none",
             ", ".join(str(f) for f in server.presets.folders if f.is_dir()) or "no folder")
    for problem in bad:
        log.warning("preset skipped: %s", problem)
    host, port = server.address
    log.info("listening on udp %s:%d (replies: %s)", host, port,
             f"port {config.reply_port}" if config.reply_port else "to the sender")

    def stop(signum: int, _frame: object) -> None:
        server.request_stop()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()
    log.info("stopped")
    return 0

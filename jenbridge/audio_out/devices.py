"""Output devices by name, and a clean "audio unavailable" answer when PortAudio can't play.

``sounddevice`` is imported lazily: importing it raises ``OSError`` when the PortAudio library is
missing, and the daemon must still start (file output only) with one clear log line, e.g.::

    reason = audio_unavailable_reason()
    if reason:
        log.warning("audio unavailable: %s (writing files only)", reason)
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType


class AudioUnavailable(RuntimeError):
    """PortAudio cannot be loaded or offers no output device; the message says why."""


@dataclass(frozen=True)
class OutputDevice:
    """One PortAudio output device: ``index`` is PortAudio's, ``default_samplerate`` in Hz."""

    index: int
    name: str
    hostapi: str
    channels: int
    default_samplerate: float

    def describe(self) -> str:
        return (f"{self.name} [{self.hostapi}, {self.channels} ch, "
                f"{self.default_samplerate:g} Hz]")


def load_sounddevice() -> ModuleType:
    """Import ``sounddevice``; raise :class:`AudioUnavailable` if PortAudio can't be loaded."""
    try:
        import sounddevice
    except (ImportError, OSError) as e:
        raise AudioUnavailable(f"PortAudio not loadable ({e})") from e
    return sounddevice


def rescan() -> None:
    """Re-initialise PortAudio so devices (or a JACK server) that appeared since import are seen."""
    sd = load_sounddevice()
    sd._terminate()
    sd._initialize()


def list_output_devices(hostapi: str | None = None) -> list[OutputDevice]:
    """Devices with at least one output channel, optionally only those whose host API name
    contains ``hostapi`` (case-insensitive, e.g. ``"JACK"``). Raises :class:`AudioUnavailable`.
    """
    sd = load_sounddevice()
    try:
        apis = [a["name"] for a in sd.query_hostapis()]
        devices = sd.query_devices()
    except sd.PortAudioError as e:
        raise AudioUnavailable(f"PortAudio error ({e})") from e
    out = []
    for i, d in enumerate(devices):
        api = apis[d["hostapi"]]
        if d["max_output_channels"] <= 0:
            continue
        if hostapi is not None and hostapi.lower() not in api.lower():
            continue
        out.append(OutputDevice(i, d["name"], api, int(d["max_output_channels"]),
                                float(d["default_samplerate"])))
    return out


def audio_unavailable_reason() -> str | None:
    """``None`` when at least one output device exists, else a one-line reason. Never raises."""
    try:
        devices = list_output_devices()
    except AudioUnavailable as e:
        return str(e)
    if devices:
        return None
    sd = load_sounddevice()
    apis = ", ".join(a["name"] for a in sd.query_hostapis()) or "none"
    return f"no output device (PortAudio host APIs: {apis})"


def describe_audio() -> str:
    """One log line: ``"audio unavailable: <reason>"`` or ``"audio: <n> output devices: ..."``."""
    reason = audio_unavailable_reason()
    if reason is not None:
        return f"audio unavailable: {reason}"
    devices = list_output_devices()
    return f"audio: {len(devices)} output devices: " + "; ".join(d.describe() for d in devices)


def find_output_device(name: str, hostapi: str | None = None) -> OutputDevice:
    """The output device called ``name``: an exact name first, else a unique case-insensitive
    substring. Raises ``ValueError`` listing the available names when none or several match.
    """
    devices = list_output_devices(hostapi)
    exact = [d for d in devices if d.name == name]
    if len(exact) == 1:
        return exact[0]
    matches = exact or [d for d in devices if name.lower() in d.name.lower()]
    if len(matches) == 1:
        return matches[0]
    names = ", ".join(repr(d.describe()) for d in devices) or "none"
    what = "is ambiguous" if matches else "matches no output device"
    raise ValueError(f"audio device {name!r} {what}; available output devices: {names}")

"""Presets: named, validated request templates for sound design and live looping.

`schema.py` holds the file format, `library.py` finds presets by name, `apply.py` merges a
preset into a request. The shipped presets live in the repository's `presets/` folder.
"""

from jenbridge.presets.apply import (
    loop_request,
    merge_request,
    peak_normalize,
    render_prompt,
    take_seeds,
)
from jenbridge.presets.library import PresetLibrary, load_preset_file
from jenbridge.presets.schema import Preset, PresetError, parse_preset

__all__ = ["Preset", "PresetError", "PresetLibrary", "load_preset_file", "loop_request",
           "merge_request", "parse_preset", "peak_normalize", "render_prompt", "take_seeds"]

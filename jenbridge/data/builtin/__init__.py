"""The built-in dataset: captioned multi-instrument music rendered locally, no download needed.

Two sources, both rendered with FluidSynth and a General MIDI sound font to 48 kHz stereo:

- procedural pieces in many styles (styles.py: house, techno, hip-hop, rock, jazz trio, bossa
  nova, ambient, orchestral, solo piano, string quartet, drum and bass, lo-fi, ...), composed
  by compose.py from pattern generators (patterns.py, drums.py) over diatonic harmony;
- real compositions from the music21 corpus (corpus.py: Bach chorales, folk songs and dance
  tunes, string quartets, Renaissance polyphony), arranged for a drawn ensemble.

Every clip records its exact tempo, key and meter. Convention (as jenbridge.conditions reads
"7/8" -> 7): meter = the time signature's numerator, bpm = beats of the denominator's note per
minute (quarter notes in x/4, eighth notes in x/8), so a bar lasts meter * 60 / bpm seconds;
key = "A minor"-style name, or "none" for drum-only pieces.

Entry point: build.build(BuildOptions(out=..., minutes=...)); CLI: `jenbridge data builtin`.
"""

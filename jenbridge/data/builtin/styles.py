"""Style definitions for the procedural composer, as data.

A Style says what a piece of that style may be: tempo range, meters, modes, harmony vocabulary,
form, the parts (role, pattern generators, General MIDI programs) and the words its captions use.
The composer (compose.py) only reads these tables; adding a style is adding a row to STYLES.

Meter convention (shared with the music21 pieces and the manifest): `meter` is the time
signature's numerator (beats per bar) and `bpm` counts the signature's beat unit, the
denominator's note: quarter notes in 3/4, 4/4, 5/4; eighth notes in 6/8 and 7/8. So a bar lasts
exactly meter * 60 / bpm seconds. Style tempo ranges are given in quarter notes per minute; an
x/8 meter doubles them (the eighth note keeps its speed, only the grouping changes).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Meter:
    """A time signature and how it is felt."""

    beats: int                 # numerator: beats per bar (the manifest's `meter`)
    unit: int                  # denominator: 4 = quarter-note beats, 8 = eighth-note beats
    pulses: tuple[int, ...]    # beats that carry a felt pulse (where a walking bass steps)
    strong: tuple[int, ...]    # accented beats (group starts)

    @property
    def name(self) -> str:
        return f"{self.beats}/{self.unit}"

    @property
    def steps_per_beat(self) -> int:
        """Sixteenth-note grid steps per beat."""
        return 16 // self.unit

    @property
    def per_quarter(self) -> float:
        """Beats per quarter note (1 in x/4, 2 in x/8)."""
        return self.unit / 4


METERS: dict[str, Meter] = {
    "4/4": Meter(4, 4, (0, 1, 2, 3), (0, 2)),
    "3/4": Meter(3, 4, (0, 1, 2), (0,)),
    "5/4": Meter(5, 4, (0, 1, 2, 3, 4), (0, 3)),
    "6/8": Meter(6, 8, (0, 3), (0, 3)),
    "7/8": Meter(7, 8, (0, 2, 4), (0, 2, 4)),
}


@dataclass(frozen=True)
class Mood:
    """A mood word: which mode it prefers (None = either) and how much energy it carries."""

    mode: str | None
    energy: float  # 0..1: pulls tempo toward the top of the style's range and raises velocities


MOODS: dict[str, Mood] = {
    "uplifting": Mood("major", 0.75), "euphoric": Mood(None, 0.9), "groovy": Mood(None, 0.7),
    "dark": Mood("minor", 0.6), "hypnotic": Mood(None, 0.55), "driving": Mood(None, 0.85),
    "tense": Mood("minor", 0.7), "laid-back": Mood(None, 0.3), "moody": Mood("minor", 0.4),
    "confident": Mood(None, 0.7), "nostalgic": Mood(None, 0.35), "energetic": Mood(None, 0.95),
    "anthemic": Mood("major", 0.85), "gritty": Mood("minor", 0.8), "relaxed": Mood(None, 0.25),
    "swinging": Mood(None, 0.6), "smoky": Mood("minor", 0.35), "playful": Mood("major", 0.6),
    "breezy": Mood("major", 0.45), "romantic": Mood(None, 0.35), "sunny": Mood("major", 0.55),
    "wistful": Mood("minor", 0.3), "dreamy": Mood(None, 0.2), "peaceful": Mood("major", 0.1),
    "meditative": Mood(None, 0.1), "ethereal": Mood(None, 0.15), "melancholic": Mood("minor", 0.3),
    "epic": Mood(None, 0.9), "heroic": Mood("major", 0.85), "tender": Mood(None, 0.2),
    "dramatic": Mood("minor", 0.8), "mysterious": Mood("minor", 0.4), "reflective": Mood(None, 0.3),
    "hopeful": Mood("major", 0.5), "elegant": Mood("major", 0.45), "lively": Mood("major", 0.8),
    "stately": Mood(None, 0.4), "rolling": Mood(None, 0.8), "atmospheric": Mood(None, 0.4),
    "chill": Mood(None, 0.25), "mellow": Mood(None, 0.2), "cozy": Mood("major", 0.25),
    "rootsy": Mood("major", 0.5), "funky": Mood(None, 0.75), "tight": Mood(None, 0.7),
    "neon-lit": Mood(None, 0.65), "soaring": Mood(None, 0.85), "warm": Mood("major", 0.4),
    "pastoral": Mood("major", 0.3), "punchy": Mood(None, 0.8), "loose": Mood(None, 0.5),
}

# Dynamic level -> (velocity range, caption words).
DYNAMICS: dict[str, tuple[tuple[int, int], tuple[str, ...]]] = {
    "soft": ((44, 74), ("soft", "gentle", "quiet")),
    "medium": ((66, 98), ("moderately loud", "medium-level", "balanced")),
    "loud": ((90, 122), ("loud", "powerful", "hard-hitting")),
}

# Section: (name, relative length, energy 0..1, drum level, roles that rest).
# Drum level: 0 none, 1 light (hats and shakers only), 2 full, 3 full with a crash and a fill.
Section = tuple[str, float, float, int, frozenset[str]]
_NONE: frozenset[str] = frozenset()
FORMS: dict[str, list[Section]] = {
    "dance": [("intro", 2, 0.6, 1, frozenset({"bass", "lead"})),
              ("build", 2, 0.75, 2, frozenset({"lead"})), ("drop", 4, 1.0, 3, _NONE),
              ("breakdown", 2, 0.55, 1, frozenset({"bass"})), ("drop", 4, 1.0, 3, _NONE)],
    "song": [("intro", 1, 0.6, 1, frozenset({"lead"})), ("verse", 2, 0.75, 2, _NONE),
             ("chorus", 2, 1.0, 3, _NONE), ("verse", 2, 0.75, 2, _NONE),
             ("chorus", 2, 1.0, 3, _NONE)],
    "ambient": [("opening", 1, 0.5, 1, frozenset({"lead", "bass"})), ("swell", 2, 0.85, 2, _NONE),
                ("fade", 1, 0.55, 1, frozenset({"arp"}))],
    "classical": [("A", 2, 0.75, 2, _NONE), ("B", 2, 0.95, 3, _NONE),
                  ("A'", 2, 0.7, 2, _NONE)],
    "loop": [("main", 1, 0.9, 2, _NONE)],
}


@dataclass(frozen=True)
class Part:
    """One role of a style: pattern generators to draw from and General MIDI programs.

    programs are drum-kit numbers for the "drums" role. same_as names another role whose
    drawn program this part reuses (a piano trio's two hands); prob is the chance it plays.
    """

    role: str
    patterns: tuple[str, ...]
    programs: tuple[int, ...] = ()
    prob: float = 1.0
    same_as: str | None = None


@dataclass(frozen=True)
class Style:
    """What a procedural piece of one style may be (see the module docstring for units)."""

    noun: str                            # caption head noun: "house track"
    bpm: tuple[float, float]             # quarter notes per minute
    parts: tuple[Part, ...]
    moods: tuple[str, ...]
    meters: dict[str, float] = field(default_factory=lambda: {"4/4": 1.0})
    major: float = 0.5                   # chance of a major key when the mood does not decide
    progressions: tuple[str, ...] = ("pop",)
    shapes: dict[str, float] = field(default_factory=lambda: {"triad": 1.0})
    chord_bars: tuple[int, ...] = (1, 2)  # harmonic rhythm: bars per chord
    forms: tuple[str, ...] = ("song",)
    dynamics: tuple[str, ...] = ("medium",)
    swing: tuple[float, float] = (0.0, 0.0)  # delay of off-beat eighths, fraction of a beat
    swing16: bool = False                # swing the sixteenths instead of the eighths
    humanize_ms: float = 0.0             # timing jitter (std); 0 = quantized
    harmonic_minor: bool = False         # raise the 7th in the dominant of minor keys
    reverb: tuple[float, float] = (0.3, 0.6)  # room size range
    flavors: tuple[str, ...] = ()        # optional adjectives for captions
    pitched: bool = True                 # False: drums only, key "none"


_DANCE_KITS = (24, 25)
STYLES: dict[str, Style] = {
    "house": Style("house track", (118, 128), (
        Part("drums", ("four_on_floor",), (24, 25, 0)),
        Part("bass", ("offbeat_bass", "sub"), (38, 39, 33)),
        Part("chords", ("stabs", "block"), (4, 0, 90, 16)),
        Part("pad", ("block",), (89, 88, 94), 0.5),
        Part("lead", ("riff", "melody"), (80, 81, 4, 11), 0.6)),
        ("euphoric", "groovy", "uplifting", "dark", "hypnotic"), major=0.35,
        progressions=("dance",), shapes={"seventh": 0.5, "triad": 0.3, "ninth": 0.2},
        forms=("dance", "loop"), dynamics=("medium", "loud"), reverb=(0.3, 0.6),
        flavors=("deep", "classic", "soulful")),
    "techno": Style("techno track", (126, 138), (
        Part("drums", ("techno",), _DANCE_KITS),
        Part("bass", ("root_pulse", "sub"), (38, 39)),
        Part("lead", ("riff",), (81, 80, 87), 0.8),
        Part("pad", ("block",), (95, 94, 92), 0.5),
        Part("chords", ("stabs",), (90, 62), 0.3)),
        ("hypnotic", "dark", "driving", "tense"), major=0.15, progressions=("modal",),
        shapes={"triad": 0.5, "sus2": 0.3, "power": 0.2}, forms=("dance", "loop"),
        dynamics=("medium", "loud"), reverb=(0.4, 0.8), flavors=("minimal", "industrial")),
    "hip-hop": Style("hip-hop beat", (84, 98), (
        Part("drums", ("boom_bap", "trap"), (0, 25, 8)),
        Part("bass", ("groove", "sub"), (33, 38, 32)),
        Part("chords", ("block", "comp"), (4, 0, 48, 5)),
        Part("lead", ("sparse", "melody"), (11, 73, 0, 4), 0.5)),
        ("laid-back", "moody", "confident", "nostalgic"), major=0.3,
        progressions=("pop", "jazz"), shapes={"seventh": 0.5, "ninth": 0.3, "triad": 0.2},
        forms=("song", "loop"), swing=(0.04, 0.12), swing16=True, humanize_ms=4,
        reverb=(0.2, 0.4), flavors=("boom-bap", "old-school", "jazzy")),
    "rock": Style("rock song", (100, 150), (
        Part("drums", ("rock",), (0, 16, 8)),
        Part("bass", ("root_pulse", "groove"), (33, 34)),
        Part("chords", ("strum",), (29, 30, 27)),
        Part("lead", ("melody", "riff"), (29, 30, 27, 16), 0.7)),
        ("energetic", "driving", "anthemic", "gritty"),
        meters={"4/4": 0.86, "3/4": 0.04, "7/8": 0.05, "5/4": 0.05},
        progressions=("rock", "pop"), shapes={"power": 0.6, "triad": 0.4},
        dynamics=("medium", "loud"), humanize_ms=6, reverb=(0.2, 0.5),
        flavors=("indie", "hard", "garage")),
    "jazz trio": Style("jazz piano trio piece", (90, 200), (
        Part("drums", ("jazz_swing",), (32, 40)),
        Part("bass", ("walking",), (32,)),
        Part("chords", ("comp",), (0, 4, 26)),
        Part("lead", ("melody",), same_as="chords")),
        ("relaxed", "swinging", "smoky", "playful"), major=0.6,
        meters={"4/4": 0.8, "3/4": 0.12, "5/4": 0.08}, progressions=("jazz",),
        shapes={"seventh": 0.6, "ninth": 0.4}, chord_bars=(1,), dynamics=("soft", "medium"),
        swing=(0.12, 0.2), humanize_ms=8, reverb=(0.3, 0.5), flavors=("late-night", "cool")),
    "bossa nova": Style("bossa nova", (120, 145), (
        Part("drums", ("bossa",), (32, 40, 0)),
        Part("bass", ("bossa",), (32, 33)),
        Part("chords", ("bossa_comp",), (24,)),
        Part("lead", ("melody",), (73, 65, 11, 0), 0.8),
        Part("pad", ("block",), (48, 49), 0.3)),
        ("breezy", "romantic", "relaxed", "sunny", "wistful"), major=0.6,
        progressions=("jazz",), shapes={"seventh": 0.6, "ninth": 0.4},
        dynamics=("soft", "medium"), humanize_ms=6, reverb=(0.3, 0.5)),
    "ambient": Style("ambient piece", (60, 90), (
        Part("pad", ("block",), (89, 88, 94, 92, 95, 91)),
        Part("arp", ("arpeggio",), (8, 11, 46, 4), 0.6),
        Part("lead", ("sparse",), (75, 73, 53), 0.4),
        Part("bass", ("sustain",), (39, 89), 0.5)),
        ("dreamy", "peaceful", "meditative", "ethereal", "melancholic"),
        meters={"4/4": 0.7, "3/4": 0.3}, progressions=("modal",),
        shapes={"sus2": 0.3, "add9": 0.4, "seventh": 0.3}, chord_bars=(2, 4),
        forms=("ambient",), dynamics=("soft",), reverb=(0.7, 0.95), flavors=("spacious",)),
    "orchestral": Style("orchestral piece", (70, 130), (
        Part("drums", ("orchestral",), (48,), 0.4),
        Part("timpani", ("timpani",), (47,), 0.6),
        Part("bass", ("sustain", "root_pulse"), (43, 42)),
        Part("chords", ("block", "pulse"), (48, 49)),
        Part("counter", ("counter",), (60, 57, 70), 0.6),
        Part("lead", ("melody",), (73, 68, 60, 56, 40, 71))),
        ("epic", "heroic", "tender", "dramatic", "mysterious"),
        meters={"4/4": 0.6, "3/4": 0.25, "6/8": 0.15}, progressions=("classical",),
        shapes={"triad": 0.8, "seventh": 0.2}, forms=("classical", "ambient"),
        dynamics=("soft", "medium", "loud"), harmonic_minor=True, humanize_ms=6,
        reverb=(0.6, 0.9), flavors=("cinematic", "film-score")),
    "solo piano": Style("solo piano piece", (60, 120), (
        Part("chords", ("arpeggio", "alberti", "block"), (0,)),
        Part("lead", ("melody",), same_as="chords")),
        ("tender", "melancholic", "reflective", "romantic", "hopeful"),
        meters={"4/4": 0.55, "3/4": 0.3, "6/8": 0.15}, progressions=("classical", "pop"),
        shapes={"triad": 0.6, "seventh": 0.2, "add9": 0.2}, forms=("classical",),
        dynamics=("soft", "medium"), harmonic_minor=True, humanize_ms=8, reverb=(0.4, 0.7)),
    "string quartet": Style("string quartet piece", (60, 130), (
        Part("lead", ("melody",), (40,)),
        Part("counter", ("counter",), (40,)),
        Part("chords", ("block", "pulse"), (41,)),
        Part("bass", ("sustain", "root_pulse"), (42,))),
        ("elegant", "melancholic", "tender", "lively", "stately"),
        meters={"4/4": 0.5, "3/4": 0.3, "6/8": 0.2}, progressions=("classical",),
        shapes={"triad": 0.8, "seventh": 0.2}, forms=("classical",),
        dynamics=("soft", "medium"), harmonic_minor=True, humanize_ms=7, reverb=(0.4, 0.7)),
    "drum and bass": Style("drum and bass track", (170, 176), (
        Part("drums", ("dnb",), (24, 0, 8)),
        Part("bass", ("sub", "root_pulse"), (38, 39, 87)),
        Part("pad", ("block",), (89, 94, 50), 0.8),
        Part("lead", ("riff", "sparse"), (80, 4, 11), 0.5),
        Part("chords", ("stabs",), (4, 90), 0.4)),
        ("energetic", "dark", "rolling", "atmospheric", "tense"), major=0.2,
        progressions=("dance", "modal"), shapes={"seventh": 0.4, "ninth": 0.3, "triad": 0.3},
        chord_bars=(2,), forms=("dance",), dynamics=("medium", "loud"), reverb=(0.4, 0.7),
        flavors=("liquid", "jungle-tinged")),
    "lo-fi": Style("lo-fi hip-hop beat", (70, 90), (
        Part("drums", ("boom_bap",), (0, 8, 40)),
        Part("bass", ("groove", "sustain"), (33, 32)),
        Part("chords", ("block", "comp"), (4, 0, 26)),
        Part("lead", ("sparse",), (11, 73, 26), 0.5)),
        ("chill", "nostalgic", "mellow", "cozy"), major=0.5, progressions=("jazz", "pop"),
        shapes={"seventh": 0.6, "ninth": 0.4}, forms=("loop", "song"), dynamics=("soft",),
        swing=(0.06, 0.14), swing16=True, humanize_ms=10, reverb=(0.3, 0.5),
        flavors=("hazy", "late-night")),
    "reggae": Style("reggae tune", (70, 88), (
        Part("drums", ("one_drop",), (0, 8)),
        Part("bass", ("groove",), (33, 35)),
        Part("chords", ("offbeat",), (16, 27, 4)),
        Part("lead", ("melody",), (65, 56, 22), 0.5)),
        ("laid-back", "sunny", "uplifting", "rootsy"), major=0.6,
        progressions=("pop",), swing=(0.0, 0.08), humanize_ms=5, reverb=(0.3, 0.6)),
    "funk": Style("funk groove", (96, 116), (
        Part("drums", ("funk",), (0, 8)),
        Part("bass", ("groove",), (36, 33)),
        Part("chords", ("stabs", "comp"), (28, 27, 4)),
        Part("lead", ("riff", "melody"), (61, 65, 16), 0.6)),
        ("groovy", "funky", "tight", "playful"), progressions=("jazz", "modal"),
        shapes={"seventh": 0.6, "ninth": 0.4}, forms=("loop", "song"),
        dynamics=("medium", "loud"), swing=(0.0, 0.08), swing16=True, humanize_ms=4),
    "synthwave": Style("synthwave track", (84, 118), (
        Part("drums", ("synthwave",), _DANCE_KITS),
        Part("bass", ("root_pulse",), (38, 39)),
        Part("chords", ("block", "arpeggio"), (90, 62, 50)),
        Part("lead", ("melody",), (81, 80)),
        Part("pad", ("block",), (94, 89), 0.6)),
        ("nostalgic", "neon-lit", "driving", "dreamy"), major=0.3,
        progressions=("pop", "dance"), shapes={"triad": 0.6, "add9": 0.4},
        reverb=(0.5, 0.8), flavors=("retro", "80s-inspired")),
    "trance": Style("trance track", (132, 140), (
        Part("drums", ("four_on_floor",), _DANCE_KITS),
        Part("bass", ("offbeat_bass",), (38, 39)),
        Part("arp", ("arpeggio",), (81, 90, 80)),
        Part("pad", ("block",), (94, 50, 89)),
        Part("lead", ("melody",), (81, 62), 0.8)),
        ("euphoric", "uplifting", "soaring"), major=0.3, progressions=("dance",),
        forms=("dance",), dynamics=("medium", "loud"), reverb=(0.5, 0.8)),
    "folk": Style("folk tune", (80, 130), (
        Part("drums", ("folk",), (0, 8), 0.5),
        Part("bass", ("sustain", "root_pulse"), (32,), 0.6),
        Part("chords", ("strum", "arpeggio"), (25, 24, 105)),
        Part("lead", ("melody",), (110, 73, 78, 21, 22))),
        ("warm", "pastoral", "wistful", "lively"), major=0.7,
        meters={"4/4": 0.4, "3/4": 0.3, "6/8": 0.3}, progressions=("pop", "modal"),
        dynamics=("soft", "medium"), humanize_ms=7, flavors=("acoustic", "celtic-flavored")),
    "drum break": Style("drum break", (85, 140), (
        Part("drums", ("boom_bap", "funk", "rock", "dnb", "four_on_floor", "trap", "bossa"),
             (0, 8, 16, 24, 25, 32)),),
        ("energetic", "tight", "loose", "punchy"), forms=("loop", "song"),
        dynamics=("medium", "loud"), humanize_ms=3, reverb=(0.1, 0.4), pitched=False),
}

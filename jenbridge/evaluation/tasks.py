"""The JEN-1 task suites (issue 7): autoencoder, text-to-music, inpainting, continuation.

Each suite is `suite(ctx) -> dict` with "clips", "metrics" (Scores.summary: every figure by
system, the models next to the baselines) and suite-specific extras. Audio is (C, N) float32
at ctx.sample_rate; each clip i uses seed ctx.settings.seed + i, the same for every model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jenbridge.evaluation import baselines as bl
from jenbridge.evaluation import metrics as mt
from jenbridge.evaluation.clips import spread
from jenbridge.evaluation.context import Context, MetricSpec, Scores, roundtrip

NOISES = {"white noise": bl.white_noise, "pink noise": bl.pink_noise}
ROUND_TRIP = "autoencoder round trip"


def _gen_options(ctx: Context, i: int) -> dict[str, Any]:
    return {"seed": ctx.settings.seed + i, "steps": ctx.settings.steps}


# ---- autoencoder ---------------------------------------------------------------------------

AE_SPECS = {
    "si_sdr": MetricSpec("dB", "higher", "scale-invariant SDR of decode(encode(x)) against x"),
    "mr_stft": MetricSpec("", "lower", "multi-resolution STFT distance (the training loss)"),
    "mel": MetricSpec("", "lower", "log-mel L1 distance"),
}


def autoencoder(ctx: Context) -> dict[str, Any]:
    """Round trip through each bundle's encoder and decoder (no diffusion), against silence
    and noise at the clip's loudness."""
    sr, scores = ctx.sample_rate, Scores()
    for i, clip in enumerate(ctx.clips):
        x = clip.audio
        systems = {m.label: roundtrip(m.engine, x, sr) for m in ctx.models}
        systems["silence"] = bl.silence(x)
        for j, (name, noise) in enumerate(NOISES.items()):
            systems[name] = noise(x, ctx.rng(1, i, j))
        for name, y in systems.items():
            scores.add("si_sdr", name, mt.si_sdr(y, x))
            scores.add("mr_stft", name, mt.mr_stft_distance(y, x))
            scores.add("mel", name, mt.mel_distance(y, x, sr))
        if i == 0:
            ctx.example("original", x, title=f"original: {clip.name}")
            ctx.example("autoencoder", systems[ctx.models[0].label],
                        title=f"autoencoder round trip ({ctx.models[0].label})")
    return {"clips": len(ctx.clips), "metrics": scores.summary(AE_SPECS)}


# ---- text-to-music -------------------------------------------------------------------------

T2M_SPECS = {
    "frechet": MetricSpec("", "lower", "Fréchet distance to the held-out clips' embeddings "
                          "(window embeddings of all clips pooled)"),
    "style_accuracy": MetricSpec("fraction", "higher",
                                 "the prompted clip's style recognized in the audio by the "
                                 "embedding model's nearest-centroid classifier"),
}


def _fd(windows: list[np.ndarray], real: np.ndarray) -> float:
    return mt.frechet_distance(np.concatenate(windows), real)


def text_to_music(ctx: Context) -> dict[str, Any]:
    """One generation per held-out caption (with the clip's bpm / key / meter); Fréchet
    distance of the embeddings to the held-out audio and text alignment as style accuracy.
    "autoencoder round trip" (the held-out clips through the model's own encoder and decoder)
    is the floor the diffusion model can reach with that autoencoder."""
    s, sr = ctx.settings, ctx.sample_rate
    real = [ctx.embed(c.audio, f"real:{c.path}") for c in ctx.clips]
    systems: dict[str, list[np.ndarray]] = {}
    for i, clip in enumerate(ctx.clips):
        for m in ctx.models:
            res = m.engine.generate(clip.caption, s.seconds, bpm=clip.bpm or None,
                                    key=clip.key or None, meter=clip.meter or None,
                                    sample_rate=sr, channels=ctx.channels,
                                    **_gen_options(ctx, i))
            systems.setdefault(m.label, []).append(ctx.embed(res.audio))
            if i == 0 and m is ctx.models[0]:
                ctx.example("text-to-music", res.audio,
                            title=f"text-to-music ({m.label}): {clip.caption[:60]}")
        systems.setdefault(ROUND_TRIP, []).append(
            ctx.embed(roundtrip(ctx.models[0].engine, clip.audio, sr)))
        systems.setdefault("silence", []).append(ctx.embed(bl.silence(clip.audio)))
        for j, (name, noise) in enumerate(NOISES.items()):
            systems.setdefault(name, []).append(ctx.embed(noise(clip.audio, ctx.rng(2, i, j))))
    train_real = [ctx.embed(c.audio, f"real:{c.path}") for c in ctx.probe]
    eval_paths = {c.path for c in ctx.clips}
    # as many real training clips as there are held-out ones, spread over the styles
    reference = spread([e for c, e in zip(ctx.probe, train_real) if c.path not in eval_paths],
                        len(ctx.clips))

    real_all = np.concatenate(real)
    values: dict[str, float] = {name: _fd(w, real_all) for name, w in systems.items()}
    notes = []
    if len(reference) >= 2:
        values["real (train split)"] = _fd(reference, real_all)
    else:
        notes.append("no separate training-split clips: no real-audio reference for the "
                     "Fréchet distance")
    metrics: dict[str, Any] = {"frechet": {**_spec(T2M_SPECS["frechet"]), "values": values,
                                           "windows": {k: int(sum(len(w) for w in v))
                                                       for k, v in systems.items()}}}

    # text alignment: a style classifier fitted on training-split clips, applied to each
    # generation; only clips whose style the classifier knows count
    if ctx.probe:
        metrics["style_accuracy"] = _alignment(ctx, systems, real, train_real)
        if metrics["style_accuracy"]["classes"] < 2:
            notes.append("fewer than two style classes: text alignment is not informative")
    else:
        notes.append("no training clips of the held-out styles: no text-alignment figure")
    if ctx.probe and eval_paths & {c.path for c in ctx.probe}:
        notes.append("no held-out split: the style classifier was fitted on the clips it "
                     "scores ('real (held-out)' is then its training accuracy)")
    return {"clips": len(ctx.clips), "metrics": metrics, "notes": notes}


def _alignment(ctx: Context, systems: dict[str, list[np.ndarray]], real: list[np.ndarray],
               train_real: list[np.ndarray]) -> dict[str, Any]:
    """style_accuracy of every system, with chance, majority share and a binomial test."""
    from scipy.stats import binomtest

    from jenbridge.evaluation.embeddings import NearestCentroid

    probe = NearestCentroid(np.stack([e.mean(axis=0) for e in train_real]),
                            [c.label for c in ctx.probe])
    known = [i for i, c in enumerate(ctx.clips) if c.label in probe.classes]
    labels = [ctx.clips[i].label for i in known]
    acc: dict[str, float] = {}
    for name, wins in [*systems.items(), ("real (held-out)", real)]:
        pred = probe.predict(np.stack([wins[i].mean(axis=0) for i in known])) if known else []
        acc[name] = float(np.mean([p == y for p, y in zip(pred, labels)])) if known else 0.0
    chance = 1.0 / len(probe.classes)
    hits = round(acc[ctx.models[0].label] * len(known))
    p_value = float(binomtest(hits, len(known), chance, alternative="greater").pvalue) \
        if known else 1.0
    return {**_spec(T2M_SPECS["style_accuracy"]), "values": acc, "chance": chance,
            "majority": max(labels.count(y) for y in set(labels)) / len(labels) if labels
            else 0.0, "classes": len(probe.classes), "clips": len(known),
            "p_value_vs_chance": p_value}


def _spec(spec: MetricSpec) -> dict[str, str]:
    return {"unit": spec.unit, "better": spec.better, "description": spec.description}


# ---- inpainting ----------------------------------------------------------------------------

INPAINT_SPECS = {
    "seam": MetricSpec("ratio", "lower", "spectral flux at the region edges over the music's "
                       "typical flux (1.0 = as smooth as the original)"),
    "inside_mel": MetricSpec("", "lower", "log-mel L1 distance to the original inside the "
                             "region"),
}


def bar_of(clip: Any, audio: np.ndarray, sr: int) -> int:
    """Samples per bar of a clip: its manifest bpm and meter, else the measured tempo in 4."""
    if clip.bpm > 0 and clip.meter > 0:
        return bl.bar_samples(clip.bpm, clip.meter, sr)
    from jenbridge.music.estimate import estimate_tempo

    bpm = estimate_tempo(audio, sr).bpm
    return bl.bar_samples(bpm if bpm > 0 else 120.0, clip.meter or 4, sr)


def inpainting(ctx: Context) -> dict[str, Any]:
    """A hole of inpaint_fraction of each clip, centred, filled by each model (the clip's
    caption as prompt; tempo and key estimated by the engine) and by the baselines, all
    spliced with the engine's 10 ms crossfades."""
    from jenbridge.engine.regions import DEFAULT_CROSSFADE

    sr, s, scores = ctx.sample_rate, ctx.settings, Scores()
    fade = round(DEFAULT_CROSSFADE * sr)
    for i, clip in enumerate(ctx.clips):
        x = clip.audio
        n = x.shape[1]
        length = max(1, round(s.inpaint_fraction * n))
        start = (n - length) // 2
        end = start + length
        edges = [start / sr, end / sr]
        systems: dict[str, np.ndarray] = {}
        for m in ctx.models:
            systems[m.label] = m.engine.inpaint(x, sr, [(start / sr, end / sr)], clip.caption,
                                                **_gen_options(ctx, i)).audio
        hole = x[:, start:end]
        fills = {"silence": bl.silence(x),
                 "white noise": np.pad(bl.white_noise(hole, ctx.rng(3, i)),
                                       ((0, 0), (start, n - end))),
                 "repeat bar": bl.repeat_bar_fill(x, start, end, bar_of(clip, x[:, :start], sr)),
                 "crossfade": bl.crossfade_fill(x, start, end)}
        for name, filled in fills.items():
            systems[name] = bl.spliced(x, filled, start, end, fade)
        systems["original"] = x
        for name, y in systems.items():
            scores.add("seam", name, mt.seam_discontinuity(y, x, edges, sr))
            if name != "original":
                scores.add("inside_mel", name, mt.mel_distance(y[:, start:end], hole, sr))
        if i == 0:
            ctx.example("inpainting", systems[ctx.models[0].label], edges,
                        f"inpainting ({ctx.models[0].label}), region marked")
            ctx.example("crossfade", systems["crossfade"], edges, "crossfade baseline")
    return {"clips": len(ctx.clips), "metrics": scores.summary(INPAINT_SPECS),
            "region_fraction": s.inpaint_fraction}


# ---- continuation --------------------------------------------------------------------------

CONT_SPECS = {
    "tempo_within_3bpm": MetricSpec("fraction", "higher", "continuation tempo within ±3 BPM "
                                    "of the context's (both measured by librosa; contexts with no "
                                    "measurable tempo left out)"),
    "tempo_octave": MetricSpec("fraction", "lower", "continuation tempo a half / double / "
                               "two-thirds / ... of the context's (octave errors)"),
    "key_agreement": MetricSpec("fraction", "higher", "chroma key of the continuation equals "
                                "the context's"),
    "key_relative": MetricSpec("fraction", "lower", "continuation in the relative major / "
                               "minor of the context's key"),
    "mel_to_truth": MetricSpec("", "lower", "log-mel L1 distance to the clip's real "
                               "continuation"),
    "mel_to_repeat": MetricSpec("", "", "log-mel L1 distance to the context's last bar "
                                "repeated (0 = a loop of it; the real continuation's is the "
                                "music's own)"),
}


def continuation(ctx: Context) -> dict[str, Any]:
    """The first 1 - continue_fraction of each excerpt (ctx.continue_clips when the run asked
    for longer ones, else the clips) as context; each model continues it to the excerpt's
    length (caption as prompt; tempo and key estimated by the engine) at the first of
    settings.grooves, the model under test also at the others ("model, groove G" rows).
    Baselines: the real continuation, repeating the context's last bar, silence, white
    noise. mel_to_repeat tells a continuation that plays on from one that loops the bar."""
    sr, s, scores = ctx.sample_rate, ctx.settings, Scores()
    skipped_key = no_pulse = 0
    runs = [(m, s.grooves[0], m.label) for m in ctx.models]
    runs[1:1] = [(ctx.models[0], g, f"{ctx.models[0].label}, groove {g:g}")
                 for g in dict.fromkeys(s.grooves[1:]) if g != s.grooves[0]]
    clips = ctx.clips if ctx.continue_clips is None else ctx.continue_clips
    for i, clip in enumerate(clips):
        x = clip.audio
        n = x.shape[1]
        c = n - max(1, round(s.continue_fraction * n))
        context, truth = x[:, :c], x[:, c:]
        systems: dict[str, np.ndarray] = {}
        for m, groove, label in runs:
            out = m.engine.continue_(context, sr, (n - c) / sr, clip.caption, groove=groove,
                                     **_gen_options(ctx, i)).audio
            systems[label] = out[:, c:n]
            if i == 0 and label == ctx.models[0].label:
                ctx.example("continuation", out[:, :n], [c / sr],
                            f"continuation ({label}, groove {groove:g}) after the mark")
        systems["real"] = truth
        systems["repeat bar"] = bl.repeat_bar_continuation(context, n - c, bar_of(clip, context,
                                                                                   sr))
        systems["silence"] = bl.silence(truth)
        systems["white noise"] = bl.white_noise(truth, ctx.rng(4, i))
        # the context's tempo goes through the same refined measure as every continuation,
        # seeded by the beat tracker: both sides of the comparison have the same resolution
        # a context with no pulse at the tracker's tempo has no tempo to keep (rubato, no
        # beat): left out of the tempo figures like an unpitched context is of the key's
        bpm, key = _tempo_near(context, sr, _tempo(context, sr)), _key(context, sr)
        no_pulse += bpm <= 0
        if not 1 <= key <= 24:
            skipped_key += 1
        for name, y in systems.items():
            if bpm > 0:
                rel = mt.tempo_relation_bpm(_tempo_near(y, sr, bpm), bpm, 3.0)
                scores.add("tempo_within_3bpm", name, float(rel == "match"))
                scores.add("tempo_octave", name, float(rel == "octave"))
            if 1 <= key <= 24:
                k = mt.key_relation(_key(y, sr), key)
                scores.add("key_agreement", name, float(k == "exact"))
                scores.add("key_relative", name, float(k == "relative"))
            if name != "real":
                scores.add("mel_to_truth", name, mt.mel_distance(y, truth, sr))
            if name != "repeat bar":
                scores.add("mel_to_repeat", name, mt.mel_distance(y, systems["repeat bar"], sr))
    notes = [f"{skipped_key} clip(s) whose context has no key (unpitched) left out of the key "
             "figures"] if skipped_key else []
    if no_pulse:
        notes.append(f"{no_pulse} clip(s) whose context has no measurable tempo (no pulse at "
                     "the beat tracker's tempo) left out of the tempo figures")
    return {"clips": len(clips), "metrics": scores.summary(CONT_SPECS),
            "context_seconds": (1 - s.continue_fraction) * s.continuation_seconds,
            "continuation_seconds": s.continue_fraction * s.continuation_seconds,
            "grooves": {label: g for _, g, label in runs}, "notes": notes}


def _tempo(audio: np.ndarray, sr: int) -> float:
    """librosa tempo (BPM) of audio; 0.0 for silence or audio too short to measure."""
    from jenbridge.music.estimate import MIN_SECONDS, estimate_tempo

    if audio.shape[-1] < MIN_SECONDS * sr or not np.any(audio):
        return 0.0
    return float(estimate_tempo(audio, sr).bpm)


def _tempo_near(audio: np.ndarray, sr: int, prior: float) -> float:
    """Tempo (BPM) of audio given the context's tempo `prior`: librosa's tempogram estimate
    with the prior as its start_bpm, so a pulse that is ambiguous between octaves (the plain
    tracker flips 68 <-> 136 on a third of real continuations) resolves toward the context's
    octave while a clearly different tempo still shows, refined below librosa's whole-lag bins
    (refine_period). 0.0 (no tempo) when the onset
    envelope has no pulse at that tempo (pulse_strength below mt.PULSE_MIN: noise, silence;
    a prior alone must not make noise "match")."""
    import librosa

    from jenbridge.music.estimate import (
        ANALYSIS_SR,
        FRAME_RATE,
        HOP,
        MIN_SECONDS,
        pulse_strength,
        refine_period,
    )

    if prior <= 0 or audio.shape[-1] < MIN_SECONDS * sr or not np.any(audio):
        return 0.0
    y = _mono_at(audio, sr, ANALYSIS_SR)
    env = librosa.onset.onset_strength(y=y, sr=ANALYSIS_SR, hop_length=HOP)
    if not np.any(env > 0):
        return 0.0
    bpm = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=env, sr=ANALYSIS_SR,
                                                    hop_length=HOP, start_bpm=prior))[0])
    period = 60.0 * FRAME_RATE / bpm
    if pulse_strength(env, period) < mt.PULSE_MIN:
        return 0.0
    return 60.0 * FRAME_RATE / refine_period(env, period)


def _mono_at(audio: np.ndarray, sr: int, rate: int) -> np.ndarray:
    import soxr

    mono = np.asarray(audio, dtype=np.float32).mean(axis=0)
    return mono if sr == rate else soxr.resample(mono, sr, rate, quality="HQ")


def _key(audio: np.ndarray, sr: int) -> int:
    """Chroma key code of audio (1..24; 25 = none: unpitched, silent or too short)."""
    from jenbridge.music.estimate import MIN_SECONDS, estimate_key

    if audio.shape[-1] < MIN_SECONDS * sr or not np.any(audio):
        return 25
    return int(estimate_key(audio, sr).code)

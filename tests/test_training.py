"""Training pipeline end to end on tiny models and real audio files: dataset scan and report,
autoencoder and diffusion training through the CLI, exact resume, stats, latent cache, export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from jenbridge.cli import main
from jenbridge.data.index import scan_dataset
from jenbridge.training.checkpoint import latest_checkpoint, load_model, read_weights

SR = 48000


def test_scan_reports_broken_inputs(dataset: Path) -> None:
    index = scan_dataset(dataset, SR, min_seconds=0.5)
    r = index.report
    names = sorted(Path(c.path).name for c in index.clips)
    assert names == ["good0.wav", "good1.wav", "good2.wav", "good3.flac", "nocaption.wav"]
    assert r.skipped["missing file"] == 1 and r.skipped["silent"] == 1
    assert r.skipped["unreadable"] == 1 and r.skipped["shorter than 0.5 s"] == 1
    assert r.skipped["bad manifest row"] == 1
    assert r.resampled == 1 and r.missing_caption == 1 and r.unusable_tags == 2
    assert r.with_bpm == 4 and r.with_key == 4
    assert r.hours > 0


def test_data_check_command(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check", str(dataset), "--min-seconds", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "usable: 5" in out and "skipped (silent): 1" in out and "skipped (unreadable): 1" in out


def _train_ae(run: Path, data: Path, steps: int) -> None:
    assert main(["train", "autoencoder", "--config", "tiny", "--data", str(data), "--run-dir",
                 str(run), "--steps", str(steps), "--workers", "0", "--no-progress",
                 "--set", "autoencoder_training.checkpoint_every=1000",
                 "--set", "autoencoder_training.sample_every=0"]) == 0


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory: pytest.TempPathFactory, dataset: Path) -> Path:
    run = tmp_path_factory.mktemp("ae_run")
    _train_ae(run, dataset, 4)
    return run


def test_autoencoder_resume_is_exact(tmp_path: Path, dataset: Path, ae_run: Path) -> None:
    """4 steps straight == 2 steps, stop, resume, 2 more (same seed): same weights."""
    split = tmp_path / "split"
    _train_ae(split, dataset, 2)
    assert latest_checkpoint(split).name == "step_00000002"
    _train_ae(split, dataset, 4)
    a = read_weights(latest_checkpoint(ae_run) / "model.safetensors")
    b = read_weights(latest_checkpoint(split) / "model.safetensors")
    assert a.step == b.step == 4
    for k in a.state:
        torch.testing.assert_close(a.state[k], b.state[k], rtol=1e-5, atol=1e-6, msg=k)
    ema_a = read_weights(latest_checkpoint(ae_run) / "ema.safetensors").state
    ema_b = read_weights(latest_checkpoint(split) / "ema.safetensors").state
    for k in ema_a:
        torch.testing.assert_close(ema_a[k], ema_b[k], rtol=1e-5, atol=1e-6, msg=k)
    # and training really changed the weights
    fresh = read_weights(latest_checkpoint(split) / "model.safetensors")
    assert fresh.config.name == "tiny"


@pytest.fixture(scope="module")
def ae_weights(ae_run: Path, dataset: Path) -> Path:
    assert main(["train", "stats", "--run-dir", str(ae_run), "--data", str(dataset),
                 "--seconds", "40"]) == 0
    return ae_run / "autoencoder.safetensors"


def test_stats_stored_with_autoencoder(ae_weights: Path) -> None:
    model, w = load_model(ae_weights)
    k = model.kept_channels
    assert w.extras["latent_channels"] == k and 1 <= k <= w.config.autoencoder.latent_channels
    assert float(model.norm.variance_covered) >= w.config.autoencoder.variance_kept - 1e-6


def _train_diffusion(run: Path, ae: Path, latents: Path, steps: int) -> None:
    assert main(["train", "diffusion", "--config", "tiny", "--autoencoder", str(ae),
                 "--latents", str(latents), "--run-dir", str(run), "--steps", str(steps),
                 "--workers", "0", "--no-progress",
                 "--set", "diffusion_training.sample_every=0"]) == 0


def test_latent_cache_and_diffusion_resume(tmp_path: Path, dataset: Path,
                                           ae_weights: Path) -> None:
    cache = tmp_path / "latents"
    assert main(["train", "cache-latents", "--autoencoder", str(ae_weights), "--data",
                 str(dataset), "--out", str(cache)]) == 0
    meta = json.loads((cache / "index.json").read_text())
    assert len(meta["clips"]) == 5
    model, _ = load_model(ae_weights)
    y = np.load(cache / "latents" / meta["clips"][0]["file"])
    assert y.shape[0] == model.kept_channels and y.dtype == np.float16

    straight, split = tmp_path / "d1", tmp_path / "d2"
    _train_diffusion(straight, ae_weights, cache, 4)
    _train_diffusion(split, ae_weights, cache, 2)
    _train_diffusion(split, ae_weights, cache, 4)
    a = read_weights(latest_checkpoint(straight) / "model.safetensors")
    b = read_weights(latest_checkpoint(split) / "model.safetensors")
    assert a.kind == "diffusion" and a.extras["latent_channels"] == model.kept_channels
    for k in a.state:
        torch.testing.assert_close(a.state[k], b.state[k], rtol=1e-5, atol=1e-6, msg=k)

    out = tmp_path / "weights.safetensors"
    assert main(["train", "export-weights", "--run-dir", str(straight), "--out", str(out)]) == 0
    from safetensors import safe_open

    with safe_open(str(out), framework="pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}  # noqa: SIM118 (safe_open API)
    assert torch.float16 in dtypes and torch.float32 not in dtypes
    _, w = load_model(out)
    assert w.kind == "diffusion" and w.step == 4


def test_shards_stream_every_clip_once_per_epoch(tmp_path: Path, dataset: Path) -> None:
    from jenbridge.data.shards import ShardCrops

    out = tmp_path / "shards"
    assert main(["data", "shards", str(dataset), "--out", str(out), "--per-shard", "2",
                 "--min-seconds", "0.5"]) == 0
    shards = sorted(out.glob("shard-*.tar"))
    assert len(shards) == 3  # 5 usable clips, 2 per shard
    stream = ShardCrops([str(s) for s in shards], SR, 2, 0.5, multiple=512, epochs=1)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)
    items = list(loader)
    assert len(items) == 5  # each clip exactly once across the two workers
    assert {i["caption"] for i in items} >= {f"piano and bass, take {k}" for k in range(4)}
    for i in items:
        assert i["audio"].shape == (2, 24064) and torch.isfinite(i["audio"]).all()


def test_autoencoder_trains_from_shards(tmp_path: Path, dataset: Path) -> None:
    out = tmp_path / "shards"
    assert main(["data", "shards", str(dataset), "--out", str(out), "--min-seconds", "0.5"]) == 0
    run = tmp_path / "run"
    assert main(["train", "autoencoder", "--config", "tiny", "--shards",
                 str(out / "shard-000000.tar"), "--run-dir", str(run), "--steps", "2",
                 "--workers", "1", "--no-progress",
                 "--set", "autoencoder_training.sample_every=0"]) == 0
    assert latest_checkpoint(run).name == "step_00000002"


def test_builtin_dataset_then_tiny_training(tmp_path: Path) -> None:
    """The README flow on a fresh machine, in small: build built-in data, train, resume."""
    data, run = tmp_path / "builtin", tmp_path / "ae"
    assert main(["data", "builtin", "--out", str(data), "--minutes", "0.5", "--quiet"]) == 0
    for steps in ("3", "5"):
        assert main(["train", "autoencoder", "--config", "tiny", "--data", str(data),
                     "--run-dir", str(run), "--steps", steps, "--workers", "0",
                     "--no-progress", "--set", "autoencoder_training.sample_every=2"]) == 0
    assert latest_checkpoint(run).name == "step_00000005"
    assert sorted(p.name for p in (run / "samples").glob("*.wav"))  # audio samples written
    assert (run / "tb").is_dir() and any((run / "tb").iterdir())  # TensorBoard logs
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows][-1] == 5 and all(np.isfinite(r["loss"]) for r in rows)
    assert all(r["wave"] > 0 and r["stft"] > 0 for r in rows)  # time- and frequency-domain terms


def test_fresh_run_from_committed_weights(tmp_path: Path, dataset: Path, ae_run: Path) -> None:
    """A new machine: the committed EMA fp16 weights seed a fresh run at their step."""
    weights = tmp_path / "ae.fp16.safetensors"
    assert main(["train", "export-weights", "--run-dir", str(ae_run), "--out", str(weights)]) == 0
    run = tmp_path / "fresh"
    assert main(["train", "autoencoder", "--config", "tiny", "--data", str(dataset), "--run-dir",
                 str(run), "--steps", "6", "--workers", "0", "--no-progress",
                 "--init-from", str(weights), "--set", "autoencoder_training.log_every=1",
                 "--set", "autoencoder_training.sample_every=0"]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [5, 6]  # continued from step 4, not from 0
    bad = tmp_path / "bad"
    assert main(["train", "autoencoder", "--config", "small", "--data", str(dataset),
                 "--run-dir", str(bad), "--steps", "6", "--init-from", str(weights)]) == 2


def test_encoder_floor_finetune(tmp_path: Path, dataset: Path, ae_weights: Path,
                                music_clip) -> None:
    """`train encoder-floor`: only the encoder moves; a noise floor derails it less after."""
    from jenbridge.training.floor_task import add_floor, latent_snr_db

    run = tmp_path / "floor"
    assert main(["train", "encoder-floor", "--autoencoder", str(ae_weights), "--data",
                 str(dataset), "--run-dir", str(run), "--steps", "40", "--floor=-50,-40",
                 "--lr", "1e-3", "--batch-size", "2", "--crop-seconds", "0.5", "--workers",
                 "0", "--no-progress"]) == 0
    out = tmp_path / "floor.safetensors"
    assert main(["train", "export-weights", "--run-dir", str(run), "--out", str(out),
                 "--fp32"]) == 0
    before, w0 = load_model(ae_weights)
    after, w1 = load_model(out)
    assert w1.kind == "autoencoder" and w1.extras["encoder_floor_db"] == [-50.0, -40.0]
    moved = {k for k in w0.state if not torch.equal(w0.state[k], w1.state[k])}
    assert moved and all(k.split(".")[0] in ("enc_in", "enc_norm", "enc_blocks", "downs",
                                             "enc_out_norm", "to_latent") for k in moved)
    audio, _ = music_clip
    hop = before.latent_hop
    x = torch.as_tensor(audio[None, :, : audio.shape[1] // hop * hop])
    noisy = add_floor(x, torch.tensor([-45.0]), torch.Generator().manual_seed(0))
    with torch.no_grad():
        target = before.encode_normalized(x)
        snr_before = latent_snr_db(target, before.encode_normalized(noisy))
        snr_after = latent_snr_db(target, after.encode_normalized(noisy))
    print(f"latent SNR at a -45 dBFS floor: {snr_before:.2f} -> {snr_after:.2f} dB")
    assert snr_after > snr_before + 1.0, (snr_before, snr_after)
    assert main(["train", "encoder-floor", "--autoencoder", str(ae_weights), "--data",
                 str(dataset), "--run-dir", str(tmp_path / "bad"), "--floor=-40,-60"]) == 2


def test_decoder_finetune_keeps_the_latent_space(tmp_path: Path, dataset: Path,
                                                 ae_weights: Path, music_clip) -> None:
    """`trainable=decoder` with the discriminator: the encoder and latent statistics stay bit
    for bit (a diffusion model trained on them stays valid), the decoder moves, and the
    served round trip (normalize -> project -> decode) of real audio gets closer."""
    from jenbridge.losses.stft_loss import MultiResolutionSTFTLoss

    run = tmp_path / "dec"
    args = ["train", "autoencoder", "--config", "tiny", "--data", str(dataset), "--run-dir",
            str(run), "--workers", "0", "--no-progress",
            "--set", "autoencoder_training.trainable=decoder",
            "--set", "autoencoder_training.adversarial=true",
            "--set", "autoencoder_training.lr=0.001", "--set", "autoencoder_training.log_every=1",
            "--set", "autoencoder_training.sample_every=0"]
    assert main([*args, "--steps", "40"]) == 2  # no autoencoder to fine-tune: refused
    assert main([*args, "--steps", "40", "--init-from", str(ae_weights)]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all({"adv", "fm", "disc"} <= set(r) for r in rows)
    out = tmp_path / "dec.safetensors"
    assert main(["train", "export-weights", "--run-dir", str(run), "--out", str(out),
                 "--fp32"]) == 0
    before, w0 = load_model(ae_weights)
    after, w1 = load_model(out)
    moved = {k for k in w0.state if not torch.equal(w0.state[k].float(), w1.state[k].float())}
    encoder = ("enc_", "downs.", "to_latent.", "norm.")
    assert moved and not any(k.startswith(encoder) for k in moved), sorted(moved)
    assert any(k.startswith(("dec_blocks.", "head.")) for k in moved)
    # the statistics are the init's, and so is the record of how much audio they came from
    assert w1.extras["stats_seconds"] == w0.extras["stats_seconds"] > 0
    audio, _ = music_clip
    hop = before.latent_hop
    x = torch.from_numpy(audio[None, :, : (audio.shape[1] // hop) * hop])
    loss = MultiResolutionSTFTLoss()
    with torch.no_grad():
        y = before.encode_normalized(x)
        torch.testing.assert_close(after.encode_normalized(x), y)
        d0 = float(loss(before.decode_normalized(y), x))
        d1 = float(loss(after.decode_normalized(y), x))
    assert d1 < d0, (d0, d1)

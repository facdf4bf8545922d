"""Configs: every shipped YAML builds its models; strict validation names the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from jenbridge.cli import main
from jenbridge.conditions import MusicalConditions, check_bpm, check_meter, key_code, key_name
from jenbridge.config import ConfigError, load_config, shipped_configs
from jenbridge.models.builders import build_autoencoder, build_unet


@pytest.mark.parametrize("name", shipped_configs())
def test_every_config_builds(name: str) -> None:
    cfg = load_config(name)
    with torch.device("meta"):  # shapes and counts only: the paper size needs no memory
        ae = build_autoencoder(cfg.autoencoder)
        unet = build_unet(cfg.unet, cfg.autoencoder.latent_channels)
    assert sum(p.numel() for p in ae.parameters()) > 0
    n = sum(p.numel() for p in unet.parameters())
    if name == "paper":
        assert 700e6 <= n <= 780e6, n  # JEN-1 reports 726M-746M
    assert cfg.autoencoder.latent_hop * cfg.autoencoder.latent_rate == cfg.autoencoder.sample_rate


def test_shipped_configs_include_the_three_sizes() -> None:
    assert {"tiny", "small", "paper"} <= set(shipped_configs())


@pytest.mark.parametrize(
    ("yaml_text", "needle"),
    [
        ("name: x\nunet:\n  chanels: 3\n", "unet.chanels: unknown key"),
        ("name: x\nunet:\n  channels: wide\n", "unet.channels"),
        ("name: x\nunet:\n  channels: 3.5\n", "unet.channels"),
        ("name: x\ndiffusion:\n  prediction: x0\n", "diffusion.prediction"),
        ("name: x\ndiffusion:\n  inpaint_fraction: [0.9, 0.1]\n", "inpaint_fraction"),
        ("name: x\nautoencoder:\n  n_fft: 1000\n  hop: 256\n", "multiple of hop"),
        ("name: x\nunet:\n  res_blocks: [1]\n", "one entry per level"),
        ("name: x\nname: y\n", "duplicate key 'name'"),
        ("- just\n- a list\n", "mapping"),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_strict_validation_names_the_key(tmp_path: Path, yaml_text: str, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert needle in str(err.value) and str(path) in str(err.value)


def test_overrides() -> None:
    cfg = load_config("tiny", ["unet.channels=24", "diffusion.guidance=3.5"])
    assert cfg.unet.channels == 24 and cfg.diffusion.guidance == 3.5
    with pytest.raises(ConfigError, match=r"unet\.nope: unknown key"):
        load_config("tiny", ["unet.nope=1"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config("tiny", ["unet.channels"])
    with pytest.raises(ConfigError, match="no config 'huge'"):
        load_config("huge")


def test_configs_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["configs", "--params", "tiny", "paper"]) == 0
    out = capsys.readouterr().out
    assert "tiny: latent 32 ch" in out and "U-Net 7" in out  # paper U-Net 7xx M params
    assert main(["configs", "nonexistent"]) == 2


def test_musical_condition_codes() -> None:
    assert key_code("A minor") == key_code("Am") == 1 + 9 + 12
    assert key_code("Eb major") == key_code("D#") == 1 + 3
    assert key_code("none") == 25 and key_code(None) == 0
    for code in range(1, 25):
        assert key_code(key_name(code)) == code
    assert check_meter("7/8") == 7 and check_meter(None) == 0
    assert check_bpm(None) == 0.0 and check_bpm(120) == 120.0
    for bad in ("H minor", "C dorian", 26, -1):
        with pytest.raises(ValueError):
            key_code(bad)
    for bad_bpm in (-5, 1e6, float("nan"), float("inf"), 10):
        with pytest.raises(ValueError, match="bpm"):
            check_bpm(bad_bpm)
    for bad_meter in (0, 17, "4/x", 2.5):
        with pytest.raises(ValueError, match="meter"):
            check_meter(bad_meter)
    assert MusicalConditions.parse(128, "F#m", "6/8") == MusicalConditions(128.0, 1 + 6 + 12, 6)

"""Model bundles: the folder the torch-free engine serves from (no torch import here).

A bundle is a folder with `manifest.json` and the files it lists:

  text_encoder.onnx  input_ids int64 (B, L), attention_mask int64 (B, L) -> states f32 (B, L, D)
  encoder.onnx       audio f32 (B, C, N), N a multiple of latent_hop   -> latent f32 (B, K, N/hop)
  unet.onnx          x (B,K,T), t (B,), masked (B,K,T), mask (B,1,T), text (B,L,D),
                     text_mask (B,L), bpm (B,), key int64 (B,), meter int64 (B,), causal (B,)
                     -> prediction f32 (B, K, T)      [all float32 unless marked int64]
  decoder.onnx       latent f32 (B, K, T) -> audio f32 (B, C, T*latent_hop)
  tokenizer.json     the text encoder's `tokenizers` file

Latents are the autoencoder's *normalized* latents (JEN-1 whitening is inside encoder/decoder).
The manifest also carries the full model config, the sampler defaults, what the model was
trained on, its evaluation figures, and the sha256 of every file: a bundle whose files do not
match is refused with a message naming the file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "jenbridge-bundle"
VERSION = 1
GRAPHS = ("text_encoder", "encoder", "unet", "decoder")


class BundleError(ValueError):
    """A bundle is missing, incomplete, corrupt or of an unknown format; the message says which."""


@dataclass(frozen=True)
class SamplerDefaults:
    timesteps: int
    beta_start: float
    beta_end: float
    prediction: str  # "eps" | "v"
    sampler: str  # "ddim" | "dpmpp_2m"
    steps: int
    guidance: float


@dataclass(frozen=True)
class Manifest:
    name: str
    sample_rate: int
    channels: int
    latent_hop: int  # audio samples per latent frame
    latent_channels: int  # K, normalized latent channels the U-Net sees
    text_dim: int
    max_tokens: int
    sampler: SamplerDefaults
    files: dict[str, str]  # file name -> sha256 hex
    config: dict[str, Any]  # the ModelConfig that built the weights
    opset: int
    # how weights are stored on disk: "fp32", "fp16", "int8" (both widened to fp32 when ONNX
    # Runtime folds the graph at load), or per graph "text_encoder=int8,encoder=fp16,..."
    weights_dtype: str = "fp32"
    training: dict[str, Any] = field(default_factory=dict)  # data, steps, hours
    evaluation: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    version: int = VERSION

    @property
    def latent_rate(self) -> float:
        return self.sample_rate / self.latent_hop

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    tmp = folder / "manifest.json.tmp"
    tmp.write_text(manifest.to_json())
    tmp.replace(folder / "manifest.json")
    return folder / "manifest.json"


def read_manifest(folder: str | Path, verify: bool = True) -> Manifest:
    """Read and check a bundle's manifest; with verify, every listed file's sha256 too."""
    folder = Path(folder)
    path = folder / "manifest.json"
    if not folder.is_dir():
        raise BundleError(f"model bundle {folder} does not exist (or is not a folder)")
    if not path.is_file():
        raise BundleError(f"{folder} is not a model bundle: no manifest.json")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise BundleError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BundleError(f"{path}: not a {FORMAT} manifest")
    if data.get("version") != VERSION:
        raise BundleError(f"{path}: bundle format version {data.get('version')} is not "
                          f"supported (this jenbridge reads version {VERSION})")
    try:
        data["sampler"] = SamplerDefaults(**data["sampler"])
        manifest = Manifest(**data)
    except (TypeError, KeyError) as err:
        raise BundleError(f"{path}: malformed manifest ({err})") from None
    needed = {f"{g}.onnx" for g in GRAPHS} | {"tokenizer.json"}
    missing = sorted(needed - set(manifest.files))
    if missing:
        raise BundleError(f"{path}: manifest lists no {', '.join(missing)}")
    for name, digest in manifest.files.items():
        f = folder / name
        if not f.is_file():
            raise BundleError(f"bundle {folder}: {name} is missing")
        if verify and sha256(f) != digest:
            raise BundleError(f"bundle {folder}: {name} does not match its sha256 in the "
                              "manifest (corrupt or modified); re-export or re-install it")
    return manifest

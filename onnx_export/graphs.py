"""Export of each bundle graph to ONNX (the default, dynamo exporter), with dynamic axes.

Graph contracts (see jenbridge/bundle.py); B batch, T latent frames, L tokens, K latent channels,
C audio channels, hop = latent_hop:

  text_encoder  input_ids, attention_mask int64 (B, L)           -> states (B, L, D)
  encoder       audio (B, C, T*hop)                              -> latent (B, K, T)
  unet          x, t, masked, mask, text, text_mask, bpm, key, meter, causal -> prediction (B, K, T)
  decoder       latent (B, K, T)                                 -> audio (B, C, T*hop)

B, T and L are dynamic (L up to max_tokens). Every file is written whole (no external .data
file) unless it passes protobuf's 2 GB limit; then its weights go into `<file>.data` beside it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import onnx
import torch
from torch import nn

from jenbridge.models.autoencoder import NormalizedDecoder, NormalizedEncoder
from jenbridge.models.text import export_onnx as export_text_onnx
from onnx_export.files import PROTOBUF_LIMIT, make_single_file
from onnx_export.sources import ExportModels

OPSET = 18
UNET_INPUTS = ("x", "t", "masked", "mask", "text", "text_mask", "bpm", "key", "meter", "causal")


def unet_inputs(batch: int, frames: int, tokens: int, latent_channels: int, text_dim: int,
                generator: torch.Generator, conditions: bool = True) -> dict[str, torch.Tensor]:
    """Random U-Net inputs (the bundle's names, dtypes and shapes), deterministic in `generator`.

    conditions=True: real text tokens (the last ones padding), bpm/key/meter set, row 0
    bidirectional and the others alternating causal; False: the null condition (text_mask all
    zero, bpm/key/meter 0) and all rows bidirectional. mask is random 0/1 per frame.
    """
    b, k, n = batch, latent_channels, frames
    rows = torch.arange(b)
    text_mask = (torch.arange(tokens)[None, :] < tokens - rows[:, None] % 3).float()  # (B, L)
    if not conditions:
        text_mask = torch.zeros(b, tokens)
    return {
        "x": torch.randn(b, k, n, generator=generator),
        "t": torch.rand(b, generator=generator) * 999.0,
        "masked": torch.randn(b, k, n, generator=generator),
        "mask": (torch.rand(b, 1, n, generator=generator) > 0.5).float(),
        "text": torch.randn(b, tokens, text_dim, generator=generator) * text_mask[..., None],
        "text_mask": text_mask,
        "bpm": (60.0 + 20.0 * rows).float() if conditions else torch.zeros(b),
        "key": (1 + rows % 25) if conditions else torch.zeros(b, dtype=torch.int64),
        "meter": (1 + rows % 16) if conditions else torch.zeros(b, dtype=torch.int64),
        "causal": (rows % 2).float() if conditions else torch.zeros(b),
    }


@contextmanager
def quiet_exporter() -> Iterator[None]:
    """Silence what the exporter says about matters that do not concern these graphs: axis
    names shared by several inputs (intended), torchvision ops it cannot register, and the
    optimizer's log of every rewrite."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def _export(model: nn.Module, args: tuple[torch.Tensor, ...], kwargs: dict[str, torch.Tensor],
            path: Path, input_names: list[str], output_names: list[str],
            dynamic_shapes: dict[str, dict[int, object]], opset: int) -> Path:
    """torch.onnx.export (dynamo) to `path`, quietly; weights inside the file under 2 GB."""
    n_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    with quiet_exporter():
        program = torch.onnx.export(
            model, args, kwargs=kwargs, input_names=input_names, output_names=output_names,
            dynamic_shapes=dynamic_shapes, opset_version=opset, dynamo=True, optimize=True,
            verbose=False,
        )
    assert program is not None
    program.save(str(path), external_data=n_bytes > PROTOBUF_LIMIT)
    return path


def export_encoder(models: ExportModels, path: Path, opset: int = OPSET) -> Path:
    """encoder.onnx = Autoencoder.encode_normalized: audio (B, C, T*hop) -> latent (B, K, T)."""
    ae = models.autoencoder
    hop = ae.latent_hop
    frames = torch.export.Dim("frames", min=1)
    audio = torch.randn(2, ae.channels, 5 * hop, generator=torch.Generator().manual_seed(0)) * 0.1
    _export(NormalizedEncoder(ae).eval(), (audio,), {}, path, ["audio"], ["latent"],
            {"audio": {0: torch.export.Dim("batch"), 2: hop * frames}}, opset)
    _name_axes(path, {"audio": ("batch", None, "samples"), "latent": ("batch", None, "frames")})
    return path


def export_decoder(models: ExportModels, path: Path, opset: int = OPSET) -> Path:
    """decoder.onnx = Autoencoder.decode_normalized: latent (B, K, T) -> audio (B, C, T*hop)."""
    y = torch.randn(2, models.latent_channels, 5, generator=torch.Generator().manual_seed(0))
    _export(NormalizedDecoder(models.autoencoder).eval(), (y,), {}, path, ["latent"], ["audio"],
            {"y": {0: "batch", 2: "frames"}}, opset)
    _name_axes(path, {"latent": ("batch", None, "frames"), "audio": ("batch", None, "samples")})
    return path


def export_unet(models: ExportModels, path: Path, opset: int = OPSET) -> Path:
    """unet.onnx = UNet1D.forward over the bundle's ten inputs -> prediction (B, K, T)."""
    unet = models.unet
    # an example length that is not a multiple of the U-Net's stride, so the right padding
    # stays a computed (not constant-folded) size
    frames = 4 * unet.stride + 3
    example = unet_inputs(2, frames, 7, unet.latent_channels, unet.text_dim,
                          torch.Generator().manual_seed(0))
    axes: dict[str, dict[int, object]] = {name: {0: "batch"} for name in UNET_INPUTS}
    for name in ("x", "masked", "mask"):
        axes[name][2] = "frames"
    for name in ("text", "text_mask"):
        axes[name][1] = "tokens"
    _export(unet, (), example, path, list(UNET_INPUTS), ["prediction"], axes, opset)
    _name_axes(path, {"prediction": ("batch", None, "frames")})
    return path


def export_text_encoder(models: ExportModels, path: Path, opset: int = OPSET) -> Path:
    """text_encoder.onnx: (input_ids, attention_mask) int64 (B, L) -> states (B, L, D)."""
    # models.text.export_onnx leaves the exporter's progress lines on (stdout): drop them
    with quiet_exporter(), contextlib.redirect_stdout(io.StringIO()):
        export_text_onnx(models.text_encoder, path, opset)
    _name_axes(path, {"input_ids": ("batch", "tokens"), "attention_mask": ("batch", "tokens"),
                      "states": ("batch", "tokens", None)})
    return path


EXPORTERS: dict[str, Callable[[ExportModels, Path, int], Path]] = {
    "text_encoder": export_text_encoder,
    "encoder": export_encoder,
    "unet": export_unet,
    "decoder": export_decoder,
}


def _name_axes(path: Path, axes: dict[str, tuple[str | None, ...]]) -> None:
    """Give the dynamic axes of graph inputs/outputs readable names (the exporter leaves some as
    internal symbols such as `s76`); None keeps an axis as it is. Rewrites the file in place."""
    model = onnx.load(str(path), load_external_data=False)
    for value in list(model.graph.input) + list(model.graph.output):
        names = axes.get(value.name)
        if names is None:
            continue
        dims = value.type.tensor_type.shape.dim
        if len(dims) != len(names):
            raise RuntimeError(f"{path.name}: {value.name} has {len(dims)} axes, "
                               f"expected {len(names)}")
        for dim, name in zip(dims, names):
            if name is not None:
                dim.dim_param = name
    onnx.save(model, str(path))


def export_graph(name: str, models: ExportModels, path: Path, opset: int = OPSET) -> Path:
    """Export graph `name` (one of bundle.GRAPHS) to `path`, single-file where under 2 GB."""
    EXPORTERS[name](models, path, opset)
    return make_single_file(path)

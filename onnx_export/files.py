"""ONNX files on disk: protobuf's 2 GB limit, external data, single-file folding, sizes.

torch-free (onnx only), so a bundle can be re-stored (`convert_bundle`) without torch.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import onnx

PROTOBUF_LIMIT = 2**31 - 2**27  # bytes above which a graph keeps its weights in `<file>.data`


def onnx_files(path: Path) -> list[Path]:
    """The files one graph occupies: the .onnx and its external data file if any."""
    data = path.with_name(path.name + ".data")
    return [path, data] if data.exists() else [path]


def size_mb(path: Path) -> float:
    return math.fsum(f.stat().st_size for f in onnx_files(path)) / 1e6


def save_model(model: onnx.ModelProto, path: Path) -> Path:
    """Write `model` to `path` as one file, or with `<file>.data` beside it past the 2 GB limit
    (a stale data file from an earlier save is removed first)."""
    data = path.with_name(path.name + ".data")
    data.unlink(missing_ok=True)
    external = model.ByteSize() > PROTOBUF_LIMIT
    onnx.save(model, str(path), save_as_external_data=external,
              location=data.name if external else None)
    return path


def make_single_file(path: Path) -> Path:
    """Fold a graph's external data file back into it when the whole stays under 2 GB."""
    files = onnx_files(path)
    if len(files) == 1 or sum(f.stat().st_size for f in files) > PROTOBUF_LIMIT:
        return path
    model = onnx.load(str(path))  # reads the external data in
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        out = Path(tmp) / path.name
        onnx.save(model, str(out), save_as_external_data=False)
        for f in files:
            f.unlink()
        shutil.move(str(out), str(path))
    return path

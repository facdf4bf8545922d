"""ONNX export: each graph and the whole sampler pipeline match torch under ONNX Runtime (CPU),
the bundle is complete and refused when tampered with, fp16 weight storage, the atomic writer,
and the export command's errors for user mistakes.

Tolerances (fp32): every graph's max abs error < 1e-4 against torch, at batch sizes and lengths
other than the export examples. All outputs are near unit scale (normalized latents, U-Net
predictions, audio in [-1, 1], MiniLM states |x| < ~10), so the bound is absolute. Pipeline:
relative L2 < 1e-3 for the final latent and the decoded audio.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from jenbridge.bundle import GRAPHS, BundleError, read_manifest
from jenbridge.config import ModelConfig, config_from_dict
from jenbridge.models.builders import build_autoencoder, build_unet
from jenbridge.training.checkpoint import save_weights
from onnx_export.__main__ import main as export_main
from onnx_export.bundle_writer import convert_bundle, staged
from onnx_export.files import make_single_file
from onnx_export.fp16 import fp16_fraction
from onnx_export.parity import (
    check_bundle,
    cpu_session,
    errors,
    graph_cases,
    pipeline_parity,
    session_feed,
)
from onnx_export.quantize import measure
from onnx_export.sources import ExportModels, build_random, load_trained


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_models(tiny_bundle: Path, tiny_config: ModelConfig) -> ExportModels:
    """The torch models `tiny_bundle` was exported from (same config and seed)."""
    torch.set_num_threads(1)
    return build_random(tiny_config, seed=read_manifest(tiny_bundle).training["seed"])


# The bundle --------------------------------------------------------------------------------


def test_manifest_and_graph_signatures(tiny_bundle: Path, tiny_models: ExportModels,
                                       tiny_config: ModelConfig) -> None:
    m = read_manifest(tiny_bundle)
    assert sorted(m.files) == sorted([f"{g}.onnx" for g in GRAPHS] + ["tokenizer.json"])
    assert sorted(p.name for p in tiny_bundle.iterdir()) == sorted([*m.files, "manifest.json"])
    assert not list(tiny_bundle.parent.glob(".*partial*"))  # the staging folder is gone
    ae = tiny_config.autoencoder
    assert (m.sample_rate, m.channels, m.latent_hop) == (ae.sample_rate, ae.channels, ae.latent_hop)
    assert m.latent_channels == tiny_models.latent_channels < ae.latent_channels
    assert (m.text_dim, m.max_tokens) == (384, tiny_config.text.max_tokens)
    d = tiny_config.diffusion
    assert (m.sampler.prediction, m.sampler.sampler, m.sampler.steps, m.sampler.guidance,
            m.sampler.timesteps) == (d.prediction, d.sampler, d.steps, d.guidance, d.timesteps)
    assert config_from_dict(m.config) == tiny_config
    assert (m.opset, m.weights_dtype, m.training["random_weights"]) == (18, "fp32", True)

    k, d_text = m.latent_channels, m.text_dim
    expected = {
        "text_encoder": {"input_ids": ("int64", ["batch", "tokens"]),
                         "attention_mask": ("int64", ["batch", "tokens"])},
        "encoder": {"audio": ("float", ["batch", 2, "samples"])},
        "unet": {"x": ("float", ["batch", k, "frames"]), "t": ("float", ["batch"]),
                 "masked": ("float", ["batch", k, "frames"]),
                 "mask": ("float", ["batch", 1, "frames"]),
                 "text": ("float", ["batch", "tokens", d_text]),
                 "text_mask": ("float", ["batch", "tokens"]), "bpm": ("float", ["batch"]),
                 "key": ("int64", ["batch"]), "meter": ("int64", ["batch"]),
                 "causal": ("float", ["batch"])},
        "decoder": {"latent": ("float", ["batch", k, "frames"])},
    }
    outputs = {"text_encoder": ["batch", "tokens", d_text], "encoder": ["batch", k, "frames"],
               "unet": ["batch", k, "frames"], "decoder": ["batch", 2, "samples"]}
    for graph, inputs in expected.items():
        session = cpu_session(tiny_bundle / f"{graph}.onnx")
        got = {i.name: (i.type[len("tensor("):-1], i.shape) for i in session.get_inputs()}
        assert got == inputs, graph
        assert session.get_outputs()[0].shape == outputs[graph], graph


@pytest.mark.parametrize("graph", GRAPHS)
def test_graph_parity(tiny_bundle: Path, tiny_models: ExportModels, graph: str) -> None:
    """ORT vs torch at batch 1/2/3 and lengths other than the export example (1 frame, odd
    counts; U-Net with conditions set and unset, causal and not)."""
    session = cpu_session(tiny_bundle / f"{graph}.onnx", threads=1)
    for inputs, fn in graph_cases(tiny_models)[graph]:
        with torch.no_grad():
            ref = fn(inputs).numpy()
        out = session.run(None, session_feed(inputs))[0]
        e = errors(out, ref)
        assert e["max_abs"] < 1e-4, (graph, {k: tuple(v.shape) for k, v in inputs.items()}, e)


def test_encoder_on_digital_silence_and_clicks(tiny_bundle: Path,
                                               tiny_models: ExportModels) -> None:
    """Regression: the exporter's optimizer dropped a `+ 1e-12` floor, so silent STFT bins gave
    0 ** -0.7 * 0 = NaN in ONNX Runtime (torch was fine). Silence and sparse clicks must give
    finite latents equal to torch's."""
    session = cpu_session(tiny_bundle / "encoder.onnx", threads=1)
    hop = tiny_models.config.autoencoder.latent_hop
    clicks = np.zeros((1, 2, hop * 64), np.float32)
    clicks[..., :: hop * 16] = 0.8
    for audio in (np.zeros((1, 2, hop * 64), np.float32), clicks):
        out = session.run(None, {session.get_inputs()[0].name: audio})[0]
        assert np.isfinite(out).all()
        with torch.no_grad():
            ref = tiny_models.autoencoder.encode_normalized(torch.from_numpy(audio)).numpy()
        assert np.abs(out - ref).max() < 1e-3 * max(1.0, float(np.abs(ref).max()))


@pytest.mark.parametrize("sampler", ["ddim", "dpmpp_2m"])
@pytest.mark.parametrize("conditions", [True, False], ids=["conditions", "null"])
def test_pipeline_parity(tiny_bundle: Path, tiny_models: ExportModels, sampler: str,
                         conditions: bool) -> None:
    """The same guided sampler over the torch U-Net and over unet.onnx, from the same noise,
    then through each decoder: text, inpainting and continuation rows, conditions set or null."""
    r = pipeline_parity(tiny_bundle, tiny_models, ["warm analog bass", "slow ambient pads"],
                        frames=19, conditions=conditions, sampler=sampler, threads=1)
    assert r.latent["rel_l2"] < 1e-3, r.latent
    assert r.audio["rel_l2"] < 1e-3, r.audio


def _view(bundle: Path, tmp: Path) -> Path:
    """A writable copy of the bundle: manifest and tokenizer copied, graphs linked."""
    view = tmp / "bundle"
    view.mkdir()
    for f in bundle.iterdir():
        if f.suffix == ".onnx":
            os.symlink(f, view / f.name)
        else:
            shutil.copyfile(f, view / f.name)
    return view


def _edit_manifest(view: Path, change) -> None:
    data = json.loads((view / "manifest.json").read_text())
    change(data)
    (view / "manifest.json").write_text(json.dumps(data))


def _append_byte(path: Path) -> None:
    with path.open("ab") as f:
        f.write(b" ")


TAMPERING = {
    "modified file": (lambda v: _append_byte(v / "tokenizer.json"),
                      "tokenizer.json does not match its sha256"),
    "missing file": (lambda v: (v / "unet.onnx").unlink(), "unet.onnx is missing"),
    "no manifest": (lambda v: (v / "manifest.json").unlink(), "no manifest.json"),
    "not json": (lambda v: (v / "manifest.json").write_text('{"format": '), "not valid JSON"),
    "other format": (lambda v: _edit_manifest(v, lambda d: d.update(format="zip")),
                     "not a jenbridge-bundle manifest"),
    "other version": (lambda v: _edit_manifest(v, lambda d: d.update(version=2)),
                      "version 2 is not supported"),
    "missing field": (lambda v: _edit_manifest(v, lambda d: d.pop("latent_hop")),
                      "malformed manifest"),
    "unknown field": (lambda v: _edit_manifest(v, lambda d: d.update(extra=1)),
                      "malformed manifest"),
    "graph not listed": (lambda v: _edit_manifest(v, lambda d: d["files"].pop("decoder.onnx")),
                         "lists no decoder.onnx"),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampered_bundle_is_refused(tiny_bundle: Path, tmp_path: Path, case: str) -> None:
    view = _view(tiny_bundle, tmp_path)
    read_manifest(view)  # the untouched copy is fine
    tamper, message = TAMPERING[case]
    tamper(view)
    with pytest.raises(BundleError, match=message):
        read_manifest(view)


# fp16 weights ------------------------------------------------------------------------------


def test_fp16_bundle(tiny_bundle: Path, tiny_models: ExportModels, tmp_path: Path) -> None:
    """fp16-stored weights: about half the size, fp32 inputs and compute, errors of the
    weights' rounding (~5e-4 relative), not fp32 parity."""
    out = tmp_path / "tiny16"
    m = convert_bundle(tiny_bundle, out, "fp16")
    assert m == read_manifest(out) and m.weights_dtype == "fp16"
    text32, text16 = (b / "text_encoder.onnx" for b in (tiny_bundle, out))
    assert 0.45 < text16.stat().st_size / text32.stat().st_size < 0.55
    assert fp16_fraction(onnx.load(str(text16))) > 0.95
    for graph, cases in graph_cases(tiny_models).items():
        session = cpu_session(out / f"{graph}.onnx", threads=1)
        assert [i.type for i in session.get_inputs()] == [
            i.type for i in cpu_session(tiny_bundle / f"{graph}.onnx").get_inputs()]
        for inputs, fn in cases:
            with torch.no_grad():
                e = errors(session.run(None, session_feed(inputs))[0], fn(inputs).numpy())
            assert e["rel"] < 1e-2, (graph, e)
    r = pipeline_parity(out, tiny_models, ["warm analog bass", ""], frames=11, threads=1)
    assert r.latent["rel_l2"] < 1e-2 and r.audio["rel_l2"] < 1e-2, r
    with pytest.raises(ValueError, match="only an fp32 bundle"):
        convert_bundle(out, tmp_path / "again", "fp32")


def test_check_report(tiny_bundle: Path, tiny_models: ExportModels) -> None:
    """What `jenbridge export --check` prints: one line per graph, then both pipelines."""
    lines = check_bundle(tiny_bundle, tiny_models, threads=1, timing=False)
    assert len(lines) == 1 + len(GRAPHS) + 2
    assert all(g in "".join(lines) for g in GRAPHS) and "null conditions" in lines[-1]


def test_int8_unet_is_measured(tiny_bundle: Path) -> None:
    """The int8 tool (not shipped) quantizes the U-Net's MatMul/Gemm weights and runs."""
    m = measure(tiny_bundle, "unet", threads=1, repeats=1)
    assert m["int8_mb"] < m["fp32_mb"] and m["rel"] < 0.05, m


# Writer pieces -----------------------------------------------------------------------------


def test_staged_writes_all_or_nothing(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    with pytest.raises(RuntimeError), staged(out) as tmp:
        (tmp / "half.onnx").write_bytes(b"x")
        raise RuntimeError("export failed")
    assert list(tmp_path.iterdir()) == []  # neither the bundle nor the staging folder
    with staged(out) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(ValueError, match="--force"), staged(out):
        pass
    with staged(out, force=True) as tmp:
        (tmp / "b").write_text("2")
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]
    assert [p.name for p in out.iterdir()] == ["b"]


def test_make_single_file_folds_external_data(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(4096, dtype=np.float32).reshape(64, 64), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])], [w])
    path = tmp_path / "g.onnx"
    model = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, str(path), save_as_external_data=True,
              location="g.onnx.data", size_threshold=0)
    assert (tmp_path / "g.onnx.data").exists()
    make_single_file(path)
    assert [p.name for p in tmp_path.iterdir()] == ["g.onnx"]
    x = np.ones((1, 64), np.float32)
    np.testing.assert_array_equal(cpu_session(path).run(None, {"x": x})[0],
                                  x @ numpy_helper.to_array(w))


# Trained weights and the command's errors ---------------------------------------------------


@pytest.fixture(scope="module")
def weights_files(tiny_models: ExportModels, tmp_path_factory: pytest.TempPathFactory):
    """(autoencoder with stats, autoencoder without stats, diffusion) weights files of tiny."""
    folder = tmp_path_factory.mktemp("weights")
    cfg, ae, k = tiny_models.config, tiny_models.autoencoder, tiny_models.latent_channels
    save_weights(folder / "ae.safetensors", ae.state_dict(), "autoencoder", 120, cfg,
                 {"latent_channels": k, "stats_seconds": 8.0})
    fresh = build_autoencoder(cfg.autoencoder).state_dict()
    save_weights(folder / "ae_nostats.safetensors", fresh, "autoencoder", 120, cfg)
    save_weights(folder / "unet.safetensors", tiny_models.unet.state_dict(), "diffusion", 340,
                 cfg, {"latent_channels": k})
    return folder / "ae.safetensors", folder / "ae_nostats.safetensors", folder / "unet.safetensors"


def test_load_trained(weights_files, tiny_models: ExportModels) -> None:
    ae, _, unet = weights_files
    models = load_trained(ae, unet)
    assert models.latent_channels == tiny_models.latent_channels
    assert models.training["autoencoder_steps"] == 120
    assert models.training["diffusion_steps"] == 340
    assert models.training["latent_stats_seconds"] == 8.0
    for a, b in zip(models.unet.state_dict().values(), tiny_models.unet.state_dict().values()):
        assert torch.equal(a, b)


def _other_config(cfg: ModelConfig, **changes) -> ModelConfig:
    data = cfg.to_dict()
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        data[section][key] = value
    return config_from_dict(data)


def test_export_command_refuses_mistakes(weights_files, tiny_models: ExportModels,
                                         tmp_path: Path, capsys) -> None:
    ae, ae_nostats, unet = weights_files
    cfg, k = tiny_models.config, tiny_models.latent_channels
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(os.urandom(256))
    other_ae = tmp_path / "unet_other_ae.safetensors"
    save_weights(other_ae, tiny_models.unet.state_dict(), "diffusion", 1,
                 _other_config(cfg, autoencoder__width=48), {"latent_channels": k})
    other_k = tmp_path / "unet_other_k.safetensors"
    bigger = build_unet(cfg.unet, k + 1)
    save_weights(other_k, bigger.state_dict(), "diffusion", 1, cfg, {"latent_channels": k + 1})
    narrow = tmp_path / "unet_narrow_text.safetensors"
    cfg32 = _other_config(cfg, unet__text_dim=32)
    narrow_unet = build_unet(cfg32.unet, k)
    save_weights(narrow, narrow_unet.state_dict(), "diffusion", 1, cfg32, {"latent_channels": k})
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    out = ["--out", str(tmp_path / "b")]

    cases = [
        (["--autoencoder", str(junk), "--diffusion", str(unet), *out],
         "is not a jenbridge weights file"),
        (["--autoencoder", str(tmp_path / "nope.safetensors"), "--diffusion", str(unet), *out],
         "does not exist"),
        (["--autoencoder", str(unet), "--diffusion", str(unet), *out],
         "holds diffusion weights, expected autoencoder"),
        (["--autoencoder", str(ae_nostats), "--diffusion", str(unet), *out],
         "has no latent statistics"),
        (["--autoencoder", str(ae), "--diffusion", str(other_ae), *out],
         r"another autoencoder config .*autoencoder\.width differ"),
        (["--autoencoder", str(ae), "--diffusion", str(other_k), *out],
         f"takes {k + 1} latent channels but .* keeps {k}"),
        (["--autoencoder", str(ae), "--diffusion", str(narrow), *out],
         "384-wide token states but the U-Net takes unet.text_dim = 32"),
        (["--autoencoder", str(ae), *out], "--autoencoder and --diffusion go together"),
        (["--random", "tiny", "--autoencoder", str(ae), "--diffusion", str(unet), *out],
         "give one source"),
        ([*out], "give one source"),
        (["--random", "nosuchconfig", *out], "no config 'nosuchconfig'"),
        (["--random", "tiny", "--out", str(existing)], "pass --force"),
        (["--from-bundle", str(tmp_path / "nobundle"), *out], "does not exist"),
        (["--from-bundle", str(tmp_path), "--check", *out], "only when exporting from weights"),
        (["--autoencoder", str(ae), "--diffusion", str(unet), "--seed", "3", *out],
         "only apply to --random"),
    ]
    for argv, message in cases:
        assert export_main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("onnx_export: error: "), err
        assert re.search(message, err), (argv, err)
    assert not (tmp_path / "b").exists()
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]


def test_jenbridge_export_help_is_light() -> None:
    """The command module imports nothing heavy at the top (the CLI builds every parser)."""
    import subprocess
    import sys

    code = ("import sys, argparse; import jenbridge.commands.export as e; "
            "e.add_arguments(argparse.ArgumentParser()); "
            "print(any(m in sys.modules for m in ('torch', 'onnx', 'onnxruntime')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_export_notes_and_evaluation_go_into_the_manifest(tiny_bundle: Path,
                                                          tmp_path: Path) -> None:
    import argparse
    import json
    import shutil

    from jenbridge.bundle import read_manifest
    from jenbridge.commands.export import _annotate, _notes

    out = tmp_path / "b"
    shutil.copytree(tiny_bundle, out)
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"settings": {"clips": 2}, "targets": {"fd": True},
                                  "suites": {"t2m": {"metrics": {"frechet": {
                                      "values": {"model": 12.5, "silence": 80.0}}}}}}))
    args = argparse.Namespace(out=out, note=["data=built-in, 5.0 h", "cpu_hours=3"],
                              evaluation=[report])
    _annotate(args, read_manifest(out))
    m = read_manifest(out, verify=True)  # the files' hashes still hold
    assert m.training["data"] == "built-in, 5.0 h" and m.training["cpu_hours"] == "3"
    assert m.evaluation["figures"]["t2m"]["frechet"] == {"model": 12.5, "silence": 80.0}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        _notes(["oops"])


def test_from_bundle_records_notes_and_several_reports(tiny_bundle: Path, tmp_path: Path) -> None:
    """--note and --evaluation (repeatable) go into the manifest of a converted bundle too,
    which stays a verified bundle (its files' hashes are unchanged)."""
    def report(suite: str, metric: str, target: str) -> Path:
        path = tmp_path / f"{suite}.json"
        path.write_text(json.dumps({
            "settings": {"suites": [suite]}, "models": [{"label": "model", "step": 7}],
            "suites": {suite: {"metrics": {metric: {"values": {"model": 0.5, "noise": 2.0}}}}},
            "targets": [{"target": target, "met": True}]}))
        return path

    out = tmp_path / "annotated"
    assert export_main(["--from-bundle", str(tiny_bundle), "--out", str(out), "--weights", "fp32",
                        "--note", "diffusion_steps=7", "--evaluation",
                        str(report("t2m", "frechet", "fd")), "--evaluation",
                        str(report("tempo", "within_2pct", "tempo"))]) == 0
    m = read_manifest(out, verify=True)
    assert m.training["diffusion_steps"] == "7"
    ev = m.evaluation
    assert ev["reports"] == ["t2m.json", "tempo.json"]
    assert ev["figures"]["t2m"]["frechet"]["model"] == 0.5
    assert ev["figures"]["tempo"]["within_2pct"]["noise"] == 2.0
    assert [t["target"] for t in ev["targets"]] == ["fd", "tempo"]
    assert export_main(["--from-bundle", str(tiny_bundle), "--out", str(tmp_path / "x"),
                        "--evaluation", str(tmp_path / "missing.json")]) == 2
    assert not (tmp_path / "x").exists()

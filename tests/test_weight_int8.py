"""int8 weight storage (onnx_export/int8.py): per-output-channel scales on the right axis of
every weight slot, what stays float, ONNX Runtime folding the dequantization away, and int8
bundles (whole or per graph) that are smaller than fp16, close to fp32, verified by sha256 and
served by the engine.

Tolerances. One weight: each code is off by at most half a step, scale_c / 2 = max |W_c| / 254
for output channel c, so an output of channel c is off by at most scale_c / 2 times the L1 norm
of the inputs it sums (the test bound, exact up to fp32 rounding). Whole graphs: those errors
are independent and mostly cancel, ~0.3% of a weight's rms each; through the tiny graphs that
measured rel L2 0.6-3.4% (states, latents, audio); the bounds below are ~2x that.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from jenbridge.bundle import GRAPHS, BundleError, read_manifest
from onnx_export import int8
from onnx_export.__main__ import main as export_main
from onnx_export.bundle_writer import convert_bundle, graph_weights, weights_label
from onnx_export.dft_basis import rebuild_dft_bases, rebuilt_bases
from onnx_export.fp16 import fp16_fraction
from onnx_export.int8 import int8_fraction, quantize_per_channel, store_int8
from onnx_export.parity import cpu_session, errors

RNG = np.random.default_rng(0)


def _model(nodes: list, inputs: list, inits: list[np.ndarray | onnx.TensorProto],
           names: list[str] | None = None) -> onnx.ModelProto:
    tensors = [t if isinstance(t, onnx.TensorProto) else numpy_helper.from_array(t, n)
               for t, n in zip(inits, names or [f"w{i}" for i in range(len(inits))])]
    graph = helper.make_graph(nodes, "g", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              tensors)
    return helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 18)])


def _spread(n: int) -> np.ndarray:
    """Output-channel magnitudes from 1e-3 to 1e2: a scale shared across channels (the wrong
    axis) would round the small channels to nothing."""
    return np.logspace(-3, 2, n).astype(np.float32)[RNG.permutation(n)]


def _float_input(shape: list[int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)


# op -> (model with weight "w0", input x, output-channel axis of y, axis of w0, reduce):
# y[..., c] sums |x| over at most the whole input, so the bound uses the input's L1 norm
def _slot_cases() -> dict[str, tuple[onnx.ModelProto, np.ndarray, int, int]]:
    k, n = 96, 16
    x2 = RNG.standard_normal((3, k)).astype(np.float32)
    x3 = RNG.standard_normal((1, 32, 10)).astype(np.float32)
    matmul_w = RNG.standard_normal((k, n)).astype(np.float32) * _spread(n)[None, :]
    gemm_t = RNG.standard_normal((n, k)).astype(np.float32) * _spread(n)[:, None]
    conv_w = RNG.standard_normal((n, 32, 3)).astype(np.float32) * _spread(n)[:, None, None]
    convt_w = RNG.standard_normal((32, n, 2)).astype(np.float32) * _spread(n)[None, :, None]
    table = RNG.standard_normal((40, 32)).astype(np.float32) * _spread(40)[:, None]
    ids = np.array([[0, 3, 39, 17, 3]], np.int64)
    return {
        "MatMul (K, N)": (_model([helper.make_node("MatMul", ["x", "w0"], ["y"])],
                                 [_float_input([3, k])], [matmul_w]), x2, -1, 1),
        "Gemm (K, N)": (_model([helper.make_node("Gemm", ["x", "w0"], ["y"])],
                               [_float_input([3, k])], [np.ascontiguousarray(gemm_t.T)]),
                        x2, -1, 1),
        "Gemm transB (N, K)": (_model([helper.make_node("Gemm", ["x", "w0"], ["y"], transB=1)],
                                      [_float_input([3, k])], [gemm_t]), x2, -1, 0),
        "Conv (O, I, k)": (_model([helper.make_node("Conv", ["x", "w0"], ["y"], pads=[1, 1])],
                                  [_float_input([1, 32, 10])], [conv_w]), x3, 1, 0),
        "ConvTranspose (I, O, k)": (_model([helper.make_node("ConvTranspose", ["x", "w0"], ["y"],
                                                             strides=[2])],
                                           [_float_input([1, 32, 10])], [convt_w]), x3, 1, 1),
        "Gather (V, D)": (_model([helper.make_node("Gather", ["w0", "x"], ["y"])],
                                 [helper.make_tensor_value_info("x", TensorProto.INT64, [1, 5])],
                                 [table]), ids, -2, 0),
    }


SLOTS = list(_slot_cases())


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return cpu_session(model.SerializeToString(), threads=1).run(None, {"x": x})[0]


def _channel_check(case: str) -> tuple[np.ndarray, np.ndarray]:
    """(largest error, bound) per output channel of the int8 graph against the fp32 one; the
    bound is half a step of a per-output-channel scale, max |W_c| / 254, times the inputs' L1
    norm (whatever scales store_int8 chose)."""
    model, x, y_axis, w_axis = _slot_cases()[case]
    w = numpy_helper.to_array(model.graph.initializer[0])
    ref = _run(model, x)
    out = _run(store_int8(onnx.ModelProto.FromString(model.SerializeToString())), x)
    err = np.abs(out - ref).max(axis=tuple(a for a in range(out.ndim) if a != y_axis % out.ndim))
    peak = np.abs(w).max(axis=tuple(a for a in range(w.ndim) if a != w_axis))
    if case.startswith("Gather"):  # output row j is the dequantized table row x[j] itself
        peak, l1 = peak[x.ravel()], 1.0
    else:
        l1 = float(np.abs(x).sum(axis=tuple(range(1, x.ndim))).max())
    half_step = peak / (2 * int8.QMAX)
    return err, half_step * l1 * (1 + 1e-4) + 1e-6 * peak * l1  # + fp32 rounding of the sums


@pytest.mark.parametrize("case", SLOTS)
def test_error_per_output_channel_within_half_a_step(case: str) -> None:
    """Each slot scales per output channel: every channel's error stays within its own
    half-step bound although channel magnitudes span 1e-3 .. 1e2."""
    model = store_int8(_slot_cases()[case][0])
    assert [i.data_type for i in model.graph.initializer] == [TensorProto.INT8,
                                                               TensorProto.FLOAT]
    assert [n.op_type for n in model.graph.node[:2]] == ["Cast", "Mul"]
    assert model.graph.node[1].output == ["w0"]  # the rest of the graph is unchanged
    w_axis = _slot_cases()[case][3]
    w, scale = (numpy_helper.to_array(i) for i in _slot_cases()[case][0].graph.initializer[:1]
                + model.graph.initializer[1:])
    assert scale.shape == tuple(n if a == w_axis else 1 for a, n in enumerate(w.shape))
    err, bound = _channel_check(case)
    assert (err <= bound).all(), (err / bound).max()


@pytest.mark.parametrize("slot,wrong", [(("MatMul", 1), 0), (("Conv", 1), 1),
                                        (("ConvTranspose", 1), 0), (("Gather", 0), 1)])
def test_wrong_scale_axis_is_caught(monkeypatch: pytest.MonkeyPatch, slot: tuple[str, int],
                                    wrong: int) -> None:
    """The check above fails when the scale runs along another axis: the small channels then
    share the large channels' step."""
    case = {"MatMul": "MatMul (K, N)", "Conv": "Conv (O, I, k)",
            "ConvTranspose": "ConvTranspose (I, O, k)", "Gather": "Gather (V, D)"}[slot[0]]
    err, bound = _channel_check(case)
    assert (err <= bound).all()
    monkeypatch.setitem(int8.WEIGHT_AXES, slot, wrong)
    err, bound = _channel_check(case)
    assert (err > 2 * bound).any(), (err / bound).max()


def test_quantize_per_channel_rounding() -> None:
    w = np.array([[0.0, 0.0], [1.0, -0.5], [-2.54, 0.001]], np.float32)
    codes, scale = quantize_per_channel(w, 0)
    assert scale.shape == (3, 1) and codes.dtype == np.int8
    np.testing.assert_array_equal(codes, [[0, 0], [127, -64], [-127, 0]])
    np.testing.assert_allclose(scale.ravel(), [1.0, 1 / 127, 2.54 / 127], rtol=1e-6)
    assert np.abs(codes * scale - w).max() <= scale.max() / 2


def test_what_stays_float() -> None:
    """Small weights, the latent normalization, non-finite values, initializers outside the
    weight slots (or in slots that disagree on the axis) are left as they are; store_int8 is
    idempotent. (Shapes need not chain: nothing runs.)"""
    big = RNG.standard_normal((64, 64)).astype(np.float32)
    bad = big.copy()
    bad[0, 0] = np.inf
    inits = {"weight": big, "small": big[:16, :16], "autoencoder.norm.whiten": big, "inf": bad,
             "added": big, "two_axes": big}
    nodes = [helper.make_node("MatMul", ["x", "weight"], ["a"]),
             helper.make_node("MatMul", ["a", "small"], ["b"]),
             helper.make_node("MatMul", ["b", "autoencoder.norm.whiten"], ["c"]),
             helper.make_node("MatMul", ["c", "inf"], ["d"]),
             helper.make_node("Add", ["d", "added"], ["e"]),
             helper.make_node("MatMul", ["e", "two_axes"], ["f"]),  # axis 1 here ...
             helper.make_node("Gemm", ["f", "two_axes"], ["y"], transB=1)]  # ... and 0 here
    model = _model(nodes, [_float_input([2, 64])], list(inits.values()), list(inits))
    stored = store_int8(model)
    kinds = {i.name: i.data_type for i in stored.graph.initializer}
    assert kinds.pop("weight__int8") == TensorProto.INT8
    assert kinds.pop("weight__scale") == TensorProto.FLOAT
    assert kinds == dict.fromkeys(list(inits)[1:], TensorProto.FLOAT)
    assert int8_fraction(stored) == pytest.approx(64 * 64 / (5 * 64 * 64 + 16 * 16 + 64))
    again = store_int8(onnx.ModelProto.FromString(stored.SerializeToString()))
    assert again == stored


# Bundles -----------------------------------------------------------------------------------

MIXED = "text_encoder=int8,encoder=fp16,unet=int8,decoder=fp16"


@pytest.fixture(scope="module")
def bundles(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The fp32 tiny bundle re-stored as fp16, int8 and per graph (MIXED)."""
    folder = tmp_path_factory.mktemp("int8")
    out = {"fp32": tiny_bundle}
    for weights in ("fp16", "int8", MIXED):
        out[weights] = folder / weights.replace(",", "_").replace("=", "-")
        convert_bundle(tiny_bundle, out[weights], weights)
    return out


def _own_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The graph's nodes without those int8.py and dft_basis.py put in front."""
    return [n for n in model.graph.node
            if not n.name.endswith(("__widen", "__dequantize")) and "__dft_" not in n.name]


def test_int8_files_and_initializers(bundles: dict[str, Path]) -> None:
    """Every graph file is smaller than fp16 (the text encoder ~1/4 of fp32); every weight of
    MIN_ELEMENTS or more is int8 with a scale along its output channel, but for the STFT ones
    (rebuilt in the graph, see the next test); nothing else changed."""
    for graph in GRAPHS:
        size = {w: (bundles[w] / f"{graph}.onnx").stat().st_size for w in ("fp32", "fp16", "int8")}
        assert size["int8"] < 0.9 * size["fp16"], (graph, size)
        fp32 = onnx.load(str(bundles["fp32"] / f"{graph}.onnx"))
        model = onnx.load(str(bundles["int8"] / f"{graph}.onnx"))
        axes = int8.weight_axes(fp32)
        big = {i.name for i in fp32.graph.initializer if i.name in axes
               and i.data_type == TensorProto.FLOAT and np.prod(i.dims) >= int8.MIN_ELEMENTS
               and not i.name.endswith(int8.KEEP_FLOAT)}
        stored = {i.name: i for i in model.graph.initializer}
        assert big and all(stored[f"{n}__int8"].data_type == TensorProto.INT8 for n in big)
        assert not big & set(stored), graph  # rebuilt by Cast * scale, under the same name
        for name in big:
            dims = stored[f"{name}__int8"].dims
            assert list(stored[f"{name}__scale"].dims) == [
                n if a == axes[name] else 1 for a, n in enumerate(dims)]
        assert _own_nodes(model) == list(fp32.graph.node), graph
        assert rebuilt_bases(model) == {"encoder": ["autoencoder.stft.basis"],
                                        "decoder": ["autoencoder.istft.basis"]}.get(graph, [])
        assert int8_fraction(model) > (0.99 if graph == "text_encoder" else 0.5), graph
    text = onnx.load(str(bundles["int8"] / "text_encoder.onnx"))
    assert (bundles["int8"] / "text_encoder.onnx").stat().st_size < 0.27 * (
        bundles["fp32"] / "text_encoder.onnx").stat().st_size
    scale = next(i for i in text.graph.initializer
                 if i.name == "model.embeddings.word_embeddings.weight__scale")
    assert list(scale.dims) == [30522, 1]  # per token


def _evaluate(model: onnx.ModelProto, name: str) -> np.ndarray:
    """The value ONNX Runtime computes for tensor `name` of a graph without inputs."""
    out = helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
    graph = helper.make_graph(list(model.graph.node), "g", [], [out],
                              list(model.graph.initializer))
    m = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 18)])
    return cpu_session(m.SerializeToString(), threads=1).run(None, {})[0]


def test_dft_bases_rebuilt_exactly(tiny_bundle: Path) -> None:
    """The STFT and iSTFT bases, rebuilt from cos/sin tables in the graph, equal the stored ones
    to fp32 rounding; a (2F, 1, N) tensor that is no windowed DFT basis is left alone."""
    for graph, name in (("encoder", "autoencoder.stft.basis"),
                        ("decoder", "autoencoder.istft.basis")):
        fp32 = onnx.load(str(tiny_bundle / f"{graph}.onnx"))
        stored = next(numpy_helper.to_array(i) for i in fp32.graph.initializer if i.name == name)
        model = rebuild_dft_bases(onnx.ModelProto.FromString(fp32.SerializeToString()))
        assert rebuilt_bases(model) == [name] and name not in {
            i.name for i in model.graph.initializer}
        tables = 5 * 4 * stored.shape[2] + 4096  # cos, sin, window, r, s (N or F floats each)
        assert len(model.SerializeToString()) < len(fp32.SerializeToString()) - stored.nbytes + (
            tables)
        basis_nodes = [n for n in model.graph.node if "__dft_" in n.name]
        rebuilt = _evaluate(helper.make_model(helper.make_graph(
            basis_nodes, "b", [], [], list(model.graph.initializer))), name)
        assert rebuilt.shape == stored.shape
        assert np.abs(rebuilt - stored).max() <= 1e-6 * np.abs(stored).max()
    noise = RNG.standard_normal((2 * 33, 1, 64)).astype(np.float32)
    model = _model([helper.make_node("Conv", ["x", "w0"], ["y"])], [_float_input([1, 1, 64])],
                   [noise])
    assert rebuilt_bases(rebuild_dft_bases(model)) == []


def test_onnx_runtime_folds_the_dequantization(bundles: dict[str, Path], tmp_path: Path) -> None:
    """After session creation no Cast/Mul of int8 codes is left: kernels run on fp32 weights."""
    import onnxruntime as ort

    for graph in ("unet", "encoder"):
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        opts.optimized_model_filepath = str(tmp_path / f"{graph}.opt.onnx")
        ort.InferenceSession(str(bundles["int8"] / f"{graph}.onnx"), opts,
                             providers=["CPUExecutionProvider"])
        optimized = onnx.load(opts.optimized_model_filepath)
        assert not [i.name for i in optimized.graph.initializer
                    if i.data_type == TensorProto.INT8], graph
        assert not [n.name for n in optimized.graph.node
                    if any(i.endswith(("__int8", "__cast", "__scale")) or "__dft_" in i
                           for i in n.input if not i.endswith("__dft_axis1"))], graph


@pytest.fixture(scope="module")
def tiny_models(tiny_bundle: Path):
    from jenbridge.config import load_config
    from onnx_export.sources import build_random

    return build_random(load_config("tiny"), seed=read_manifest(tiny_bundle).training["seed"])


# rel L2 bounds vs the fp32 graph, ~2x the worst case measured on tiny (text 3.4% with token
# cosine 0.9996: MiniLM's states have a few large dimensions; encoder 0.6%, unet 0.9%,
# decoder 1.6%)
REL_L2 = {"text_encoder": 0.07, "encoder": 0.015, "unet": 0.02, "decoder": 0.035}


def test_int8_graphs_close_to_fp32(bundles: dict[str, Path], tiny_models) -> None:
    from onnx_export.parity import graph_cases, session_feed

    for graph, cases in graph_cases(tiny_models).items():
        ref, q = (cpu_session(bundles[w] / f"{graph}.onnx", threads=1) for w in ("fp32", "int8"))
        for inputs, _ in cases:
            feed = session_feed(inputs)
            e = errors(q.run(None, feed)[0], ref.run(None, feed)[0])
            assert e["rel_l2"] < REL_L2[graph], (graph, e)
            if graph == "text_encoder":
                assert e["cos"] > 0.999, e  # the target: 0.995


def test_int8_bundle_in_the_engine(bundles: dict[str, Path]) -> None:
    """The engine verifies and serves an int8 bundle; its audio stays near the fp32 bundle's."""
    from jenbridge.engine import Engine

    audio = {w: Engine(bundles[w], providers="cpu", threads=1).generate(
        "warm piano", 0.4, seed=1, steps=4).audio for w in ("fp32", "int8")}
    assert audio["int8"].shape == audio["fp32"].shape and np.isfinite(audio["int8"]).all()
    assert errors(audio["int8"], audio["fp32"])["rel_l2"] < 0.04  # measured 1.7%


def test_manifest_per_graph_and_tampering(bundles: dict[str, Path], tmp_path: Path) -> None:
    assert read_manifest(bundles["int8"]).weights_dtype == "int8"
    mixed = read_manifest(bundles[MIXED])  # sha256 of every file verified
    assert graph_weights(mixed.weights_dtype) == {"text_encoder": "int8", "encoder": "fp16",
                                                  "unet": "int8", "decoder": "fp16"}
    for graph, check in (("text_encoder", int8_fraction), ("unet", int8_fraction),
                         ("encoder", fp16_fraction), ("decoder", fp16_fraction)):
        assert check(onnx.load(str(bundles[MIXED] / f"{graph}.onnx"))) > 0.5, graph
    copy = tmp_path / "copy"
    shutil.copytree(bundles["int8"], copy)
    with (copy / "unet.onnx").open("ab") as f:
        f.write(b" ")
    with pytest.raises(BundleError, match=r"unet\.onnx does not match its sha256"):
        read_manifest(copy)
    with pytest.raises(ValueError, match="only an fp32 bundle"):
        convert_bundle(bundles["int8"], tmp_path / "widened", "fp16")
    # the int8 graphs may stay as they are while fp32 graphs are re-stored
    partial = tmp_path / "partial"
    convert_bundle(bundles["fp16"], partial, "text_encoder=fp16,encoder=fp16,unet=fp16,"
                   "decoder=fp16")
    assert read_manifest(partial).weights_dtype == "fp16"


def test_weights_choices() -> None:
    assert graph_weights("int8") == dict.fromkeys(GRAPHS, "int8")
    assert graph_weights("unet=int8") == {**dict.fromkeys(GRAPHS, "fp32"), "unet": "int8"}
    assert weights_label(graph_weights(MIXED)) == MIXED
    assert weights_label(graph_weights(",".join(f"{g}=fp16" for g in GRAPHS))) == "fp16"
    for bad, message in (("int4", "one of fp32, fp16, int8 or GRAPH=DTYPE"),
                         ("vocoder=int8", "no graph 'vocoder'"),
                         ("unet=int4", "unet='int4' is not one of"),
                         ("unet=int8,unet=fp16", "unet is given twice")):
        with pytest.raises(ValueError, match=message):
            graph_weights(bad)


def test_export_command(tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`python -m onnx_export --from-bundle B --weights ...` (= `jenbridge export`); a bad
    choice is refused before any work."""
    out = tmp_path / "b"
    assert export_main(["--from-bundle", str(tiny_bundle), "--weights",
                        "text_encoder=int8,unet=int8", "--out", str(out)]) == 0
    assert read_manifest(out).weights_dtype == (
        "text_encoder=int8,encoder=fp32,unet=int8,decoder=fp32")
    assert export_main(["--from-bundle", str(tiny_bundle), "--weights", "int3", "--out",
                        str(tmp_path / "c")]) == 2
    assert "weights must be one of" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_export_bundle_stores_int8(tiny_bundle: Path, tiny_models, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """export_bundle(weights=...) re-stores each freshly exported graph (the exporter itself is
    stood in for by the tiny bundle's fp32 files)."""
    import onnx_export.graphs
    from onnx_export.bundle_writer import export_bundle

    def fake_export(graph: str, models, path: Path, opset: int) -> Path:
        shutil.copyfile(tiny_bundle / f"{graph}.onnx", path)
        return path

    monkeypatch.setattr(onnx_export.graphs, "export_graph", fake_export)
    m = export_bundle(tiny_models, tmp_path / "b", weights="unet=int8,text_encoder=int8")
    assert m == read_manifest(tmp_path / "b")
    assert m.weights_dtype == "text_encoder=int8,encoder=fp32,unet=int8,decoder=fp32"
    assert int8_fraction(onnx.load(str(tmp_path / "b" / "unet.onnx"))) > 0.5
    with pytest.raises(ValueError, match="no graph 'vae'"):
        export_bundle(tiny_models, tmp_path / "c", weights="vae=int8")


@pytest.mark.parametrize("dtype", ["fp16", "int8"])
def test_encoder_on_real_music_stays_close(dtype: str, tiny_bundle: Path, music_clip,
                                           tmp_path: Path) -> None:
    """The encoder's log-magnitude features make quiet STFT bins matter: rounded DFT bases
    drowned them (fp16: 5.9 dB on the trained `small` encoder). White-noise parity cannot see
    this; real music (a rendered clip, with its quiet high bins) can."""
    import shutil as _shutil

    from onnx_export.bundle_writer import store_weights

    audio, _sr = music_clip
    hop = 128  # the tiny config's STFT hop
    x = audio[None, :, : audio.shape[1] // hop * hop]
    path = tmp_path / "encoder.onnx"
    _shutil.copyfile(tiny_bundle / "encoder.onnx", path)
    ref = cpu_session(tiny_bundle / "encoder.onnx").run(None, {"audio": x})[0]
    store_weights(path, dtype)
    got = cpu_session(path).run(None, {"audio": x})[0]
    snr = 10 * np.log10((ref ** 2).sum() / ((got - ref) ** 2).sum())
    assert snr > 30.0, snr

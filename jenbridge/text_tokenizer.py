"""Prompt tokenization for the text encoder, without torch or transformers.

The serving engine (ONNX Runtime, no torch) and the training side (`jenbridge.models.text`)
tokenize through this one class, driven by the encoder's `tokenizer.json`, so the token ids the
exported text encoder sees at serving time are exactly the ones it was trained with.

Conventions: ids and mask are int64 arrays of shape (B, L) with L the longest prompt in the
batch after truncation to `max_tokens` (special tokens such as [CLS]/[SEP] or </s> included in
the count, so L <= max_tokens); padding is on the right; mask is 1 on real tokens, 0 on padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# Pad tokens tried, in order, when tokenizer.json carries no padding setting of its own.
_PAD_TOKENS = ("[PAD]", "<pad>", "<|pad|>", "<|endoftext|>", "</s>")


class PromptTokenizer:
    """Tokenize text prompts into padded (input_ids, attention_mask) arrays.

    Args:
        tokenizer_file: path of a `tokenizer.json` readable by the `tokenizers` library.
        max_tokens: most tokens per prompt, special tokens included; longer prompts are cut.
    """

    def __init__(self, tokenizer_file: str | Path, max_tokens: int) -> None:
        from tokenizers import Tokenizer

        path = Path(tokenizer_file)
        if not path.is_file():
            raise ValueError(f"tokenizer file {str(path)!r} does not exist")
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as err:  # tokenizers raises a bare Exception on malformed JSON
            raise ValueError(f"{str(path)!r} is not a readable tokenizer.json: {err}") from None
        n_special = tok.num_special_tokens_to_add(False)
        if not isinstance(max_tokens, int) or max_tokens <= n_special:
            raise ValueError(
                f"max_tokens must be an int above the {n_special} special tokens this "
                f"tokenizer adds, got {max_tokens!r}"
            )
        pad_id, pad_token = _pad_setting(tok)
        tok.enable_truncation(max_length=max_tokens)
        tok.enable_padding(direction="right", pad_id=pad_id, pad_token=pad_token)  # to longest
        self._tok = tok
        self.tokenizer_file = path
        self.max_tokens = max_tokens
        self.pad_id = pad_id

    @property
    def vocab_size(self) -> int:
        """Number of token ids, added tokens included."""
        return int(self._tok.get_vocab_size(with_added_tokens=True))

    def __call__(self, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Tokenize a batch: B prompts -> (input_ids (B, L) int64, attention_mask (B, L) int64)."""
        check_prompts(prompts)
        encodings = self._tok.encode_batch(list(prompts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return ids, mask


def check_prompts(prompts: Sequence[str]) -> None:
    """Raise ValueError unless `prompts` is a non-empty list (or tuple) of strings."""
    if isinstance(prompts, str) or not isinstance(prompts, Sequence):
        raise ValueError(f"prompts must be a list of strings, got {type(prompts).__name__}")
    if not prompts:
        raise ValueError("prompts is empty: give at least one prompt (an empty string is fine)")
    bad = [type(p).__name__ for p in prompts if not isinstance(p, str)]
    if bad:
        raise ValueError(f"every prompt must be a string, got {', '.join(sorted(set(bad)))}")


def _pad_setting(tok: Tokenizer) -> tuple[int, str]:
    """(pad_id, pad_token): the tokenizer's own padding setting, else a known pad token, else 0."""
    if tok.padding is not None:
        return int(tok.padding["pad_id"]), str(tok.padding["pad_token"])
    for token in _PAD_TOKENS:
        token_id = tok.token_to_id(token)
        if token_id is not None:
            return int(token_id), token
    # Padding positions are masked out, so any valid id will do.
    return 0, tok.id_to_token(0) or ""

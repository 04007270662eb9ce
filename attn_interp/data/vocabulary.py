"""Word vocabulary: 0 = padding, 1..V = words in first-seen order, V+1 = the one UNK id.

Built from train + validation tokens (lowercased) keeping words with count >= `min_count` (5 in the
paper), with no size cap. Saved as JSON next to a run (never pickle).
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from attn_interp.io_utils import atomic_write_json

__all__ = ["Vocabulary", "PAD_TOKEN", "UNK_TOKEN"]

PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
_FORMAT = "attn_interp.vocabulary.v1"


class Vocabulary:
    """Maps lowercased tokens to ids. ``len(vocab)`` counts padding and UNK (= V + 2)."""

    pad_id: int = 0

    def __init__(self, words: Sequence[str], min_count: int | None = None):
        """`words`: the V kept words, in id order (id = position + 1); must be distinct."""
        words = tuple(words)
        index: dict[str, int] = {}
        for i, w in enumerate(words, start=1):
            if not isinstance(w, str) or not w:
                raise ValueError(f"vocabulary word #{i} is not a non-empty string: {w!r}")
            if w in index:
                raise ValueError(f"vocabulary word {w!r} occurs twice (ids {index[w]} and {i})")
            index[w] = i
        self.words = words
        self.min_count = min_count
        self._index = index

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], min_count: int = 5) -> Vocabulary:
        """Keeps tokens seen at least `min_count` times, in first-seen order (lowercased)."""
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        counts: collections.Counter[str] = collections.Counter()
        for tokens in token_lists:
            if isinstance(tokens, str):
                raise TypeError("token_lists must hold token sequences, not strings")
            counts.update(t.lower() for t in tokens)
        # Counter keeps insertion (first-seen) order.
        return cls([w for w, c in counts.items() if c >= min_count], min_count=min_count)

    @property
    def unk_id(self) -> int:
        return len(self.words) + 1

    def __len__(self) -> int:
        return len(self.words) + 2

    def __contains__(self, token: str) -> bool:
        return token.lower() in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.words == other.words

    def __hash__(self) -> int:
        return hash(self.words)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self.words)} words + pad + unk, min_count={self.min_count})"

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Ids of `tokens` (lowercased); unknown tokens map to `unk_id`."""
        get, unk = self._index.get, self.unk_id
        return [get(t.lower(), unk) for t in tokens]

    def token(self, token_id: int) -> str:
        """The token for an id: `PAD_TOKEN` for 0, `UNK_TOKEN` for `unk_id`."""
        if token_id == 0:
            return PAD_TOKEN
        if token_id == self.unk_id:
            return UNK_TOKEN
        if not 0 < token_id < self.unk_id:
            raise IndexError(f"token id {token_id} out of range [0, {self.unk_id}]")
        return self.words[token_id - 1]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of `ids`, padding ids dropped."""
        return [self.token(int(i)) for i in ids if int(i) != 0]

    def save(self, path: str | os.PathLike) -> None:
        """Writes the vocabulary as JSON (atomic: temporary file + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": _FORMAT,
            "pad_id": 0,
            "unk_id": self.unk_id,
            "min_count": self.min_count,
            "words": list(self.words),
        }
        atomic_write_json(path, payload, indent=0, sort_keys=False, ensure_ascii=False)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        """Reads a file written by `save`; raises ValueError naming the file if it is not one."""
        path = Path(path)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not a vocabulary JSON file: {e}") from e
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise ValueError(f"{path} is not a vocabulary file (expected format {_FORMAT!r})")
        words = payload.get("words")
        if not isinstance(words, list):
            raise ValueError(f"{path}: 'words' must be a list of strings")
        vocab = cls(words, min_count=payload.get("min_count"))
        if payload.get("unk_id") != vocab.unk_id or payload.get("pad_id") != 0:
            raise ValueError(f"{path}: pad_id/unk_id do not match the word list (file corrupted?)")
        return vocab

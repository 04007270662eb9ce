"""Text normalisation and the word tokenizer shared by HAN and FLAN.

Normalisation (`normalize_text`), in this order:

1. the literal two characters backslash + ``n`` (Yahoo! Answers' escaped line breaks) and real
   ``\\r\\n`` / ``\\r`` become ``\\n``;
2. HTML line-break-like tags (``<br />``, ``<br>``, ``<p>``, ``</p>``, ``<hr>``, ``<div>``) become
   ``\\n``; a few inline tags (``<i>``, ``<b>``, ``<em>``, ``<strong>``, ``<u>``, ``<span>``, ``<a ...>``)
   are removed; anything else that looks like ``<...>`` is left as text;
3. ``html.unescape`` of well-formed entities ending in ``;`` (``&amp;``, ``&#92;`` ...);
4. control characters and non-breaking/odd spaces become plain spaces; runs of spaces collapse.

Tokenization (`tokenize`) lowercases the normalised text and returns, left to right:

* dotted abbreviations made of single letters, kept whole with their final dot: ``u.s.``, ``e.g.``;
* numbers with inner ``.``/``,``/``:`` separators: ``3.14``, ``1,000``, ``10:30``;
* words: unicode letters/digits/underscore with inner hyphens or apostrophes: ``well-known``,
  ``don't``, ``o'neill`` (a leading/trailing hyphen or apostrophe is punctuation);
* punctuation: every other non-space character is a token; a run of the *same* character is one
  token (``...``, ``!!!``, ``--``).

Punctuation is kept, as spaCy (the paper's tokenizer) keeps it. No stemming, no stop words; URLs and
e-mail addresses are split at their punctuation. `tokenize` is what FLAN sees; HAN sees the same
tokens grouped by `attn_interp.data.sentences.split_sentences`.
"""

from __future__ import annotations

import html
import re

__all__ = ["normalize_text", "tokenize", "tokenize_normalized", "token_spans"]

_LITERAL_NEWLINE = re.compile(r"\\r\\n|\\n|\\r|\r\n|\r")
_BREAK_TAG = re.compile(r"<\s*/?\s*(?:br|p|hr|div)\b[^<>]{0,80}>", re.IGNORECASE)
_INLINE_TAG = re.compile(r"<\s*/?\s*(?:i|b|em|strong|u|span|a)(?:\s[^<>]{0,200})?\s*/?\s*>", re.I)
# Control characters (except newline) and unusual spaces -> space.
_ODD_SPACE = re.compile(r"[^\S\n]|[\x00-\x09\x0b-\x1f\x7f\u200b\ufeff]")
# Only well-formed entities (with the ";"): html.unescape alone would also turn "&reg=" in URLs into "®=".
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_SPACE_RUN = re.compile(r" {2,}")
_SPACE_AROUND_NEWLINE = re.compile(r" *\n *")

_TOKEN = re.compile(
    r"""
      (?:[^\W\d_]\.){2,}                 # u.s. e.g. i.e. a.m.
    | \d+(?:[.,:]\d+)+                   # 3.14 1,000 10:30
    | \w+(?:[-'\u2019]\w+)*              # words, inner hyphen/apostrophe
    | ([^\w\s])\1*                       # punctuation; a run of one character is one token
    """,
    re.VERBOSE,
)


def normalize_text(text: str) -> str:
    """Returns `text` with escapes, HTML breaks/entities and odd whitespace normalised (not lowercased).

    Raises:
      TypeError: if `text` is not a `str` (decode bytes first).
    """
    if not isinstance(text, str):
        raise TypeError(
            f"expected str text, got {type(text).__name__}; decode bytes as UTF-8 first"
        )
    text = _LITERAL_NEWLINE.sub("\n", text)
    text = _BREAK_TAG.sub("\n", text)
    text = _INLINE_TAG.sub(" ", text)
    text = _ENTITY.sub(lambda m: html.unescape(m.group(0)), text)
    text = _ODD_SPACE.sub(" ", text)
    text = _SPACE_RUN.sub(" ", text)
    text = _SPACE_AROUND_NEWLINE.sub("\n", text)
    return text.strip()


def token_spans(normalized: str) -> list[tuple[int, int]]:
    """Returns the `(start, end)` character span of every token of already-normalised text."""
    return [m.span() for m in _TOKEN.finditer(normalized)]


def tokenize_normalized(normalized: str) -> list[str]:
    """Lowercased tokens of text that already went through `normalize_text`."""
    return [m.group(0).lower() for m in _TOKEN.finditer(normalized)]


def tokenize(text: str) -> list[str]:
    """Returns the lowercased tokens of raw `text` (normalised first); `[]` for blank text."""
    return tokenize_normalized(normalize_text(text))

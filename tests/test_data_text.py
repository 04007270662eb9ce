"""Tokenizer and sentence splitter: hard cases and randomized consistency with FLAN tokens."""

import numpy as np
import pytest

from attn_interp.data import normalize_text, split_sentences, tokenize, tokenize_sentences


def test_tokenizer_words_numbers_punctuation():
    toks = tokenize("It's a well-known FACT: 3.14 > 3, in the U.S. e.g. 1,000 things... Wow!!!")
    assert toks == [
        "it's", "a", "well-known", "fact", ":", "3.14", ">", "3", ",", "in", "the", "u.s.",
        "e.g.", "1,000", "things", "...", "wow", "!!!",
    ]  # fmt: skip


def test_tokenizer_unicode_and_edge_apostrophes():
    assert tokenize("Café NAÏVE déjà-vu") == ["café", "naïve", "déjà-vu"]
    assert tokenize("'quoted' -dash-") == ["'", "quoted", "'", "-", "dash", "-"]
    assert tokenize("O’Neill’s") == ["o’neill’s"]


def test_normalization_html_breaks_escapes_and_whitespace():
    raw = "Line one<br />line two<BR>three\\nfour &amp; &#92; &reg=x\t\u00a0 five\r\nsix"
    norm = normalize_text(raw)
    assert norm.split("\n") == ["Line one", "line two", "three", "four & \\ &reg=x five", "six"]
    assert tokenize("<i>Hi</i> <b>there</b>") == ["hi", "there"]
    assert tokenize("   \n\t  ") == []
    assert tokenize("<br /><br />") == []
    with pytest.raises(TypeError, match="decode bytes"):
        tokenize(b"bytes")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mr. Smith met Dr. Jones. They talked.", ["Mr. Smith met Dr. Jones.", "They talked."]),
        ("It cost 3.14 dollars. Cheap.", ["It cost 3.14 dollars.", "Cheap."]),
        ("He lives in the U.S. and e.g. likes it. Yes.", ["He lives in the U.S. and e.g. likes it.", "Yes."]),
        ("Wait... What? no way!!! Really?!", ["Wait...", "What?", "no way!!!", "Really?!"]),
        ("Well... maybe not.", ["Well... maybe not."]),
        ("This is the end.Next starts here.", ["This is the end.", "Next starts here."]),
        ("Node.JS is fine.", ["Node.JS is fine."]),
        ("line one\nline two\n\nPara two.", ["line one", "line two", "Para two."]),
        ("a\\nb<br />c", ["a", "b", "c"]),
        ('He said "Hi." Then left.', ['He said "Hi."', "Then left."]),
        ("J. R. R. Tolkien wrote. Next.", ["J. R. R. Tolkien wrote.", "Next."]),
        ("Title here . Content here . The answer.", ["Title here .", "Content here .", "The answer."]),
        ("What is love? .  . Baby don't.", ["What is love? . .", "Baby don't."]),
        ("No title . . Only answer", ["No title . .", "Only answer"]),
        (" . . Hello", [". . Hello"]),
        ("???", ["???"]),
        ("", []),
        ("  \n ", []),
    ],
)  # fmt: skip
def test_splitter_hard_cases(text, expected):
    assert split_sentences(text) == expected
    assert tokenize_sentences(text) == [tokenize(s) for s in expected]


_FRAGMENTS = [
    "Mr.", "Dr.", "U.S.", "e.g.", "3.14", "1,000", "end.Next", "...", "…", "?", "!", "?!", ".",
    " . ", " .  . ", "\\n", "\n", "\n\n", "<br />", "&amp;", "word", "Word", "it's", "well-known",
    '"', "'", "(", ")", ",", "Hello", "world", "X", "a", "42", "café", "  ", "-",
]  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sentences_partition_the_flan_tokens(seed):
    rng = np.random.default_rng(seed)
    for _ in range(300):
        parts = rng.choice(_FRAGMENTS, size=rng.integers(0, 25))
        seps = rng.choice(["", " "], size=len(parts))
        text = "".join(p + s for p, s in zip(parts, seps, strict=True))
        sents = tokenize_sentences(text)
        # Concatenated sentence tokens are exactly the document tokens FLAN sees.
        assert [t for s in sents for t in s] == tokenize(text), text
        assert all(sents), text  # no empty sentence
        assert [tokenize(s) for s in split_sentences(text)] == sents, text
        wordy = [any(c.isalnum() for t in s for c in t) for s in sents]
        if any(wordy):  # punctuation-only pieces are attached to a neighbour
            assert all(wordy), (text, sents)

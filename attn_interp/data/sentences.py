"""Rule-based sentence splitter for HAN (a stand-in for the paper's spaCy parser boundaries).

The splitter works on the tokens of `attn_interp.data.text`, so the tokens of the sentences of a
document, concatenated, are exactly the tokens of the whole document (what FLAN sees).

Boundaries:

* every line break (after normalisation, so also ``<br />`` and literal ``\\n``) ends a sentence;
* a cluster of terminal punctuation (``.``, ``!``, ``?``, ``...``, ``…`` and runs of them, e.g.
  ``?!`` or the Yahoo field join ``? .  .``), plus directly attached closing quotes/brackets, ends a
  sentence when:

  - it contains ``!`` or ``?`` and is followed by a space or an upper-case letter;
  - it is a lone ``.`` with a space on both sides (``" . "``: Yahoo's field join) or several dots
    separated by spaces (a join with empty fields);
  - it is ``.`` followed by a space and an upper-case letter, digit, opening quote or bracket, unless
    the word before the dot is a known abbreviation (Mr., Dr., Prof., St., vs., No., Jan. ...) or a
    single letter (an initial, as in ``J. Smith``);
  - it is ``.`` directly followed by a title-case word (``end.Next``), unless the word before is an
    abbreviation or a single letter;
  - it is an ellipsis followed by a space and an upper-case letter, digit or quote.

Dotted abbreviations (``U.S.``, ``e.g.``, ``i.e.``, ``a.m.``) and decimals (``3.14``) are single
tokens, so they never end a sentence. A piece that holds only punctuation (``" . "`` joins with empty
fields, a stray ``"!!"`` line) is attached to the previous sentence (or the next one when it comes
first), so no sentence is punctuation only unless the whole document is.

Known limits: a sentence that ends in a dotted abbreviation (``... in the U.S. Then``) is not split;
lower-case text after a period (``i went home. then``) is not split; ``Node.JS``-style names stay
whole but ``file.Txt`` splits; line-wrapped text (a newline in mid-sentence) is split at every line;
quotes spanning several sentences are not tracked; abbreviations not in the list followed by a
capitalised name (``Col. Sanders``) are split unless listed. spaCy's parser-based boundaries differ
on such cases, so sentence counts are approximate.
"""

from __future__ import annotations

from attn_interp.data.text import normalize_text, token_spans

__all__ = ["split_sentences", "tokenize_sentences", "ABBREVIATIONS"]

#: Lower-case words that, followed by a single ".", do not end a sentence.
ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof sr jr st mt ft vs no nos vol vols fig figs approx dept univ ave blvd
    gen gov sen rep rev lt col capt sgt cpl maj cmdr adm pres hon messrs mmes jan feb mar apr jun
    jul aug sep sept oct nov dec est inc ltd co corp bros al cf ca viz op pp ed eds eg ie""".split()
)

_TERMINAL_CHARS = frozenset(".!?\u2026")
_CLOSERS = frozenset("\"')]}\u201d\u2019\u00bb")
_OPENERS = frozenset("\"'([{\u201c\u2018\u00ab")


def _is_terminal(tok: str) -> bool:
    return all(c in _TERMINAL_CHARS for c in tok)


def _has_word_char(tok: str) -> bool:
    return any(c.isalnum() or c == "_" for c in tok)


def _starts_sentence_like(tok: str) -> bool:
    c = tok[0]
    return c.isupper() or c.isdigit() or c in _OPENERS


def _sentence_token_ranges(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Returns `[start, end)` token-index ranges of the sentences of normalised `text`."""
    n = len(spans)
    ranges: list[tuple[int, int]] = []
    start = 0
    i = 0
    while i < n:
        s, e = spans[i]
        tok = text[s:e]
        nxt = i + 1
        if not _is_terminal(tok):
            # A line break between this token and the next ends the sentence.
            if nxt < n and "\n" in text[e : spans[nxt][0]]:
                ranges.append((start, nxt))
                start = nxt
            i = nxt
            continue
        # Cluster of terminal punctuation (possibly space-separated: Yahoo joins) + attached closers.
        j = nxt
        dots_only = set(tok) <= {"."}
        pieces = 1
        spaced_dots = False
        while j < n:
            js, je = spans[j]
            gap = text[spans[j - 1][1] : js]
            if "\n" in gap:
                break
            jt = text[js:je]
            if _is_terminal(jt):
                pieces += 1
                dots_only = dots_only and set(jt) <= {"."}
                spaced_dots = spaced_dots or (gap != "" and set(jt) <= {"."})
            elif jt in _CLOSERS and gap == "":
                pass
            else:
                break
            j += 1
        if j >= n or "\n" in text[spans[j - 1][1] : spans[j][0]]:
            ranges.append((start, j))
            start = j
            i = j
            continue
        gap_after = text[spans[j - 1][1] : spans[j][0]]
        nxt_tok = text[spans[j][0] : spans[j][1]]
        prev_tok = text[spans[i - 1][0] : spans[i - 1][1]] if i > 0 else ""
        gap_before = text[spans[i - 1][1] : s] if i > 0 else " "
        prev_is_abbrev = gap_before == "" and (
            prev_tok.lower() in ABBREVIATIONS or (len(prev_tok) == 1 and prev_tok.isalpha())
        )
        if not dots_only:  # contains ! ? or the unicode ellipsis
            split = gap_after != "" or nxt_tok[0].isupper()
            if set(tok) <= {"\u2026"} and pieces == 1:
                split = gap_after != "" and _starts_sentence_like(nxt_tok)
        elif pieces > 1 and spaced_dots:
            split = True  # ". ." joins with empty fields
        elif tok == ".":
            if gap_before != "" and gap_after != "":
                split = True  # " . " join
            elif prev_is_abbrev:
                split = False
            elif gap_after != "":
                split = _starts_sentence_like(nxt_tok)
            else:  # end.Next
                split = (
                    len(nxt_tok) > 1
                    and nxt_tok[0].isupper()
                    and nxt_tok[1].islower()
                    and _has_word_char(prev_tok)
                )
        else:  # ellipsis made of dots
            split = gap_after != "" and _starts_sentence_like(nxt_tok)
        if split:
            ranges.append((start, j))
            start = j
        i = j
    if start < n:
        ranges.append((start, n))
    return _attach_punctuation_only(text, spans, ranges)


def _attach_punctuation_only(
    text: str, spans: list[tuple[int, int]], ranges: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    pending_start: int | None = None  # leading punctuation-only pieces, glued to the next sentence
    for a, b in ranges:
        wordy = any(_has_word_char(text[spans[k][0] : spans[k][1]]) for k in range(a, b))
        if wordy:
            if pending_start is not None:
                a, pending_start = pending_start, None
            merged.append((a, b))
        elif merged:
            merged[-1] = (merged[-1][0], b)
        elif pending_start is None:
            pending_start = a
    if pending_start is not None:  # the whole document is punctuation
        merged.append((pending_start, ranges[-1][1]))
    return merged


def tokenize_sentences(text: str) -> list[list[str]]:
    """Returns the lowercased tokens of each sentence of raw `text`; `[]` when it has no tokens."""
    normalized = normalize_text(text)
    spans = token_spans(normalized)
    return [
        [normalized[s:e].lower() for s, e in spans[a:b]]
        for a, b in _sentence_token_ranges(normalized, spans)
    ]


def split_sentences(text: str) -> list[str]:
    """Returns the sentences of raw `text` as normalised strings (case kept), in order.

    `tokenize(s)` of each sentence gives that sentence's tokens; documents with no tokens give `[]`.
    """
    normalized = normalize_text(text)
    spans = token_spans(normalized)
    return [
        normalized[spans[a][0] : spans[b - 1][1]]
        for a, b in _sentence_token_ranges(normalized, spans)
    ]

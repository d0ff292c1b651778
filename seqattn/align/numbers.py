"""Numbers survive translation: attention-guided copying (Luong et al. 2015, "Addressing the
Rare Word Problem in Neural Machine Translation"; OpenNMT's ``replace_unk``).

The shipped models saw a digit in about 1 % of their training sources and turn "42 people"
into "Vier Personen". After decoding, a line whose source holds a number gets one forced pass
over its translation (:func:`seqattn.align.force.word_attention`, the model's alignment view),
and each source number is written into the target word that attends to it most:

* the candidates are the target words whose strongest source word is the number; a
  candidate that holds digits is preferred (it is the model's attempt at the number, as "197"
  for "1987"), else the one that attends to the number most;
* the chosen word becomes the number, its edge punctuation kept ("Vier" -> "42",
  "Jahren." -> "1987.", "drei5." -> "3.5."); another word that attends to the number too
  stays as the model wrote it ("Fünf 584 kleine Kinder");
* a number already in the translation, verbatim, is left alone; a number no target word
  attends to most is left out (nothing is inserted).

Only whole numbers ("42", "1987", "3.5", "10,000", "7:30") are copied: "2nd" or "A380" are
words to translate. Lines without digits cost nothing.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from seqattn.align.views import View
    from seqattn.translate import Hyp, Translation, Translator

NUMBER = re.compile(r"^\d+(?:[.,:]\d+)*$")
_EDGES = re.compile(r"^(\W*)(.*?)(\W*)$", re.DOTALL)
_DIGITS = re.compile(r"\d+(?:[.,:]\d+)*")


def number_of(word: str) -> str | None:
    """The number a source word is ("17," -> "17", "(1987)." -> "1987"), else None."""
    core = _EDGES.match(word)
    assert core is not None  # the pattern matches any string
    return core.group(2) if NUMBER.match(core.group(2)) else None


def has_number(text: str) -> bool:
    """Whether any whitespace word of ``text`` is a number (the lines worth a forced pass)."""
    return any(number_of(w) is not None for w in text.split())


def copy_numbers(translator: Translator, tr: Translation, view: View | None = None) -> int:
    """Write the source's numbers into every hypothesis of ``tr`` (see the module docstring);
    returns how many target words were changed. Each changed hypothesis keeps its pieces and
    scores (the model's), and lists the (source word, target word) pairs in ``hyp.copied``."""
    from seqattn.models import has_attention

    if tr.src is None or not tr.hyps or not has_number(tr.source) or \
            not has_attention(translator.model):  # no attention: nowhere to copy into
        return 0
    return sum(_copy_parts(translator, hyp, view) if hyp.parts is not None
               else _copy_into(translator, tr, hyp, _numbers(tr), view) for hyp in tr.hyps)


def _numbers(tr: Translation) -> dict[int, str]:
    """Source word index -> the number it is."""
    return {i: n for i, w in enumerate(tr.segmented.words) if (n := number_of(w)) is not None}


def _copy_parts(translator: Translator, hyp: Hyp, view: View | None) -> int:
    """A line of several sentences: only the sentences with a number get a forced pass; the
    line's words, text and copied pairs are joined again from the sentences'."""
    assert hyp.parts is not None  # the caller asked
    changed, src_off = 0, 0
    words: list[str] = []
    texts: list[str] = []
    copied: list[tuple[int, int]] = []
    for t, h in hyp.parts:  # a sentence's hypothesis may serve several of the line's n-best
        if has_number(t.source):
            changed += _copy_into(translator, t, h, _numbers(t), view)
        copied += [(i + src_off, j + len(words)) for i, j in h.copied]
        words += h.words
        texts += [h.text] if h.text else []
        src_off += len(t.segmented.words)
    if changed:
        hyp.words, hyp.text, hyp.copied = words, " ".join(texts), copied
    return changed


def _copy_into(translator: Translator, tr: Translation, hyp: Hyp, numbers: dict[int, str],
               view: View | None) -> int:
    from seqattn.align.force import word_attention

    if not hyp.words:
        return 0
    words, _ = word_attention(translator, tr, hyp, view)             # (n_tgt, n_src)
    best_source = words.argmax(dim=1).tolist()                         # per target word
    # how many of each number are missing (a number twice in the source needs two)
    missing = Counter(numbers.values())
    missing.subtract(m.group(0) for w in hyp.words for m in _DIGITS.finditer(w))
    before = list(hyp.words)
    changed = 0
    for i, number in numbers.items():
        if missing[number] <= 0:
            continue
        candidates = [j for j, s in enumerate(best_source) if s == i]
        if not candidates:
            continue
        with_digits = [j for j in candidates if _DIGITS.search(hyp.words[j])]
        j = max(with_digits or candidates, key=lambda k: float(words[k, i]))
        if number_of(hyp.words[j]) == number:  # this occurrence is there already
            continue
        missing[number] -= 1
        hyp.words[j] = _write(hyp.words[j], number)
        hyp.copied.append((i, j))
        changed += 1
    if changed:
        hyp.text = _retext(hyp.text, before, hyp.words)
    return changed


def _retext(text: str, before: list[str], after: list[str]) -> str:
    """``text`` with the changed words: rebuilt from the words when they are its whitespace
    words (as for any text sentencepiece decodes), else each changed word replaced once."""
    if text.split() == before:
        return " ".join(after)
    for old, new in zip(before, after):  # words holding pieces the text leaves out (<unk>)
        if old != new:
            text = text.replace(old, new, 1)
    return text


def _write(word: str, number: str) -> str:
    """``word`` with ``number`` in place of all between its edge punctuation ("Vier" -> "42",
    "drei5." -> "3.5.", "19-97," -> "1987,")."""
    edges = _EDGES.match(word)
    assert edges is not None  # the pattern matches any string
    return f"{edges.group(1)}{number}{edges.group(3)}"

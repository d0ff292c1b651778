"""Pictures of word alignments: Rich tables and heatmaps for the terminal, a self-contained
HTML page, and (with matplotlib installed) a PNG.

Everything here reads :class:`seqattn.align.force.PairAlignment` records (word matrix, eos mass,
links, checks) and returns a renderable or a string; only :func:`write_html` and
:func:`write_png` touch the disk, atomically (temporary file, then rename). The HTML page needs
no network and no script: one table per pair, cells shaded by weight (the value in the tooltip
and, from 0.1 up, in the cell), links outlined, every text escaped and marked ``dir="auto"`` so
right-to-left and CJK words keep their order and shape.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from seqattn.align.force import PairAlignment
from seqattn.align.words import entropy

log = logging.getLogger(__name__)

SHADES = ((0.75, "█"), (0.5, "▓"), (0.25, "▒"), (0.1, "░"))
PNG_MAX_PAIRS = 50


def shade(weight: float) -> str:
    """One block character for a weight: █ ≥ .75, ▓ ≥ .5, ▒ ≥ .25, ░ ≥ .1, else a space."""
    return next((c for level, c in SHADES if weight >= level), " ")


def _view_text(rec: PairAlignment) -> str:
    if rec.view is None:
        return ""
    v = rec.view
    kind = "" if v.attention == "cross" else f"{v.attention} self-attention, "
    blend = "" if v.blend is None else \
        f", blended {v.blend.weight:g} with layer {v.blend.layer}, heads {v.blend.heads}"
    return (f"{kind}layer {v.layer}, heads {v.heads}{', shift-att' if v.shift else ''}{blend}, "
            f"merge {v.merge}")


def _is_self(rec: PairAlignment) -> bool:
    return rec.view is not None and rec.view.attention != "cross"


def _special(rec: PairAlignment) -> str:
    """The column reported apart: end-of-sentence, or the decoder's beginning-of-sentence."""
    return "bos" if rec.view is not None and rec.view.attention == "decoder" else "eos"


def _title(rec: PairAlignment) -> str:
    from rich.markup import escape

    if _is_self(rec):
        return f"[{rec.id}] {escape(rec.source)}"
    return f"[{rec.id}] {escape(rec.source)}\n→ {escape(rec.target)}"


def alignment_table(rec: PairAlignment) -> Any:
    """Rich table: each target word, its top source word, weight, runner-up, entropy, eos,
    its linked source words, and (with checks) its flags."""
    from rich.markup import escape
    from rich.table import Table

    assert rec.words is not None and rec.eos is not None and rec.src and rec.tgt
    caption = _view_text(rec) if _is_self(rec) else f"forced attention, {_view_text(rec)}"
    if rec.checks is not None and rec.checks.omitted:
        omitted = ", ".join(escape(rec.src.words[i]) for i in rec.checks.omitted)
        caption += f"\npossible omission (little attention): {omitted}"
    table = Table(title=_title(rec), title_justify="left", caption=caption,
                  caption_justify="left", header_style="bold")
    columns = ["#", "word" if _is_self(rec) else "target", "attends to", "weight",
               "runner-up", "entropy", _special(rec), "links"]
    columns += ["flags"] if rec.checks is not None else []
    for name in columns:
        table.add_column(name, justify="right" if name in ("#", "weight", "entropy", "eos",
                                                           "bos") else "left")
    src_words = rec.src.words
    eos = rec.eos.tolist()
    for j, row in enumerate(rec.words.tolist()):
        order = sorted(range(len(row)), key=lambda i: -row[i])
        top = order[0]
        second = f"{escape(src_words[order[1]])} {row[order[1]]:.2f}" if len(order) > 1 else ""
        linked = " ".join(escape(src_words[s]) for s, t in sorted(rec.links) if t == j)
        cells = [str(j), escape(rec.tgt.words[j]), escape(src_words[top]), f"{row[top]:.2f}",
                 second, f"{entropy(row):.2f}", f"{eos[j]:.2f}", linked]
        if rec.checks is not None:
            cells.append(", ".join(rec.checks.target_flags(j)))
        table.add_row(*cells)
    return table


def heatmap(rec: PairAlignment) -> Any:
    """Rich heatmap: target words down, source words (and eos) across, shaded blocks;
    a link is shown as ``[..]``."""
    from rich.markup import escape
    from rich.table import Table

    assert rec.words is not None and rec.eos is not None and rec.src and rec.tgt
    legend = "█ ≥.75  ▓ ≥.5  ▒ ≥.25  ░ ≥.1   [ ] link"
    table = Table(title=_title(rec), title_justify="left", header_style="bold",
                  caption=f"{_view_text(rec)}\n{legend}", caption_justify="left",
                  show_lines=False, pad_edge=False, padding=(0, 0))
    table.add_column("", justify="right", no_wrap=True)
    omitted = set(rec.checks.omitted) if rec.checks is not None else set()
    for i, word in enumerate(rec.src.words):
        label = escape(word) + ("?" if i in omitted else "")
        table.add_column(label, justify="center", overflow="fold", min_width=4)
    table.add_column(_special(rec), justify="center", style="dim", min_width=4)
    links = rec.links
    for j, row in enumerate(rec.words.tolist()):
        cells = [escape(rec.tgt.words[j]) + " "]
        for i, w in enumerate(row):
            c = shade(w) * 2
            cells.append(f"[bold]\\[{c}][/bold]" if (i, j) in links else f" {c} ")
        cells.append(f" {shade(float(rec.eos[j])) * 2} ")
        table.add_row(*cells)
    return table


# --------------------------------------------------------------------------- HTML

_CSS = """
body { font-family: system-ui, "Noto Sans", "Noto Sans CJK SC", "Noto Sans Arabic", sans-serif;
       margin: 1.5em; color: #222; }
section { margin-bottom: 2.5em; }
h2 { font-size: 1em; font-weight: normal; margin: 0 0 .2em 0; }
.meta { color: #666; font-size: .85em; margin-bottom: .5em; }
table.hm { border-collapse: collapse; }
table.hm th { font-weight: normal; padding: 2px 4px; white-space: nowrap; }
table.hm thead th { writing-mode: vertical-rl; text-align: left; vertical-align: bottom; }
table.hm tbody th { text-align: right; }
table.hm td { width: 2.2em; height: 1.6em; text-align: center; font-size: .7em;
              border: 1px solid #eee; }
table.hm td.link { outline: 2px solid #d62728; outline-offset: -2px; }
table.hm td.eos { border-left: 2px solid #999; }
.flag { color: #d62728; font-size: .75em; }
.omit { color: #d62728; }
"""


def _cell(weight: float, link: bool, tip: str, cls: str = "") -> str:
    alpha = max(0.0, min(1.0, weight))
    fg = "#fff" if alpha >= 0.55 else "#222"
    text = f"{weight:.2f}".lstrip("0") if weight >= 0.1 else ""
    classes = " ".join(c for c in (cls, "link" if link else "") if c)
    attr = f' class="{classes}"' if classes else ""
    return (f'<td{attr} style="background: rgba(33, 102, 172, {alpha:.3f}); color: {fg}" '
            f'title="{html.escape(tip)}">{text}</td>')


def _section(rec: PairAlignment) -> str:
    e = html.escape
    head = (f'<h2>[{rec.id}] <span dir="auto">{e(rec.source)}</span></h2>' if _is_self(rec) else
            f'<h2>[{rec.id}] <span dir="auto">{e(rec.source)}</span> → '
            f'<span dir="auto">{e(rec.target)}</span></h2>')
    if rec.words is None or rec.eos is None or rec.src is None or rec.tgt is None:
        return f"<section>{head}<div class=\"meta\">empty pair: nothing aligned</div></section>"
    omitted = set(rec.checks.omitted) if rec.checks is not None else set()
    cols = "".join(f'<th dir="auto"{" class=omit" if i in omitted else ""}>{e(w)}</th>'
                   for i, w in enumerate(rec.src.words))
    rows = []
    for j, row in enumerate(rec.words.tolist()):
        tw = rec.tgt.words[j]
        flags = rec.checks.target_flags(j) if rec.checks is not None else []
        flag = f' <span class="flag">{e(" ".join(flags))}</span>' if flags else ""
        cells = "".join(_cell(w, (i, j) in rec.links, f"{tw} ← {rec.src.words[i]}: {w:.3f}")
                        for i, w in enumerate(row))
        eos = float(rec.eos[j])
        special = "beginning" if _special(rec) == "bos" else "end"
        cells += _cell(eos, False, f"{tw} ← {special} of sentence: {eos:.3f}", "eos")
        rows.append(f'<tr><th dir="auto">{e(tw)}{flag}</th>{cells}</tr>')
    meta = e(_view_text(rec)) + (" · outlined: links" if rec.links else "")
    return (f"<section>{head}<div class=\"meta\">{meta}</div><table class=\"hm\">"
            f"<thead><tr><th></th>{cols}<th>{_special(rec)}</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></section>")


def html_document(records: Sequence[PairAlignment], title: str = "seqattn align") -> str:
    """A complete HTML page with one heatmap per pair; no external assets."""
    body = "\n".join(_section(rec) for rec in records)
    return (f'<!DOCTYPE html>\n<html lang="und">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            f"{body}\n</body>\n</html>\n")


def write_html(path: str | Path, records: Sequence[PairAlignment],
               title: str = "seqattn align") -> None:
    """Write :func:`html_document` to ``path`` atomically."""
    from seqattn.textio import atomic_write

    text = html_document(records, title)
    atomic_write(Path(path), lambda f: f.write(text))


# --------------------------------------------------------------------------- PNG


def have_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def write_png(path: str | Path, records: Sequence[PairAlignment]) -> int:
    """One heatmap per non-empty pair (at most ``PNG_MAX_PAIRS``), stacked in one PNG written
    atomically. Needs matplotlib (``pip install matplotlib``). Returns the pairs drawn. Words
    in any script are drawn with an installed font that has them (:func:`font_families`); a
    character none has is named in a warning."""
    import matplotlib

    shown = [r for r in records if r.words is not None][:PNG_MAX_PAIRS]
    families, missing = font_families(w for r in shown for side in r.sides for w in side.words)
    if missing:
        log.warning("the PNG shows %d character(s) as boxes (%s): no installed font has them; "
                    "install one that does (e.g. Debian's fonts-noto-cjk for Chinese, Japanese "
                    "and Korean)", len(missing), " ".join(f"{c} U+{ord(c):04X}"
                                                         for c in missing[:8]))
    with matplotlib.rc_context({"font.family": families}):
        return _draw_png(path, shown)


def font_families(texts: Iterable[str]) -> tuple[list[str], list[str]]:
    """Font families that together draw every character of ``texts``: matplotlib's default
    (DejaVu Sans) first, then installed fonts for what it lacks (matplotlib falls back along
    the list, glyph by glyph); and the characters no installed font has."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    chars = {c for text in texts for c in text if not c.isspace()}
    first = font_manager.findfont("DejaVu Sans")
    missing = {c for c in chars if ord(c) not in FT2Font(first).get_charmap()}
    families = ["DejaVu Sans"]
    def preference(e: Any) -> tuple[bool, bool, str]:  # sans-serif, regular weight first
        return "Sans" not in e.name, e.weight not in (400, "normal", "regular"), e.name

    for entry in sorted(font_manager.fontManager.ttflist, key=preference):
        if not missing:
            break
        if entry.name in families or "Last Resort" in entry.name:  # boxes for everything
            continue
        try:
            charmap = FT2Font(entry.fname).get_charmap()
        except (OSError, RuntimeError):
            continue
        found = {c for c in missing if ord(c) in charmap}
        if found:
            families.append(entry.name)
            missing -= found
    return families, sorted(missing)


def _draw_png(path: str | Path, shown: list[PairAlignment]) -> int:
    from matplotlib.figure import Figure

    from seqattn.textio import atomic_open

    if not shown:
        shown_height = [1.0]
    else:
        shown_height = [max(1.5, 0.3 * len(r.sides[1].words) + 1.2) for r in shown]
    width = max([4.0] + [0.35 * len(r.sides[0].words) + 2.0 for r in shown])
    fig = Figure(figsize=(width, sum(shown_height)), layout="constrained")
    axes = fig.subplots(max(1, len(shown)), 1, squeeze=False,
                        height_ratios=shown_height)[:, 0]
    for ax, rec in zip(axes, shown):
        words = rec.words
        assert words is not None  # only pairs with a matrix are shown
        ax.imshow(words.numpy(), cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
        src, tgt = rec.sides
        ax.set_xticks(range(len(src.words)), src.words, rotation=90)
        ax.set_yticks(range(len(tgt.words)), tgt.words)
        if rec.links:
            s, t = zip(*sorted(rec.links))
            ax.scatter(s, t, s=40, facecolors="none", edgecolors="#d62728")
        ax.set_title(f"[{rec.id}] {_view_text(rec)}", fontsize=8)
    if not shown:
        axes[0].axis("off")
    with atomic_open(Path(path), "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    return len(shown)

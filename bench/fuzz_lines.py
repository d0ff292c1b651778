"""Hostile lines through ``seqattn translate`` and ``seqattn align``: N lines in, N lines out.

    python bench/fuzz_lines.py                  # 10,000 lines, seed 0, a tiny random Transformer
    python bench/fuzz_lines.py --lines 2000 --seed 3
    python bench/fuzz_lines.py --lines 300 --seed 0 --model en-de   # a real model, timed

The longer run of ``tests/test_reliability.py``'s line-safety tests. A seeded mix of empty,
whitespace-only, control-character, right-to-left, emoji, invalid-UTF-8, CRLF-ended, plain and
10,000-character lines (the last line without a newline) goes through the CLI, as a subprocess,
with a tiny random-weight model (``tests.conftest.make_model_dir``):

* ``translate --beam 1 --max-len 8 -i SRC``: exit 0, exactly N output lines, an empty output
  line for every blank input line, one warning per invalid-UTF-8 line;
* ``align SRC TGT`` (TGT: the same lines, shuffled): exit 0, exactly N Pharaoh lines, an empty
  one for every pair with a blank side, every link inside both sentences' word counts.

``--model NAME`` (a shipped model or a model directory) runs ``translate -m NAME -i SRC``
instead, with the model's default options (for ``en-de``: beam 5, 1.5 · source + 10 pieces, at
most ``decoding.max_output_len``), and the same translate checks; its ``seconds`` are the wall
time of that one process, start-up included (issue 17: 300 lines, seed 0, through ``en-de``
within 20 s on 2 cores). No align run, no tiny model.

Prints one JSON summary on stdout and exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SAMPLE = ROOT / "sample_data"
# One torch thread unless told otherwise: on a busy 2-core machine two threads per op made the
# tiny model's decoding about 40x slower (every op waits for the other thread's time slice).
THREADS = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}

# category -> weight (per 1000 lines)
WEIGHTS = {"plain": 300, "empty": 100, "whitespace": 100, "control": 100, "rtl": 100,
           "emoji": 100, "invalid_utf8": 80, "crlf": 80, "mixed": 35, "long": 5}
SPACES = [" ", "\t", "\u3000", "\u00a0", "\u2003", "\u2028", "\x0b", "\x0c", "\x1c", "\x85"]
CONTROL = [chr(c) for c in [*range(0, 9), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F, 0x80, 0x9F]] + [
    "\u200b", "\u200d", "\u200e", "\u202e", "\u2066", "\ufeff", "\u00ad"]
EMOJI = ["🙂", "👍🏽", "👨\u200d👩\u200d👧", "🇩🇪", "❤\ufe0f", "🐕", "🚲", "🤷\u200d♀\ufe0f"]
RTL_WORDS = ["שלום", "עולם", "כלב", "רץ", "مرحبا", "بالعالم", "كلب", "يركض", "\u202bمختلط\u202c"]
INVALID = [b"\xff", b"\xfe", b"\xc3", b"\xed\xa0\x80", b"\xe2\x82", b"\x80\x80", b"\xf8\x88\x80"]


def make_line(category: str, rng: random.Random, plain: list[str]) -> bytes:
    """One line's bytes, without its ending."""
    def sentence() -> str:
        return rng.choice(plain)

    if category == "empty":
        return b""
    if category == "whitespace":
        return "".join(rng.choice(SPACES) for _ in range(rng.randint(1, 8))).encode()
    if category == "control":
        text = "".join(rng.choice(CONTROL) for _ in range(rng.randint(1, 6)))
        return (text if rng.random() < 0.5 else f"{text} {sentence()} {text}").encode()
    if category == "rtl":
        return " ".join(rng.choice(RTL_WORDS) for _ in range(rng.randint(1, 12))).encode()
    if category == "emoji":
        words = [rng.choice(EMOJI) if rng.random() < 0.6 else w for w in sentence().split()]
        return " ".join(words).encode()
    if category == "invalid_utf8":
        data = bytearray(sentence().encode())
        for _ in range(rng.randint(1, 3)):
            data[rng.randint(0, len(data)):0] = rng.choice(INVALID)
        return bytes(data)
    if category == "crlf":
        return sentence().encode()  # the line ending is CRLF
    if category == "mixed":
        return "".join(chr(rng.choice([rng.randint(0x20, 0x7E), rng.randint(0xA0, 0x2FFF),
                                       rng.randint(0x1F300, 0x1FAFF)]))
                       for _ in range(rng.randint(1, 60))).encode()
    if category == "long":
        unit = rng.choice(["x", "dog ", "🙂", "שלום ", sentence() + " "])
        return (unit * (10_000 // len(unit) + 1))[:10_000].encode()
    return sentence().encode()


def generate(n: int, seed: int) -> tuple[list[bytes], list[str], bytes]:
    """Lines, their categories, and the file's bytes (CRLF where asked; no final newline)."""
    rng = random.Random(seed)
    plain = (SAMPLE / "train.en").read_text(encoding="utf-8").splitlines()[:2000]
    names, weights = zip(*WEIGHTS.items())
    categories = rng.choices(names, weights, k=n)
    lines = [make_line(c, rng, plain) for c in categories]
    return lines, categories, join(lines, categories)


def join(lines: list[bytes], categories: list[str]) -> bytes:
    """The file's bytes: CRLF after 'crlf' lines, LF after the others, nothing after the last
    line unless it is empty (an empty last line without an ending would be no line at all)."""
    ends = [b"\r\n" if c == "crlf" else b"\n" for c in categories]
    if lines and lines[-1]:
        ends[-1] = b""
    return b"".join(line + end for line, end in zip(lines, ends))


def decoded(line: bytes) -> str:
    return line.decode("utf-8", errors="replace")


def is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def is_blank(line: bytes) -> bool:
    return not decoded(line).strip()


def seqattn(args: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    began = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "seqattn", "-q", *args], capture_output=True,
                          env={**os.environ, "NO_COLOR": "1", "COLUMNS": "300", **THREADS})
    return proc, time.perf_counter() - began


TINY_OPTIONS = ("--beam", "1", "--max-len", "8")


def check_translate(model: Path | str, src: Path, lines: list[bytes], problems: list[str],
                    options: tuple[str, ...] = TINY_OPTIONS) -> dict:
    proc, seconds = seqattn(["translate", "-m", str(model), *options, "-i", str(src)])
    err = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        problems.append(f"translate: exit {proc.returncode}: {err.strip()[-300:]}")
    out = proc.stdout.split(b"\n")
    if out[-1] != b"" or len(out) - 1 != len(lines):
        problems.append(f"translate: {len(lines)} lines in, {len(out) - 1} out")
    else:
        wrong = [k + 1 for k, (line, got) in enumerate(zip(lines, out)) if is_blank(line) and got]
        if wrong:
            problems.append(f"translate: blank lines {wrong[:10]} gave non-empty output")
    flat = " ".join(err.split())
    invalid = sum(not is_utf8(line) for line in lines)
    warned_invalid = len(re.findall(r"line \d+ is not valid UTF-8", flat))
    if warned_invalid != invalid:
        problems.append(f"translate: {invalid} invalid-UTF-8 lines, {warned_invalid} warnings")
    if "error" in flat.lower():
        problems.append(f"translate: stderr mentions an error: {flat[-300:]}")
    return {"exit": proc.returncode, "seconds": round(seconds, 1), "lines_out": len(out) - 1,
            "options": list(options), "invalid_utf8_warnings": warned_invalid,
            "cut_warnings": len(re.findall(r"line \d+ has (?:a sentence of )?\d+ pieces, more",
                                           flat)),
            "longest_output_chars": max((len(decoded(x)) for x in out), default=0)}


def check_align(model: Path, src: Path, tgt: Path, src_lines: list[bytes],
                tgt_lines: list[bytes], problems: list[str]) -> dict:
    proc, seconds = seqattn(["align", "-m", str(model), str(src), str(tgt)])
    err = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        problems.append(f"align: exit {proc.returncode}: {err.strip()[-300:]}")
    out = proc.stdout.decode().split("\n")
    n = len(src_lines)
    links = 0
    if out[-1] != "" or len(out) - 1 != n:
        problems.append(f"align: {n} pairs in, {len(out) - 1} lines out")
    else:
        for k, (s, t, got) in enumerate(zip(src_lines, tgt_lines, out)):
            if (is_blank(s) or is_blank(t)) and got:
                problems.append(f"align: pair {k + 1} has a blank side but links '{got[:40]}'")
            n_src, n_tgt = (len(re.findall(r"\S+", decoded(x).rstrip("\r"))) for x in (s, t))
            for link in got.split():
                i, j = map(int, link.split("-"))
                links += 1
                if not (0 <= i < n_src and 0 <= j < n_tgt):
                    problems.append(f"align: pair {k + 1}: link {link} outside "
                                    f"{n_src}x{n_tgt} words")
    flat = " ".join(err.split())
    if "error" in flat.lower():
        problems.append(f"align: stderr mentions an error: {flat[-300:]}")
    return {"exit": proc.returncode, "seconds": round(seconds, 1), "lines_out": len(out) - 1,
            "links": links,
            "invalid_utf8_warnings": len(re.findall(r"line \d+ is not valid UTF-8", flat)),
            "cut_warnings": len(re.findall(r"pair \d+: the (?:source|target) has", flat))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arch", default="transformer",
                        choices=["transformer", "bahdanau", "luong"])
    parser.add_argument("--model", metavar="NAME", default=None,
                        help="Translate with this model (shipped name or directory) and its "
                             "default options (no align run, no tiny model).")
    parser.add_argument("--keep", action="store_true", help="Keep the work directory.")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="seqattn-fuzz-"))
    began = time.perf_counter()
    lines, categories, blob = generate(args.lines, args.seed)
    if args.model is not None:
        return with_model(args, work, lines, categories, blob)

    from tests.conftest import make_model_dir

    model = make_model_dir(work / "model", args.arch, seed=args.seed)
    src, tgt = work / "src.txt", work / "tgt.txt"
    src.write_bytes(blob)
    order = list(range(len(lines)))
    random.Random(args.seed + 1).shuffle(order)
    tgt_lines = [lines[k] for k in order]
    tgt.write_bytes(join(tgt_lines, [categories[k] for k in order]))

    problems: list[str] = []
    translate = check_translate(model, src, lines, problems)
    align = check_align(model, src, tgt, lines, tgt_lines, problems)
    summary = {
        "lines": len(lines), "seed": args.seed, "arch": args.arch,
        "categories": dict(sorted(Counter(categories).items())),
        "blank_lines": sum(map(is_blank, lines)),
        "invalid_utf8_lines": sum(not is_utf8(line) for line in lines),
        "blank_pairs": sum(is_blank(s) or is_blank(t) for s, t in zip(lines, tgt_lines)),
        "translate": translate, "align": align,
        "seconds": round(time.perf_counter() - began, 1),
        "omp_num_threads": THREADS["OMP_NUM_THREADS"],
        "problems": problems[:20], "result": "ok" if not problems else "FAILED",
    }
    return report(summary, problems, work, args.keep)


def with_model(args: argparse.Namespace, work: Path, lines: list[bytes], categories: list[str],
               blob: bytes) -> int:
    """``--model NAME``: the lines through ``translate -m NAME`` with its default options."""
    src = work / "src.txt"
    src.write_bytes(blob)
    problems: list[str] = []
    translate = check_translate(args.model, src, lines, problems, options=())
    summary = {
        "lines": len(lines), "seed": args.seed, "model": args.model,
        "categories": dict(sorted(Counter(categories).items())),
        "blank_lines": sum(map(is_blank, lines)),
        "invalid_utf8_lines": sum(not is_utf8(line) for line in lines),
        "translate": translate, "seconds": translate["seconds"],
        "omp_num_threads": THREADS["OMP_NUM_THREADS"], "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "problems": problems[:20], "result": "ok" if not problems else "FAILED",
    }
    return report(summary, problems, work, args.keep)


def report(summary: dict, problems: list[str], work: Path, keep: bool) -> int:
    """Print the JSON summary, tidy up, and return the exit code."""
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    if keep:
        print(f"work directory kept: {work}", file=sys.stderr)
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())

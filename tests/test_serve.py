"""seqattn serve, in process (FastAPI's test client): results equal the CLI's, every bad
request gets a one-line 4xx JSON error, the API key and the origin check, and the batcher."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from seqattn.cli import run  # noqa: E402
from seqattn.errors import UsageError  # noqa: E402
from seqattn.serve.api import create_app  # noqa: E402
from seqattn.serve.batcher import Batcher, Busy  # noqa: E402
from seqattn.serve.service import Service  # noqa: E402
from seqattn.serve.settings import ServeSettings  # noqa: E402
from seqattn.translate import models_dir  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "multi30k"
LINES = ["A man in a blue shirt is playing the guitar.",
         "Two dogs run through the snow. They have 3 balls.",
         "",
         "A WOMAN IS READING A BOOK.",
         "Ein Satz auf Deutsch, nicht Englisch."]


@pytest.fixture(scope="module")
def service() -> Service:
    return Service.load(["en-de", "de-en"], device="cpu")


def app_with(service: Service, **settings):
    """An app over the loaded models under other settings."""
    return create_app(Service(service.models, ServeSettings(**settings)))


LOCAL = "http://127.0.0.1:8000"   # the Host a loopback server answers to


@pytest.fixture(scope="module")
def client(service):
    app = app_with(service, max_lines=8, max_chars=300, max_body_bytes=20000, max_beam=8)
    with TestClient(app, base_url=LOCAL) as c:
        yield c


def cli_jsonl(capsys, *args: str) -> list[dict]:
    capsys.readouterr()
    assert run(list(args)) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def one_line_error(r, status: int) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == ["error"]
    assert "\n" not in body["error"] and "Traceback" not in body["error"]
    return body["error"]


# --------------------------------------------------------------------------- same as the CLI


@pytest.mark.parametrize("options,flags", [
    ({}, []),
    ({"beam": 2, "n_best": 2}, ["--beam", "2", "--n-best", "2"]),
    ({"heads": "max", "layer": 1}, ["--heads", "max", "--layer", "1"]),
])
def test_translate_equals_cli(client, capsys, tmp_path, options, flags):
    src = tmp_path / "in.en"
    src.write_text("\n".join(LINES) + "\n")
    want = cli_jsonl(capsys, "translate", "-m", "en-de", "-f", "jsonl", "-i", str(src),
                     "--device", "cpu", *flags)
    r = client.post("/v1/translate", json={"texts": LINES, "align": True, **options})
    assert r.status_code == 200, r.text
    got = r.json()["translations"]
    assert [g["id"] for g in got] == list(range(len(LINES)))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g["translation"] == w["translation"]
        assert g["links"] == w["links"] and g["alignment"] == w["alignment"]
        assert g["target_words"] == w["target_words"]
        assert g.get("nbest", []) and [h["translation"] for h in g["nbest"]] == \
            [h["translation"] for h in w["nbest"]] if "nbest" in w else "nbest" not in g
        if w["score"] is None:
            assert g["score"] is None
        else:
            assert g["score"] == pytest.approx(w["score"], abs=1e-4)
    assert got[2]["translation"] == "" and got[2]["links"] == []
    assert got[3]["translation"].isupper()  # ALL-CAPS in, capitals out, as the CLI


def test_plain_translation_has_no_alignment_fields(client):
    r = client.post("/v1/translate", json={"text": LINES[0]})
    rec = r.json()["translations"][0]
    assert r.status_code == 200 and rec["translation"] and rec["id"] == 0
    assert "links" not in rec and "attention" not in rec


def test_attention_and_checks(client, capsys):
    want = cli_jsonl(capsys, "translate", "-m", "en-de", "-f", "jsonl", "--attention",
                     "--check", "--device", "cpu", LINES[1])[0]
    got = client.post("/v1/translate", json={"text": LINES[1], "align": True,
                                             "attention": True, "check": True}).json()
    rec = got["translations"][0]
    assert rec["checks"] == want["checks"]
    assert len(rec["attention"]) == len(rec["target_words"])
    for row, wrow in zip(rec["attention"], want["attention"]):
        assert row == pytest.approx(wrow, abs=1e-4)


def test_align_equals_cli(client, capsys, tmp_path):
    pairs = [("a dog runs in the park", "ein Hund rennt im Park"),
             ("two men play chess", "zwei Männer spielen Schach"), ("", "")]
    (tmp_path / "s").write_text("".join(p[0] + "\n" for p in pairs))
    (tmp_path / "t").write_text("".join(p[1] + "\n" for p in pairs))
    for extra, flags in (({}, []), ({"reverse_model": "de-en"}, ["--reverse-model", "de-en"]),
                         ({"method": "threshold", "threshold": 0.3, "check": True},
                          ["--method", "threshold", "--threshold", "0.3", "--check"])):
        want = cli_jsonl(capsys, "align", "-m", "en-de", "-f", "jsonl", "--device", "cpu",
                         str(tmp_path / "s"), str(tmp_path / "t"), *flags)
        r = client.post("/v1/align", json={"pairs": pairs, **extra})
        assert r.status_code == 200, r.text
        got = r.json()["alignments"]
        for g, w in zip(got, want, strict=True):
            assert g["links"] == w["links"] and g.get("sym") == w.get("sym")
            assert g.get("checks") == w.get("checks")
            assert g["link_probs"] == pytest.approx(w["link_probs"], abs=1e-4)


def test_models_and_health(client):
    models = client.get("/v1/models").json()["models"]
    assert [m["name"] for m in models] == ["en-de", "de-en"]
    assert models[0]["default"] and (models[0]["source_language"], models[0]["target_language"]) \
        == ("en", "de")
    assert models[0]["layers"] == 4 and models[0]["aligner"]  # 3 decoder layers + the aligner
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["models"] == ["en-de", "de-en"]


def test_explorer_page_is_served(client):
    r = client.get("/")
    assert r.status_code == 200 and "<!doctype html" in r.text.lower()
    assert "http://" not in r.text and "https://" not in r.text  # nothing from a CDN


def test_no_file_is_written(service, client):
    root = models_dir()
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    client.post("/v1/translate", json={"texts": LINES, "align": True, "check": True})
    client.post("/v1/align", json={"pairs": [["a b", "c d"]], "reverse_model": "de-en"})
    after = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    assert before == after


# --------------------------------------------------------------------------- bad requests


@pytest.mark.parametrize("body,status,says", [
    (b'{"text": ', 400, "malformed JSON"),
    (b"[1, 2]", 400, "JSON object"),
    (b'"just a string"', 400, "JSON object"),
    (b"", 400, ""),
    (b'{"text": "a", "beam": 0}', 422, "beam"),
    (b'{"text": "a", "beam": "five"}', 422, "beam"),
    (b'{"text": "a", "n_best": 9, "beam": 2}', 422, "n_best"),
    (b'{"text": "a", "alpha": -1}', 422, "alpha"),
    (b'{"text": "a", "model": "xx-yy"}', 404, "unknown model 'xx-yy'"),
    (b'{"text": "a", "model": "../../etc"}', 404, "unknown model"),
    (b'{"text": "a", "align": true, "layer": 7}', 422, "layer 7"),
    (b'{"text": "a", "align": true, "heads": "9"}', 422, "heads"),
    (b'{"text": "a", "blend": "x:y"}', 422, "blend"),
    (b'{"text": "a", "attention": true}', 422, "align"),
    (b'{"text": "a", "texts": ["b"]}', 422, "not both"),
    (b'{}', 422, "'text'"),
    (b'{"text": "a", "colour": "red"}', 422, "colour"),
    (b'{"texts": ["a", "b", "c", "d", "e", "f", "g", "h", "i"]}', 413, "at most 8"),
    (b'{"text": "' + b"x" * 400 + b'"}', 413, "300"),
    (b'{"text": "' + b"x " * 12000 + b'"}', 413, "20000"),
    (b'{"text": null}', 422, "one of them"),
    (b'{"texts": [1, 2]}', 422, "texts.0"),
    (b'{"text": "a", "alpha": NaN}', 422, "alpha"),
    (b'{"text": "a", "alpha": Infinity}', 422, "alpha"),
    (b'{"text": "a", "beam": 9}', 422, "beam 9 is more than this server allows (8"),
    (b'{"text": "a", "max_len": 100000000}', 422, "max_len (100000000) cannot exceed"),
    (b'{"text": "a", "min_len": 5000, "max_output_len": 6000}', 422, "max_output_len 6000"),
    (b'{"text": "a", "n_best": 6}', 422, "n_best (6) cannot exceed beam"),
    (b'{"text": "two\\nlines"}', 422, "line break"),
    (b'{"texts": ["ok", "a\\rb"]}', 422, "texts[1] holds a line break"),
])
def test_bad_translate_requests(client, body, status, says):
    r = client.post("/v1/translate", content=body, headers={"content-type": "application/json"})
    message = one_line_error(r, status)
    assert says in message
    assert "decoding." not in message and "view." not in message  # the request's names


def test_post_without_content_length(client):
    def chunks():
        yield b'{"text": "A dog."}'

    r = client.post("/v1/translate", content=chunks(), headers={"content-type": "application/json"})
    assert "Content-Length" in one_line_error(r, 411)


@pytest.mark.parametrize("body,status,says", [
    ({"pairs": [["a"]]}, 422, "pairs"),
    ({"pairs": [["a", "b"]], "method": "nope"}, 422, "method"),
    ({"pairs": [["a", "b"]], "sym": "union"}, 422, "reverse"),
    ({"pairs": [["a", "b"]], "reverse_model": "fr-en"}, 404, "fr-en"),
    ({"pairs": [["a", "b"]], "threshold": 2}, 422, "threshold"),
    ({"pairs": [["a", "b"]] * 9}, 413, "at most 8"),
    ({"pairs": [["a", "x" * 301]]}, 413, "300"),
    ({"pairs": [["a\nb", "c"]]}, 422, "line break"),
])
def test_bad_align_requests(client, body, status, says):
    assert says in one_line_error(client.post("/v1/align", json=body), status)


def test_unknown_paths_and_methods(client):
    assert "Not Found" in one_line_error(client.get("/v1/nothing"), 404)
    one_line_error(client.get("/v1/translate"), 405)
    one_line_error(client.get("/static/../../../etc/passwd"), 404)


# --------------------------------------------------------------------------- who may call


def test_api_key(service):
    app = app_with(service, host="0.0.0.0", api_key="s3cret")
    with TestClient(app, base_url="http://203.0.113.7:8000") as c:
        body = {"text": "A dog."}
        assert "API key" in one_line_error(c.post("/v1/translate", json=body), 401)
        wrong = {"authorization": "Bearer s3creT"}
        one_line_error(c.post("/v1/translate", json=body, headers=wrong), 401)
        one_line_error(c.get("/v1/models", headers={"x-api-key": "s3cre"}), 401)
        ok = c.post("/v1/translate", json=body, headers={"authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["translations"][0]["translation"]
        assert c.get("/v1/models", headers={"x-api-key": "s3cret"}).status_code == 200
        assert c.get("/health").status_code == 200     # open: for load balancers
        assert c.get("/").status_code == 200            # the page asks for the key itself


def test_cross_origin(service):
    with TestClient(app_with(service), base_url=LOCAL) as c:
        r = c.get("/v1/models", headers={"origin": "https://evil.example"})
        assert "--allow-origin" in one_line_error(r, 403)
        own = c.get("/v1/models", headers={"origin": LOCAL})
        assert own.status_code == 200
    allowed = app_with(service, allow_origins=("https://app.example",))
    with TestClient(allowed, base_url=LOCAL) as c:
        r = c.get("/v1/models", headers={"origin": "https://app.example"})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        pre = c.options("/v1/translate", headers={
            "origin": "https://app.example", "access-control-request-method": "POST",
            "access-control-request-headers": "content-type"})
        assert pre.status_code == 200
        one_line_error(c.get("/v1/models", headers={"origin": "https://other.example"}), 403)
        refused = c.post("/v1/translate", json={"text": "a", "beam": 99},
                         headers={"origin": "https://app.example"})
        assert refused.status_code == 422  # an error an allowed page can read
        assert refused.headers["access-control-allow-origin"] == "https://app.example"


def test_dns_rebinding_is_refused(service):
    """A page on evil.example whose name re-resolves to 127.0.0.1 sends its own Host (and a
    matching Origin): a loopback server answers only to its own names."""
    with TestClient(app_with(service), base_url="http://evil.example:8000") \
            as c:
        r = c.post("/v1/translate", json={"text": "a"},
                   headers={"origin": "http://evil.example:8000"})
        assert "host 'evil.example:8000' refused" in one_line_error(r, 403)
    for host in ("http://localhost:8000", "http://[::1]:8000"):
        with TestClient(app_with(service), base_url=host) as c:
            assert c.get("/v1/models").status_code == 200


@pytest.mark.parametrize("kwargs,says", [
    ({"host": "0.0.0.0"}, "API key"),
    ({"host": "192.168.1.5"}, "API key"),
    ({"api_key": "k", "no_auth": True}, "one or the other"),
    ({"api_key": "  "}, "empty"),
    ({"max_lines": 0}, "max_lines"),
    ({"batch_wait_ms": -1}, "batch_wait_ms"),
    ({"allow_origins": ("evil.example",)}, "origin"),
    ({"api_key": "clé"}, "ASCII"),
    ({"max_beam": 0}, "max_beam"),
])
def test_settings_refused(kwargs, says):
    with pytest.raises(UsageError, match=says):
        ServeSettings(**kwargs)


def test_settings_allowed():
    assert ServeSettings(host="0.0.0.0", no_auth=True).no_auth
    assert ServeSettings(host="::1").host == "::1"           # loopback: no key needed
    assert ServeSettings(host="localhost", api_key="k").api_key == "k"


def test_cli_refuses_open_address_without_key(capsys, monkeypatch):
    monkeypatch.delenv("SEQATTN_API_KEY", raising=False)
    assert run(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "--api-key" in err and "--no-auth" in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------- the batcher


def _work(calls):
    def work(group):
        calls.append([(plan, list(items)) for plan, items in group])
        return [[f"{plan}:{x}" for x in items] for plan, items in group]
    return work


def test_batcher_gathers_concurrent_requests():
    calls: list = []

    async def main():
        b = Batcher(_work(calls), key=lambda plan: plan[0], wait_s=0.05, max_lines=100,
                    max_queued=1000)
        b.start()
        got = await asyncio.gather(*[b.submit("p1" if k % 3 else "q", [k, k + 100])
                                     for k in range(9)] + [b.submit("p2", [7])])
        await b.stop()
        return got

    got = asyncio.run(main())
    assert got[4] == ["p1:4", "p1:104"] and got[3] == ["q:3", "q:103"]   # each its own
    assert got[9] == ["p2:7"]
    assert len(calls) == 2                      # one pass per key: p1 and p2 share "p"
    keys = sorted({plan[0] for plan, _ in calls[0]} | {plan[0] for plan, _ in calls[1]})
    assert keys == ["p", "q"] and sum(len(i) for c in calls for _, i in c) == 19


def test_batcher_caps_lines_isolates_errors_and_refuses_when_full():
    sizes: list[int] = []

    def work(group):
        sizes.append(sum(len(items) for _, items in group))
        if any(items == ["bad"] for _, items in group):
            raise UsageError("bad input")
        return [items for _, items in group]

    async def main():
        b = Batcher(work, key=lambda plan: plan, wait_s=0.05, max_lines=4, max_queued=11)
        b.start()
        jobs = [b.submit("p", [k, k]) for k in range(5)] + [b.submit("p", ["bad"])]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        full = [b.submit("p", list(range(4))) for _ in range(3)]
        crowded = await asyncio.gather(*full, return_exceptions=True)
        await b.stop()
        return results, crowded

    results, crowded = asyncio.run(main())
    assert results[:5] == [[k, k] for k in range(5)]   # the bad request fails alone
    assert isinstance(results[5], UsageError)
    assert max(sizes) <= 4                             # never more than max_lines a batch
    assert [isinstance(r, Busy) for r in crowded] == [False, False, True]  # 12 lines > 11

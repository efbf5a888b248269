"""`imgtrans serve`: the API on a real server (uvicorn on an ephemeral 127.0.0.1 port), its refusals,
its bounded queue, its token, and dynamic batching.  The page in a browser: test_serve_page.py."""
from __future__ import annotations

import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'imgtrans[serve]')")
pytest.importorskip("uvicorn", reason="the serve extra is not installed (pip install 'imgtrans[serve]')")

from click.testing import CliRunner  # noqa: E402
from serving import image_bytes, pixels_of, post_image, request, write_one_way, write_two_way  # noqa: E402

from imgtrans.cli import cli  # noqa: E402
from imgtrans.data.images import decode_image, load_image  # noqa: E402
from imgtrans.serve.app import ServeSettings, create_app  # noqa: E402
from imgtrans.serve.models import load_served  # noqa: E402
from imgtrans.serve.server import check_host, running  # noqa: E402
from imgtrans.util.errors import PixelLimitError  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    return {"oneway": write_one_way(folder / "oneway.safetensors"),
            "twoway": write_two_way(folder / "twoway.safetensors")}


@pytest.fixture(scope="module")
def models(files):
    return load_served([str(files["oneway"]), f"both={files['twoway']}"])


@pytest.fixture
def server(models):
    with running(create_app(models)) as base:
        yield base


def _translate_command(model: Path, data: bytes, suffix: str, tmp_path: Path, *extra: str) -> np.ndarray:
    src, out = tmp_path / f"in{suffix}", tmp_path / "out.png"
    src.write_bytes(data)
    result = CliRunner().invoke(cli, ["translate", "--model", str(model), str(src), str(out), *extra])
    assert result.exit_code == 0, result.output
    return pixels_of(out)


def _bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` pixels: the decoder would allocate them all."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


# ----------------------------------------------------------------------------- the API

def test_healthz_models_and_docs(server) -> None:
    assert request(server, "GET", "/healthz").json() == {"status": "ok"}
    listed = request(server, "GET", "/v1/models").json()["models"]
    for entry in listed:  # the precision each direction runs in, and why (fp32 here: no faster CPU precision)
        precision = entry.pop("precision")
        assert set(precision) == set(entry["directions"])
        assert all(p["running"] in ("fp32", "bf16", "fp16") and p["why"] for p in precision.values())
    assert listed == [  # what each model does: test_serve_models.py
        {"name": "oneway", "directions": ["AtoB"], "default_direction": "AtoB", "channels": {"AtoB": {"in": 3, "out": 3}},
         "description": "pix2pix", "domains": None, "means": {"AtoB": "domain A -> domain B"}},
        {"name": "both", "directions": ["AtoB", "BtoA"], "default_direction": "AtoB",
         "channels": {"AtoB": {"in": 3, "out": 3}, "BtoA": {"in": 3, "out": 1}},
         "description": "cyclegan", "domains": None,
         "means": {"AtoB": "domain A -> domain B", "BtoA": "domain B -> domain A"}}]
    docs = request(server, "GET", "/docs")
    assert docs.status == 200 and b"swagger" in docs.body.lower()
    spec = request(server, "GET", "/openapi.json").json()
    assert "/v1/translate" in spec["paths"]


@pytest.mark.parametrize("fmt,suffix", [("PNG", ".png"), ("JPEG", ".jpg"), ("BMP", ".bmp")])
def test_translate_gives_exactly_the_translate_commands_pixels(server, files, tmp_path, fmt, suffix) -> None:
    data = image_bytes(45, 29, fmt)  # odd size: padded to the stride and cropped back
    reply = post_image(server, data, "model=oneway")
    assert reply.status == 200 and reply.headers["content-type"] == "image/png"
    got = pixels_of(reply.body)
    assert got.shape == (29, 45, 3)
    np.testing.assert_array_equal(got, _translate_command(files["oneway"], data, suffix, tmp_path))


def test_direction_picks_the_network_and_matches_translate(server, files, tmp_path) -> None:
    data = image_bytes(40, 24)
    back = post_image(server, data, "model=both&direction=BtoA")
    assert back.status == 200 and back.headers["x-imgtrans-direction"] == "BtoA"
    assert pixels_of(back.body).shape == (24, 40)  # BtoA writes grey
    np.testing.assert_array_equal(pixels_of(back.body),
                                  _translate_command(files["twoway"], data, ".png", tmp_path, "--direction", "BtoA"))
    forward = post_image(server, data, "model=both")  # the default direction, as translate's
    assert forward.headers["x-imgtrans-direction"] == "AtoB" and pixels_of(forward.body).shape == (24, 40, 3)


def test_decode_image_reads_bytes_as_load_image_reads_files(tmp_path) -> None:
    for fmt, suffix in (("PNG", ".png"), ("JPEG", ".jpg"), ("WEBP", ".webp")):
        data = image_bytes(21, 13, fmt)
        (tmp_path / f"x{suffix}").write_bytes(data)
        np.testing.assert_array_equal(decode_image(data, 3), load_image(tmp_path / f"x{suffix}", 3))
    with pytest.raises(PixelLimitError, match="20000x20000 pixels exceeds the limit of 1000"):
        decode_image(_bomb_png(20000, 20000), 3, limit=1000)


# ----------------------------------------------------------------------------- bad input

def test_bad_requests_are_4xx_with_a_json_message_and_the_server_goes_on(models) -> None:
    settings = ServeSettings(max_body=40_000, max_pixels=100 * 100)
    with running(create_app(models, settings=settings)) as base:
        cases = [
            (post_image(base, b"not an image at all", "model=oneway"), 400, "not an image"),
            (post_image(base, b"", "model=oneway"), 400, "the body is empty"),
            (post_image(base, b"\0" * 50_000, "model=oneway"), 413, "50000 bytes; the limit is 40000"),
            (request(base, "POST", "/v1/translate?model=oneway", iter([b"\0" * 25_000] * 2)), 413,
             "exceeds the limit of 40000 bytes"),  # chunked: no Content-Length to refuse up front
            (post_image(base, _bomb_png(50_000, 50_000), "model=oneway"), 413, "50000x50000 pixels exceeds"),
            (post_image(base, image_bytes(120, 100), "model=oneway"), 413, "120x100 pixels exceeds the limit of 10000"),
            (post_image(base, image_bytes(8, 8)[:40], "model=oneway"), 400, "cannot read image"),  # truncated
            (post_image(base, image_bytes(8, 8), "model=nope"), 404, "unknown model 'nope'"),
            (post_image(base, image_bytes(8, 8)), 400, "say which model"),
            (post_image(base, image_bytes(8, 8), "model=oneway&direction=BtoA"), 400, "translates AtoB only"),
            (post_image(base, image_bytes(8, 8), "model=both&direction=sideways"), 400, "AtoB or BtoA"),
            (post_image(base, image_bytes(8, 8), "model=oneway", {"Content-Type": "multipart/form-data; boundary=x"}),
             415, "not a form"),
        ]
        for reply, status, words in cases:
            assert (reply.status, words in reply.json()["detail"]) == (status, True), (words, reply)
        assert post_image(base, image_bytes(16, 16), "model=oneway").status == 200


def test_thin_images_are_bounded_by_their_padded_work(models, tmp_path) -> None:
    """A 1 x N image pads to stride x N: its work, not its pixel count, is what a request costs (a
    1,248-byte 1 x 400000 PNG held the server for 93 s).  Refused with 413 by serve, and reported
    as that input's failure by translate."""
    thin = image_bytes(70_000, 1)  # 70,000 pixels, padded to 32 x 70,016 = 2.2 M for this stride-32 model
    with running(create_app(models, settings=ServeSettings())) as base:
        reply = post_image(base, thin, "model=oneway")
        assert reply.status == 413 and "times its pixels of work" in reply.json()["detail"], reply
        assert post_image(base, image_bytes(300, 200), "model=oneway").status == 200  # an ordinary one still runs
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "thin.png").write_bytes(thin)
    (tmp_path / "in" / "fine.png").write_bytes(image_bytes(40, 30))
    from imgtrans.inference.translate import translate

    report = translate(models["oneway"].directions["AtoB"].model, tmp_path / "in", tmp_path / "out")
    assert [p.name for p in report.written] == ["fine.png"]
    assert len(report.failed) == 1 and "times its pixels of work" in report.failed[0][1]


def _slow_upload(base: str, length: int = 1000):
    """A client that sends the headers of a POST and then nothing (one byte, then silence)."""
    import socket
    from urllib.parse import urlsplit

    where = urlsplit(base)
    sock = socket.create_connection((where.hostname, where.port), timeout=10)
    sock.sendall(f"POST /v1/translate?model=oneway HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                 f"Content-Length: {length}\r\n\r\n".encode() + b"\x89")
    return sock


def test_slow_uploads_hold_no_queue_slot_and_time_out(models, caplog) -> None:
    """32 clients sending a byte every 10 s made every other request 503 for 90 s: bodies are now
    received, under a deadline, before a request takes a queue slot (bounded loops, real server)."""
    import time

    settings = ServeSettings(queue_size=2, body_timeout=1.5)
    with running(create_app(models, settings=settings)) as base:
        slow = [_slow_upload(base) for _ in range(5)]  # more than the queue holds
        try:
            began = time.monotonic()
            assert post_image(base, image_bytes(16, 16), "model=oneway").status == 200  # not 503
            assert time.monotonic() - began < 1.5
            slow[0].settimeout(10)
            answer = b""
            while b"\r\n\r\n" not in answer:  # the deadline answers the dripping client itself
                chunk = slow[0].recv(4096)
                if not chunk:
                    break
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
        finally:
            for sock in slow:
                sock.close()
        assert post_image(base, image_bytes(16, 16), "model=oneway").status == 200


# ----------------------------------------------------------------------------- queue and batching

def _held(monkeypatch, models, name: str = "oneway"):
    """Make the model's forward passes wait for ``gate``; ``calls`` records each batch's image shapes."""
    direction = models[name].directions["AtoB"]
    original, gate, entered, calls = direction.translate, threading.Event(), threading.Event(), []

    def held(images):
        calls.append([im.shape for im in images])
        entered.set()
        assert gate.wait(60)
        return original(images)

    monkeypatch.setattr(direction, "translate", held)
    return gate, entered, calls


def _until(condition, what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_full_queue_answers_503_with_retry_after_then_serves_again(models, monkeypatch) -> None:
    gate, entered, _ = _held(monkeypatch, models)
    app = create_app(models, settings=ServeSettings(queue_size=2))
    data = image_bytes(16, 16)
    with running(app) as base, ThreadPoolExecutor(2) as pool:
        try:
            first = pool.submit(post_image, base, data, "model=oneway")
            assert entered.wait(60)                       # in the forward pass, held
            second = pool.submit(post_image, base, data, "model=oneway")
            _until(lambda: app.state.batcher.pending() == 1, "the second request to queue")
            busy = post_image(base, data, "model=oneway")  # a third: over the queue size
            assert busy.status == 503 and busy.headers["retry-after"] == "1"
            assert "busy" in busy.json()["detail"]
        finally:
            gate.set()
        assert first.result().status == 200 and second.result().status == 200
        assert post_image(base, data, "model=oneway").status == 200
        assert app.state.admission.inside == 0


def test_concurrent_requests_share_forward_passes_by_size(models, monkeypatch) -> None:
    small, large = image_bytes(24, 16, seed=1), image_bytes(40, 32, seed=2)
    with running(create_app(models)) as base:
        alone = {d: pixels_of(post_image(base, d, "model=oneway").body) for d in (small, large)}
    gate, entered, calls = _held(monkeypatch, models)
    app = create_app(models, settings=ServeSettings(batch_wait_ms=0))
    with running(app) as base, ThreadPoolExecutor(6) as pool:
        try:
            first = pool.submit(post_image, base, small, "model=oneway")
            assert entered.wait(60)
            rest = [pool.submit(post_image, base, d, "model=oneway") for d in (small, large, small, large, small)]
            _until(lambda: app.state.batcher.pending() == 5, "five requests to queue")
        finally:
            gate.set()
        replies = [first.result()] + [f.result() for f in rest]
    # 6 requests, 3 forward passes: the first alone, then 3 small together and 2 large together
    assert sorted(len(c) for c in calls) == [1, 2, 3]
    assert all(len(set(c)) == 1 for c in calls)  # never two sizes in one pass
    assert (app.state.batcher.batches, app.state.batcher.images) == (3, 6)
    for reply, data in zip(replies, (small, small, large, small, large, small)):
        got = pixels_of(reply.body).astype(int)  # batched results: within 1 grey level of one-at-a-time
        assert np.abs(got - alone[data].astype(int)).max() <= 1


def test_a_failing_forward_pass_is_a_500_and_the_server_goes_on(models, monkeypatch) -> None:
    direction = models["oneway"].directions["AtoB"]
    original = direction.translate
    monkeypatch.setattr(direction, "translate", lambda images: (_ for _ in ()).throw(RuntimeError("out of memory")))
    with running(create_app(models)) as base:
        reply = post_image(base, image_bytes(16, 16), "model=oneway")
        assert reply.status == 500 and "RuntimeError: out of memory" in reply.json()["detail"]
        monkeypatch.setattr(direction, "translate", original)
        assert post_image(base, image_bytes(16, 16), "model=oneway").status == 200


# ----------------------------------------------------------------------------- who may call

def test_token_is_checked_on_every_api_call(models) -> None:
    with running(create_app(models, token="s3cret")) as base:
        data = image_bytes(16, 16)
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            assert request(base, "GET", "/v1/models", headers=headers).status == 401
            denied = post_image(base, data, "model=oneway", headers)
            assert denied.status == 401 and denied.headers["www-authenticate"] == "Bearer"
        good = {"Authorization": "Bearer s3cret"}
        assert request(base, "GET", "/v1/models", headers=good).status == 200
        assert post_image(base, data, "model=oneway", good).status == 200
        assert request(base, "GET", "/healthz").status == 200  # probes need no secret, and learn nothing


def test_non_loopback_host_needs_a_token(files) -> None:
    check_host("127.0.0.1", None)
    check_host("::1", None)
    check_host("localhost", None)
    check_host("0.0.0.0", "t")
    result = CliRunner().invoke(cli, ["serve", "--model", str(files["oneway"]), "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: --host 0.0.0.0 is reachable from other machines: serving there needs --token TOKEN "
        "(clients then send 'Authorization: Bearer TOKEN'); or use --host 127.0.0.1"]
    for host in ("192.168.1.5", "example.org", "::"):
        with pytest.raises(Exception, match="needs --token"):
            check_host(host, None)


def test_cli_refuses_bad_models_and_clashing_names_in_one_line(files, tmp_path) -> None:
    for args, words in (([str(tmp_path / "missing.safetensors")], "model not found"),
                        ([str(files["oneway"]), str(files["oneway"])], "two models are named 'oneway'"),
                        ([f"bad name={files['oneway']}"], "model name")):
        result = CliRunner().invoke(cli, ["serve", "--port", "0", *sum((["--model", a] for a in args), [])])
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
        assert words in result.output


def test_max_batch_caps_the_forward_pass(models, monkeypatch) -> None:
    gate, entered, calls = _held(monkeypatch, models)
    app = create_app(models, settings=ServeSettings(batch_wait_ms=0, max_batch=2))
    data = image_bytes(24, 16)
    with running(app) as base, ThreadPoolExecutor(4) as pool:
        try:
            first = pool.submit(post_image, base, data, "model=oneway")
            assert entered.wait(60)
            rest = [pool.submit(post_image, base, data, "model=oneway") for _ in range(3)]
            _until(lambda: app.state.batcher.pending() == 3, "three requests to queue")
        finally:
            gate.set()
        assert all(f.result().status == 200 for f in [first, *rest])
    assert [len(c) for c in calls] == [1, 2, 1]

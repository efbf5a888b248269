"""The shared downloader against a real HTTP server on the loopback interface.

The server is started here (127.0.0.1, port 0, in a thread), serves bytes the tests make, and can
be told to ignore Range headers or to cut the next body short; it records every request so the
tests can prove a cache hit made no request and that a resume asked for the right range.
"""
from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import pytest

import imgtrans
from imgtrans.util.download import (
    OFFLINE_ENV,
    ChecksumMismatch,
    DownloadError,
    OfflineError,
    fetch,
    is_offline,
    mirrored,
    sha256_file,
)
from imgtrans.util.errors import ImgtransError

DATA = os.urandom(300 * 1024)
DATA_SHA = hashlib.sha256(DATA).hexdigest()
CUT = 100 * 1024


@pytest.fixture
def server(http_server):
    http_server.files["/files/model.bin"] = DATA
    http_server.url = lambda path="/files/model.bin", _url=http_server.url: _url(path)
    return http_server


def _part(dest: Path) -> Path:
    return dest.parent / (dest.name + ".part")


def test_download_then_cache_hit_makes_no_request(server, tmp_path) -> None:
    dest = tmp_path / "cache" / "model.bin"  # parents are created
    digest = fetch(server.url(), dest, sha256=DATA_SHA, size=len(DATA), timeout=5)
    assert digest == DATA_SHA and dest.read_bytes() == DATA
    assert not _part(dest).exists()
    assert len(server.requests) == 1
    headers = server.requests[0][1]
    assert headers.get("User-Agent") == f"imgtrans/{imgtrans.__version__}" and headers.get("Range") is None

    assert fetch(server.url(), dest, sha256=DATA_SHA, progress=False, timeout=5) == DATA_SHA
    assert fetch(server.url(), dest, progress=False, timeout=5) == DATA_SHA  # no hash given: still cached
    assert len(server.requests) == 1


def test_short_body_keeps_part_and_next_call_resumes(server, tmp_path) -> None:
    dest = tmp_path / "model.bin"
    server.cut_after = CUT
    with pytest.raises(DownloadError) as info:
        fetch(server.url(), dest, sha256=DATA_SHA, progress=False, timeout=5)
    msg = str(info.value)
    assert "\n" not in msg and server.url() in msg and str(dest) in msg and "resume" in msg
    assert _part(dest).read_bytes() == DATA[:CUT] and not dest.exists()

    assert fetch(server.url(), dest, sha256=DATA_SHA, progress=False, timeout=5) == DATA_SHA
    assert server.requests[-1][1].get("Range") == f"bytes={CUT}-"
    assert dest.read_bytes() == DATA and not _part(dest).exists()


def test_server_ignoring_range_restarts_from_zero(server, tmp_path) -> None:
    dest = tmp_path / "model.bin"
    _part(dest).write_bytes(DATA[:CUT])
    server.ignore_range = True
    assert fetch(server.url(), dest, sha256=DATA_SHA, progress=False, timeout=5) == DATA_SHA
    assert server.requests[-1][1].get("Range") == f"bytes={CUT}-"  # asked, but got a 200
    assert dest.read_bytes() == DATA and not _part(dest).exists()


def test_stale_part_from_another_file_restarts_when_range_ignored(server, tmp_path) -> None:
    dest = tmp_path / "model.bin"
    _part(dest).write_bytes(b"x" * (len(DATA) + 10))  # longer than the real file
    server.ignore_range = True
    assert fetch(server.url(), dest, progress=False, timeout=5) == DATA_SHA
    assert dest.read_bytes() == DATA


def test_complete_part_gets_416_and_is_verified(server, tmp_path) -> None:
    dest = tmp_path / "model.bin"
    _part(dest).write_bytes(DATA)
    assert fetch(server.url(), dest, sha256=DATA_SHA, progress=False, timeout=5) == DATA_SHA
    assert server.requests[-1][1].get("Range") == f"bytes={len(DATA)}-"
    assert dest.read_bytes() == DATA and not _part(dest).exists()


def test_complete_part_with_known_size_needs_no_request(server, tmp_path) -> None:
    dest = tmp_path / "model.bin"
    _part(dest).write_bytes(DATA)
    assert fetch(server.url(), dest, sha256=DATA_SHA, size=len(DATA), progress=False) == DATA_SHA
    assert server.requests == [] and dest.read_bytes() == DATA


def test_checksum_mismatch_deletes_everything(server, tmp_path) -> None:
    dest = tmp_path / "model.bin"
    wrong = "0" * 64
    with pytest.raises(ChecksumMismatch) as info:
        fetch(server.url(), dest, sha256=wrong, progress=False, timeout=5)
    msg = str(info.value)
    assert wrong in msg and DATA_SHA in msg and server.url() in msg and "\n" not in msg
    assert isinstance(info.value, DownloadError) and isinstance(info.value, ImgtransError)
    assert not dest.exists() and not _part(dest).exists()


def test_size_mismatch_deletes_the_part(server, tmp_path) -> None:
    dest = tmp_path / "model.bin"
    with pytest.raises(DownloadError, match="size mismatch"):
        fetch(server.url(), dest, size=len(DATA) + 1, progress=False, timeout=5)
    assert not dest.exists() and not _part(dest).exists()


@pytest.mark.parametrize("value", ["1", "true", "YES", " Yes "])
def test_is_offline_values(monkeypatch, value) -> None:
    monkeypatch.setenv(OFFLINE_ENV, value)
    assert is_offline()


@pytest.mark.parametrize("value", ["", "0", "false", "no"])
def test_is_online_values(monkeypatch, value) -> None:
    monkeypatch.setenv(OFFLINE_ENV, value)
    assert not is_offline()


def test_offline_refuses_the_network_but_serves_the_cache(server, tmp_path, monkeypatch) -> None:
    dest = tmp_path / "model.bin"
    monkeypatch.setenv(OFFLINE_ENV, "1")
    with pytest.raises(OfflineError) as info:
        fetch(server.url(), dest, sha256=DATA_SHA, progress=False, timeout=5)
    msg = str(info.value)
    assert server.url() in msg and str(dest) in msg and OFFLINE_ENV in msg and "\n" not in msg
    assert server.requests == [] and not dest.exists()

    dest.write_bytes(DATA)
    assert fetch(server.url(), dest, sha256=DATA_SHA, progress=False) == DATA_SHA
    assert server.requests == []


def test_nothing_listening_is_a_one_line_error(tmp_path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/model.bin"
    dest = tmp_path / "model.bin"
    with pytest.raises(DownloadError) as info:
        fetch(url, dest, progress=False, timeout=5)
    msg = str(info.value)
    assert url in msg and str(dest) in msg and "\n" not in msg
    assert not dest.exists()


def test_http_404_is_reported(server, tmp_path) -> None:
    dest = tmp_path / "missing.bin"
    url = server.url("/files/missing.bin")
    with pytest.raises(DownloadError) as info:
        fetch(url, dest, progress=False, timeout=5)
    msg = str(info.value)
    assert "404" in msg and url in msg and "\n" not in msg
    assert not dest.exists() and not _part(dest).exists()


def test_corrupt_cached_file_is_replaced(server, tmp_path) -> None:
    dest = tmp_path / "model.bin"
    dest.write_bytes(b"corrupt")
    assert fetch(server.url(), dest, sha256=DATA_SHA.upper(), progress=False, timeout=5) == DATA_SHA
    assert dest.read_bytes() == DATA and len(server.requests) == 1


def test_sha256_file(tmp_path) -> None:
    path = tmp_path / "f"
    path.write_bytes(DATA)
    assert sha256_file(path) == DATA_SHA == sha256_file(path, chunk=7)


def test_mirrored() -> None:
    url = "https://example.org/zoo/v1/model.bin?download=1"
    assert mirrored(url, None) == url
    assert mirrored(url, "https://mirror.example/zoo/") == "https://mirror.example/zoo/model.bin"
    assert mirrored(url, "http://mirror.example") == "http://mirror.example/model.bin"
    assert mirrored(url, "file:///srv/zoo") == "file:///srv/zoo/model.bin"
    assert mirrored(url, "/srv/zoo/") == os.path.join("/srv/zoo/", "model.bin")
    with pytest.raises(DownloadError):
        mirrored("https://example.org/", "https://mirror.example")


def test_local_path_and_file_url_sources(server, tmp_path, monkeypatch) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "model.bin").write_bytes(DATA)
    url = server.url()

    by_path = tmp_path / "a" / "model.bin"
    assert fetch(mirrored(url, str(mirror)), by_path, sha256=DATA_SHA, progress=False) == DATA_SHA
    assert by_path.read_bytes() == DATA and not _part(by_path).exists()

    by_url = tmp_path / "b" / "model.bin"
    source = mirrored(url, mirror.as_uri())
    assert source.startswith("file://")
    monkeypatch.setenv(OFFLINE_ENV, "1")  # a local mirror needs no network, so offline allows it
    assert fetch(source, by_url, sha256=DATA_SHA, size=len(DATA), progress=False) == DATA_SHA
    assert by_url.read_bytes() == DATA
    assert server.requests == []

    with pytest.raises(ChecksumMismatch):
        fetch(source, tmp_path / "c" / "model.bin", sha256="0" * 64, progress=False)
    assert not (tmp_path / "c" / "model.bin").exists() and not _part(tmp_path / "c" / "model.bin").exists()

    with pytest.raises(DownloadError) as info:
        fetch(str(mirror / "nope.bin"), tmp_path / "d" / "nope.bin", progress=False)
    assert "nope.bin" in str(info.value) and "\n" not in str(info.value)


# --- bounds: size and stall (issue 10, finding 6) ---------------------------------------------
from loopback import endless, trickle  # noqa: E402

from imgtrans.util.download_limits import MAX_DOWNLOAD_ENV, MIN_RATE_ENV, STALL_ENV  # noqa: E402
from imgtrans.util.errors import ConfigError  # noqa: E402


def test_endless_body_stops_at_the_cap_and_leaves_nothing(server, tmp_path, monkeypatch) -> None:
    server.responders["/files/endless.bin"] = endless()
    monkeypatch.setenv(MAX_DOWNLOAD_ENV, "1M")
    dest = tmp_path / "endless.bin"
    with pytest.raises(DownloadError) as info:
        fetch(server.url("/files/endless.bin"), dest, progress=False, timeout=5)
    msg = str(info.value)
    assert "1.0 MB" in msg and MAX_DOWNLOAD_ENV in msg and "\n" not in msg
    assert not dest.exists() and not _part(dest).exists(), "a part past the bound is deleted, never resumed"


def test_max_bytes_bounds_a_download(server, tmp_path) -> None:
    server.responders["/files/endless.bin"] = endless()
    with pytest.raises(DownloadError, match="more than the 100.0 kB"):
        fetch(server.url("/files/endless.bin"), tmp_path / "e.bin", max_bytes=100_000, progress=False, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_announced_length_over_the_bound_is_refused_before_writing(server, tmp_path) -> None:
    dest = tmp_path / "model.bin"
    with pytest.raises(DownloadError, match=f"announces {len(DATA)} bytes"):
        fetch(server.url(), dest, max_bytes=len(DATA) - 1, progress=False, timeout=5)
    assert not dest.exists() and not _part(dest).exists()


def test_part_longer_than_the_bound_is_not_resumed(server, tmp_path) -> None:
    dest = tmp_path / "model.bin"
    _part(dest).write_bytes(b"g" * (len(DATA) + 1))  # garbage from an endless earlier response
    assert fetch(server.url(), dest, max_bytes=len(DATA), progress=False, timeout=5) == DATA_SHA
    assert server.requests[-1][1].get("Range") is None and dest.read_bytes() == DATA


@pytest.mark.parametrize("how", ["trickle", "silence"])
def test_a_stalled_download_fails_in_one_line(server, tmp_path, monkeypatch, how) -> None:
    body = b"x" * 4096
    server.responders["/files/slow.bin"] = (trickle(body, 0.05) if how == "trickle"
                                            else trickle(body, 0.05, first_byte_after=30))
    monkeypatch.setenv(STALL_ENV, "0.5")
    dest = tmp_path / "slow.bin"
    with pytest.raises(DownloadError) as info:
        fetch(server.url("/files/slow.bin"), dest, progress=False, timeout=30)
    msg = str(info.value)
    assert "stalled" in msg and STALL_ENV in msg and str(dest) in msg and "\n" not in msg
    assert not dest.exists()


def test_a_drip_fed_download_is_abandoned_by_its_average_rate(server, tmp_path, monkeypatch) -> None:
    """Just over 1 kB per stall window never tripped the stall deadline: a server could hold a
    download for ever.  The average since the start must reach IMGTRANS_DOWNLOAD_MIN_RATE."""
    import time

    body = b"x" * 8_800  # 8 bursts: the floor trips after the 1 s window, long before the end

    def drip(handler) -> None:  # 1100 bytes every 0.3 s: about 3.7 kB/s, never a stalled window
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        for start in range(0, len(body), 1100):
            handler.wfile.write(body[start:start + 1100])
            handler.wfile.flush()
            if handler.server.closing.wait(0.3):
                return

    server.responders["/files/drip.bin"] = drip
    monkeypatch.setenv(STALL_ENV, "1")
    monkeypatch.setenv(MIN_RATE_ENV, "8k")
    began = time.monotonic()
    with pytest.raises(DownloadError) as info:
        fetch(server.url("/files/drip.bin"), tmp_path / "drip.bin", progress=False, timeout=30)
    msg = str(info.value)
    assert "too slow" in msg and MIN_RATE_ENV in msg and "\n" not in msg and time.monotonic() - began < 5
    monkeypatch.setenv(MIN_RATE_ENV, "1k")  # the same server, a floor it meets: it completes
    assert fetch(server.url("/files/drip.bin"), tmp_path / "drip.bin", progress=False, timeout=30)


def test_stall_parameter_overrides_the_environment(server, tmp_path, monkeypatch) -> None:
    server.responders["/files/slow.bin"] = trickle(b"x" * 4096, 0.05)
    monkeypatch.setenv(STALL_ENV, "3600")
    with pytest.raises(DownloadError, match="stalled"):
        fetch(server.url("/files/slow.bin"), tmp_path / "slow.bin", stall=0.5, progress=False, timeout=30)


@pytest.mark.parametrize("var,value", [(MAX_DOWNLOAD_ENV, "banana"), (MAX_DOWNLOAD_ENV, "0"),
                                       (STALL_ENV, "-1"), (STALL_ENV, "soon"), (MIN_RATE_ENV, "fast")])
def test_bad_limit_settings_are_one_line_errors(server, tmp_path, monkeypatch, var, value) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        fetch(server.url(), tmp_path / "model.bin", progress=False, timeout=5)
    assert var in str(info.value) and repr(value) in str(info.value)
    assert server.requests == []


def test_local_source_is_bounded_too(tmp_path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(b"z" * 5000)
    with pytest.raises(DownloadError, match="holds more than"):
        fetch(str(src), tmp_path / "out" / "big.bin", max_bytes=4000, progress=False)
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("mirror", ["http://[::1", "http://[::1]:99999/"])
def test_malformed_mirror_is_one_line(mirror) -> None:
    with pytest.raises(DownloadError) as info:
        mirrored("https://example.org/zoo/model.bin", mirror)
    assert mirror in str(info.value) and "\n" not in str(info.value)

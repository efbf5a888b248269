"""The page at `/`: self-contained (nothing fetched from elsewhere), and in a real headless Chromium a
chosen image is uploaded and its translation shown beside it, downloadable, with the API's pixels."""
from __future__ import annotations

import base64
import re

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'imgtrans[serve]')")
pytest.importorskip("uvicorn", reason="the serve extra is not installed (pip install 'imgtrans[serve]')")

from browser import chromium, open_page  # noqa: E402
from serving import image_bytes, pixels_of, post_image, request, write_one_way, write_two_way  # noqa: E402

from imgtrans.serve.app import create_app  # noqa: E402
from imgtrans.serve.models import load_served  # noqa: E402
from imgtrans.serve.server import running  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    models = load_served([str(write_one_way(folder / "oneway.safetensors")),
                          f"both={write_two_way(folder / 'twoway.safetensors')}"])
    with running(create_app(models)) as base:
        yield base


def test_page_is_self_contained(server) -> None:
    page = request(server, "GET", "/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    html = page.body.decode()
    assert "<script>" in html and "<style>" in html
    referenced = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", html) + re.findall(r"url\(([^)]*)\)", html)
    assert not [r for r in referenced if "//" in r], referenced  # no CDN, no other host: works offline
    assert "@import" not in html and "<link" not in html


@pytest.mark.skipif(chromium() is None, reason="no chromium installed (.ci/run installs Debian's when it can)")
def test_choosing_an_image_shows_its_translation_in_chromium(server, tmp_path) -> None:
    data = image_bytes(45, 29, seed=7)
    src = tmp_path / "photo.png"
    src.write_bytes(data)
    expected = pixels_of(post_image(server, data, "model=both&direction=BtoA").body)
    with open_page(f"{server}/", chromium()) as page:
        page.wait_for("document.body.dataset.ready === '1'")
        assert page.js("[...document.querySelectorAll('#model option')].map(o => o.value)") == ["oneway", "both"]
        page.js("document.getElementById('model').value = 'both';"
                "document.getElementById('model').dispatchEvent(new Event('change'))")
        assert page.js("[...document.querySelectorAll('#direction option')].map(o => o.value)") == ["AtoB", "BtoA"]
        page.js("document.getElementById('direction').value = 'BtoA'")
        # the file chooser, as a user would fill it: the browser fires its change event
        root = page.call("DOM.getDocument")["root"]["nodeId"]
        node = page.call("DOM.querySelector", nodeId=root, selector="#file")["nodeId"]
        page.call("DOM.setFileInputFiles", nodeId=node, files=[str(src)])
        page.wait_for("document.body.dataset.done === '1'")
        shown = page.js("""(() => { const i = document.getElementById('input-img'), o = document.getElementById('output-img'),
                                   d = document.getElementById('download');
            return {input: [i.naturalWidth, i.naturalHeight], output: [o.naturalWidth, o.naturalHeight],
                    src: o.src, href: d.href, name: d.download, hidden: d.hidden,
                    status: document.getElementById('status').textContent}; })()""")
        assert shown["input"] == [45, 29] and shown["output"] == [45, 29], shown
        assert shown["src"].startswith("blob:") and shown["href"] == shown["src"] and not shown["hidden"]
        assert shown["name"] == "photo_both_BtoA.png" and shown["status"].startswith("Done"), shown
        png = base64.b64decode(page.js(
            "fetch(document.getElementById('output-img').src).then(r => r.arrayBuffer())"
            ".then(b => { let s = ''; for (const x of new Uint8Array(b)) s += String.fromCharCode(x); return btoa(s); })"))
    np.testing.assert_array_equal(pixels_of(png), expected)  # what the page shows is the API's answer


@pytest.mark.skipif(chromium() is None, reason="no chromium installed (.ci/run installs Debian's when it can)")
def test_a_refused_upload_is_said_on_the_page(server, tmp_path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not an image")
    with open_page(f"{server}/", chromium()) as page:
        page.wait_for("document.body.dataset.ready === '1'")
        root = page.call("DOM.getDocument")["root"]["nodeId"]
        node = page.call("DOM.querySelector", nodeId=root, selector="#file")["nodeId"]
        page.call("DOM.setFileInputFiles", nodeId=node, files=[str(bad)])
        status = page.wait_for("document.getElementById('status').className === 'error'"
                               " && document.getElementById('status').textContent")
    assert status.startswith("Refused (400): cannot read image"), status

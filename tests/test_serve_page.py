"""The page at `/`: self-contained (nothing fetched from elsewhere), and in a real headless Chromium a
chosen image is uploaded and its translation shown beside it, downloadable, with the API's pixels;
a change of model or direction clears that result, and the page says what each model and direction
does (a run's model listed under the run's name)."""
from __future__ import annotations

import base64
import re

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'imgtrans[serve]')")
pytest.importorskip("uvicorn", reason="the serve extra is not installed (pip install 'imgtrans[serve]')")

from browser import chromium, open_page  # noqa: E402
from serving import image_bytes, pixels_of, post_image, request, write_one_way, write_run, write_two_way  # noqa: E402

from imgtrans.serve.app import create_app  # noqa: E402
from imgtrans.serve.models import load_served  # noqa: E402
from imgtrans.serve.server import running  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    models = load_served([str(write_one_way(folder / "oneway.safetensors")),
                          f"both={write_two_way(folder / 'twoway.safetensors')}",
                          str(write_run(folder / "demo"))])  # served as "demo", trained on basemap
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
        assert page.js("[...document.querySelectorAll('#model option')].map(o => o.value)") == ["oneway", "both", "demo"]
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


SHOWN = """(() => { const o = document.getElementById('output-img'), d = document.getElementById('download');
    return {src: o.getAttribute('src'), size: document.getElementById('output-size').textContent, hidden: d.hidden,
            href: d.getAttribute('href'), status: document.getElementById('status').textContent,
            about: ['model-about', 'domains', 'direction-about'].map(i => document.getElementById(i).textContent),
            options: [...document.querySelectorAll('#direction option')].map(o => o.textContent)}; })()"""


def _choose(page, path) -> None:
    root = page.call("DOM.getDocument")["root"]["nodeId"]
    node = page.call("DOM.querySelector", nodeId=root, selector="#file")["nodeId"]
    page.call("DOM.setFileInputFiles", nodeId=node, files=[str(path)])
    page.wait_for("document.body.dataset.done === '1'")


def _select(page, which: str, value: str) -> dict:
    """Choose ``value`` in the ``which`` select as a user does (the browser fires change); what the page shows then."""
    page.js(f"document.getElementById('{which}').value = '{value}';"
            f"document.getElementById('{which}').dispatchEvent(new Event('change'))")
    return page.js(SHOWN)


@pytest.mark.skipif(chromium() is None, reason="no chromium installed (.ci/run installs Debian's when it can)")
def test_a_change_of_model_or_direction_clears_the_result_and_says_what_it_does(server, tmp_path) -> None:
    src = tmp_path / "photo.png"
    src.write_bytes(image_bytes(40, 24, seed=3))
    cleared = {"src": None, "size": "", "hidden": True, "href": None}
    with open_page(f"{server}/", chromium()) as page:
        page.wait_for("document.body.dataset.ready === '1'")
        first = page.js(SHOWN)  # oneway: a file that records no domains
        assert first["about"] == ["oneway: pix2pix",
                                  "Domains not recorded: A and B are the two kinds of image in the data it was trained on.",
                                  "AtoB translates domain A -> domain B."], first
        assert first["options"] == ["AtoB: domain A -> domain B"]
        both = _select(page, "model", "both")
        assert both["options"] == ["AtoB: domain A -> domain B", "BtoA: domain B -> domain A"], both
        _choose(page, src)
        assert page.js(SHOWN)["src"].startswith("blob:")
        shown = _select(page, "direction", "BtoA")  # the AtoB result must go: BtoA did not produce it
        assert {k: shown[k] for k in cleared} == cleared, shown
        assert shown["status"] == "Now both (BtoA): drop or choose an image to translate it.", shown
        assert shown["about"][2] == "BtoA translates domain B -> domain A (the reverse of AtoB).", shown
        _choose(page, src)  # the same file again is translated again, in the new direction
        again = page.js(SHOWN)
        assert again["src"].startswith("blob:") and again["status"] == "Done: photo.png -> photo_both_BtoA.png", again
        demo = _select(page, "model", "demo")  # a run's model, under the run's name, trained on basemap
        assert {k: demo[k] for k in cleared} == cleared, demo
        assert demo["status"] == "Now demo (AtoB): drop or choose an image to translate it.", demo
        assert demo["about"] == ["demo: pix2pix, trained on basemap, step 7",
                                 "Domains: A = satellite, B = shaded relief.",
                                 "AtoB translates satellite -> shaded relief."], demo
        assert demo["options"] == ["AtoB: satellite -> shaded relief"]

"""Safe, atomic archive extraction and dataset structure checks.

Every archive is built here with tarfile/zipfile, hostile ones included (building a tar with a
device or FIFO member needs no privilege: only extraction would).  For each hostile archive the
tests prove the error names the member, that nothing at all was written (the whole tmp tree is
compared before and after) and that ``dest`` does not exist.
"""
from __future__ import annotations

import io
import os
import stat
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from imgtrans.data.catalog import verify_structure
from imgtrans.util import archive as archive_mod
from imgtrans.util.archive import ArchiveError, safe_extract
from imgtrans.util.errors import DataError, ImgtransError


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (2, 2), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


PNG = _png()


# --------------------------------------------------------------------------------------------
# builders


def _info(name: str, type: bytes = tarfile.REGTYPE, *, data: bytes = b"", linkname: str = "",
          mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode = type, linkname, mode
    ti.size = len(data) if type in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    return ti, data


def _file(name: str, data: bytes = PNG, **kw) -> tuple[tarfile.TarInfo, bytes]:
    return _info(name, data=data, **kw)


def _dir(name: str) -> tuple[tarfile.TarInfo, bytes]:
    return _info(name, tarfile.DIRTYPE, mode=0o755)


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]], mode: str = "w:gz") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode, format=tarfile.GNU_FORMAT) as tar:
        for ti, data in members:
            tar.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    return path


def make_zip(path: Path, members: list[tuple[str, bytes] | zipfile.ZipInfo | tuple[zipfile.ZipInfo, bytes]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for m in members:
            if isinstance(m, zipfile.ZipInfo):
                zf.writestr(m, b"")
            else:
                zf.writestr(*m)
    return path


def zip_symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    zi = zipfile.ZipInfo(name)
    zi.create_system = 3
    zi.external_attr = (stat.S_IFLNK | 0o777) << 16
    return zi, target.encode()


def tree(root: Path) -> set[str]:
    """Every path under root (links not followed), for before/after comparisons."""
    out = set()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            out.add(os.path.relpath(os.path.join(folder, name), root))
    return out


@pytest.fixture
def box(tmp_path: Path) -> Path:
    """tmp_path/archives holds the archives; extraction goes to tmp_path/out/dest."""
    (tmp_path / "archives").mkdir()
    (tmp_path / "out").mkdir()
    return tmp_path


def _dest(box: Path) -> Path:
    return box / "out" / "dest"


def _no_leftovers(box: Path) -> None:
    assert not _dest(box).exists()
    assert list((box / "out").iterdir()) == []  # no temporary folder left next to dest


# --------------------------------------------------------------------------------------------
# good archives

FACADES = [_dir("facades"), _dir("facades/train"), _file("facades/train/1.png"), _file("facades/train/2.png"),
           _dir("facades/val"), _file("facades/val/1.png", b"val-bytes")]


@pytest.mark.parametrize("mode,suffix", [("w", ".tar"), ("w:gz", ".tar.gz"), ("w:gz", ".tgz"),
                                         ("w:bz2", ".tar.bz2"), ("w:xz", ".tar.xz")])
def test_tar_with_top_folder_and_strip_top(box, mode, suffix) -> None:
    arc = make_tar(box / "archives" / f"facades{suffix}", FACADES, mode)
    dest = _dest(box)
    assert safe_extract(arc, dest, strip_top=True, progress=False) == dest
    assert tree(dest) == {"train", "train/1.png", "train/2.png", "val", "val/1.png"}
    assert (dest / "train" / "1.png").read_bytes() == PNG
    assert (dest / "val" / "1.png").read_bytes() == b"val-bytes"
    assert list((box / "out").iterdir()) == [dest]  # the temporary folder is gone


def test_without_strip_top_the_top_folder_stays(box) -> None:
    arc = make_tar(box / "archives" / "facades.tar.gz", FACADES)
    safe_extract(arc, _dest(box), progress=False)
    assert (_dest(box) / "facades" / "train" / "2.png").read_bytes() == PNG


def test_strip_top_is_a_no_op_without_a_single_top_folder(box) -> None:
    arc = make_tar(box / "archives" / "flat.tar", [_file("train/1.png"), _file("val/1.png")], "w")
    safe_extract(arc, _dest(box), strip_top=True, progress=False)
    assert tree(_dest(box)) == {"train", "train/1.png", "val", "val/1.png"}


def test_good_zip_with_strip_top_skips_macosx(box) -> None:
    arc = make_zip(box / "archives" / "horse2zebra.zip", [
        zipfile.ZipInfo("horse2zebra/"), ("horse2zebra/trainA/1.jpg", b"a1"), ("horse2zebra/trainB/1.jpg", b"b1"),
        ("horse2zebra/testA/1.jpg", b"t1"), ("__MACOSX/horse2zebra/._trainA", b"junk"),
    ])
    dest = safe_extract(arc, _dest(box), strip_top=True, progress=False)
    assert tree(dest) == {"trainA", "trainA/1.jpg", "trainB", "trainB/1.jpg", "testA", "testA/1.jpg"}
    assert (dest / "trainB" / "1.jpg").read_bytes() == b"b1"


def test_kind_is_detected_by_content_not_suffix(box) -> None:
    z = make_zip(box / "archives" / "really_a_zip.tar.gz", [("a/1.png", PNG)])
    t = make_tar(box / "archives" / "really_a_tar.zip", [_file("b/1.png")])
    safe_extract(z, box / "out" / "z", progress=False)
    safe_extract(t, box / "out" / "t", progress=False)
    assert (box / "out" / "z" / "a" / "1.png").read_bytes() == PNG
    assert (box / "out" / "t" / "b" / "1.png").read_bytes() == PNG


def test_archive_permissions_are_not_applied(box) -> None:
    arc = make_tar(box / "archives" / "perm.tar", [_file("x/setuid.png", mode=0o4777), _file("x/none.png", mode=0)], "w")
    dest = safe_extract(arc, _dest(box), progress=False)
    for name in ("setuid.png", "none.png"):
        mode = (dest / "x" / name).stat().st_mode
        assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX)
        assert mode & stat.S_IRUSR and mode & stat.S_IWUSR
    assert (dest / "x" / "none.png").read_bytes() == PNG


def test_links_inside_symlinks_skipped_with_a_warning_hardlinks_copied(box) -> None:
    arc = make_tar(box / "archives" / "links.tar", [
        _file("d/train/1.png"),
        _info("d/train/sym.png", tarfile.SYMTYPE, linkname="1.png"),
        _info("d/train/hard.png", tarfile.LNKTYPE, linkname="d/train/1.png"),
    ], "w")
    with pytest.warns(UserWarning, match="sym.png"):
        dest = safe_extract(arc, _dest(box), strip_top=True, progress=False)
    assert tree(dest) == {"train", "train/1.png", "train/hard.png"}
    hard = dest / "train" / "hard.png"
    assert not hard.is_symlink() and hard.read_bytes() == PNG
    assert hard.stat().st_ino != (dest / "train" / "1.png").stat().st_ino  # a copy, not a link


def test_existing_empty_dest_is_fine_non_empty_is_refused(box) -> None:
    arc = make_tar(box / "archives" / "a.tar", [_file("a/1.png")], "w")
    dest = _dest(box)
    dest.mkdir()
    safe_extract(arc, dest, progress=False)
    assert (dest / "a" / "1.png").is_file()
    with pytest.raises(ArchiveError, match="already exists"):
        safe_extract(arc, dest, progress=False)
    assert (dest / "a" / "1.png").read_bytes() == PNG  # untouched


def test_progress_bar_path_runs(box, monkeypatch) -> None:
    arc = make_tar(box / "archives" / "facades.tar.gz", FACADES)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    safe_extract(arc, _dest(box), strip_top=True, progress=True)
    assert (_dest(box) / "val" / "1.png").is_file()


# --------------------------------------------------------------------------------------------
# hostile archives: refused, naming the member, with nothing written anywhere

GOOD = _file("ok/1.png")  # comes first in each hostile archive: even it must not be written

HOSTILE_TAR = {
    "parent": ("../evil.txt", [GOOD, _file("../evil.txt", b"evil")]),
    "absolute": ("/abs/evil.txt", [GOOD, _file("/abs/evil.txt", b"evil")]),
    "dotdot-inside": ("a/../../evil", [GOOD, _file("a/../../evil", b"evil")]),
    "drive-letter": ("C:/evil.txt", [GOOD, _file("C:/evil.txt", b"evil")]),
    "backslash-parent": ("ok\\..\\..\\evil", [GOOD, _file("ok\\..\\..\\evil", b"evil")]),
    "symlink-absolute": ("passwd", [GOOD, _info("passwd", tarfile.SYMTYPE, linkname="/etc/passwd")]),
    "symlink-outside": ("ok/link", [GOOD, _info("ok/link", tarfile.SYMTYPE, linkname="../../outside")]),
    "hardlink-outside": ("hl", [GOOD, _info("hl", tarfile.LNKTYPE, linkname="../outside")]),
    "hardlink-absolute": ("hl", [GOOD, _info("hl", tarfile.LNKTYPE, linkname="/etc/passwd")]),
    "hardlink-dangling": ("hl", [GOOD, _info("hl", tarfile.LNKTYPE, linkname="ok/missing.png")]),
    "char-device": ("dev/null", [GOOD, _info("dev/null", tarfile.CHRTYPE)]),
    "block-device": ("dev/sda", [GOOD, _info("dev/sda", tarfile.BLKTYPE)]),
    "fifo": ("ok/fifo", [GOOD, _info("ok/fifo", tarfile.FIFOTYPE)]),
}

HOSTILE_ZIP = {
    "zip-parent": ("../x", [("ok/1.png", PNG), ("../x", b"evil")]),
    "zip-absolute": ("/abs/x", [("ok/1.png", PNG), ("/abs/x", b"evil")]),
    "zip-drive-letter": ("C:/x", [("ok/1.png", PNG), ("C:/x", b"evil")]),
    "zip-backslash-parent": ("..\\x", [("ok/1.png", PNG), ("..\\x", b"evil")]),
    "zip-symlink-outside": ("ok/link", [("ok/1.png", PNG), zip_symlink("ok/link", "../../outside")]),
    "zip-symlink-absolute": ("ok/link", [("ok/1.png", PNG), zip_symlink("ok/link", "/etc/passwd")]),
}


def _assert_refused(box: Path, arc: Path, member: str) -> ArchiveError:
    before = tree(box)
    with pytest.raises(ArchiveError) as err:
        safe_extract(arc, _dest(box), progress=False)
    msg = str(err.value)
    assert repr(member) in msg and "\n" not in msg
    assert tree(box) == before  # nothing written anywhere under tmp, inside or outside dest
    _no_leftovers(box)
    assert not Path("/abs").exists()
    return err.value


@pytest.mark.parametrize("case", sorted(HOSTILE_TAR))
def test_hostile_tar_is_refused(box, case) -> None:
    member, members = HOSTILE_TAR[case]
    arc = make_tar(box / "archives" / f"{case}.tar.gz", members)
    with tarfile.open(arc) as tar:  # the hostile name really is in the archive as written
        assert member in tar.getnames()
    _assert_refused(box, arc, member)


@pytest.mark.parametrize("case", sorted(HOSTILE_ZIP))
def test_hostile_zip_is_refused(box, case) -> None:
    member, members = HOSTILE_ZIP[case]
    arc = make_zip(box / "archives" / f"{case}.zip", members)
    with zipfile.ZipFile(arc) as zf:
        assert member in zf.namelist()
    _assert_refused(box, arc, member)


def test_refusal_reasons_are_specific(box) -> None:
    reasons = {"parent": "'..'", "absolute": "absolute", "char-device": "device", "fifo": "FIFO",
               "symlink-outside": "outside", "hardlink-absolute": "absolute path"}
    for case, reason in reasons.items():
        member, members = HOSTILE_TAR[case]
        arc = make_tar(box / "archives" / f"r-{case}.tar", members, "w")
        assert reason in str(_assert_refused(box, arc, member))


# --------------------------------------------------------------------------------------------
# space, bombs, corrupt input, interruption


def test_too_little_disk_space_is_refused_with_figures(box, monkeypatch) -> None:
    arc = make_tar(box / "archives" / "facades.tar.gz", FACADES)
    seen = []

    def tiny_disk(path):
        seen.append(Path(path))
        return archive_mod.shutil._ntuple_diskusage(10**9, 10**9 - 100, 100)

    monkeypatch.setattr(archive_mod.shutil, "disk_usage", tiny_disk)
    before = tree(box)
    with pytest.raises(ArchiveError) as err:
        safe_extract(arc, _dest(box), strip_top=True, progress=False)
    msg = str(err.value)
    need = round((2 * len(PNG) + len(b"val-bytes")) * 1.05)
    assert "need" in msg and "free" in msg and "100 bytes" in msg
    assert f"({need} bytes" in msg or f"({need + 1} bytes" in msg
    assert seen == [box / "out"]  # asked about the disk that will hold dest
    assert tree(box) == before
    _no_leftovers(box)


def test_zip_bomb_over_max_bytes_is_refused(box) -> None:
    arc = make_zip(box / "archives" / "bomb.zip", [("a/zeros.png", bytes(50_000))])
    assert arc.stat().st_size < 1000  # highly compressed
    with pytest.raises(ArchiveError, match="zip bomb"):
        safe_extract(arc, _dest(box), max_bytes=10_000, progress=False)
    _no_leftovers(box)
    safe_extract(arc, _dest(box), progress=False)  # the default limit lets it through
    assert (_dest(box) / "a" / "zeros.png").stat().st_size == 50_000


@pytest.mark.parametrize("content", [b"this is not an archive\n" * 10, b""])
def test_not_an_archive(box, content) -> None:
    bad = box / "archives" / "facades.tar.gz"
    bad.write_bytes(content)
    with pytest.raises(ArchiveError, match="facades.tar.gz") as err:
        safe_extract(bad, _dest(box), progress=False)
    assert "not a tar" in str(err.value)
    _no_leftovers(box)


def test_missing_archive(box) -> None:
    with pytest.raises(ArchiveError, match="does not exist"):
        safe_extract(box / "archives" / "nope.zip", _dest(box), progress=False)


def test_truncated_archive_is_reported_as_corrupt(box) -> None:
    members = [_file(f"d/{i}.png", os.urandom(20_000)) for i in range(4)]
    arc = make_tar(box / "archives" / "cut.tar.gz", members)
    arc.write_bytes(arc.read_bytes()[: arc.stat().st_size // 2])
    with pytest.raises(ArchiveError, match="corrupt or truncated"):
        safe_extract(arc, _dest(box), progress=False)
    _no_leftovers(box)


def test_error_while_writing_leaves_nothing(box) -> None:
    # "x" is a file, then "x/y" needs it to be a folder: fails after something was written.
    arc = make_tar(box / "archives" / "clash.tar", [_file("a/1.png"), _file("x"), _file("x/y")], "w")
    with pytest.raises(ArchiveError, match=r"'x/y' clashes"):
        safe_extract(arc, _dest(box), progress=False)
    _no_leftovers(box)
    arc = make_tar(box / "archives" / "clash2.tar", [_file("a/1.png"), _file("a")], "w")  # the reverse
    with pytest.raises(ArchiveError, match=r"'a' clashes"):
        safe_extract(arc, _dest(box), progress=False)
    _no_leftovers(box)


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_interruption_mid_extraction_leaves_nothing(box, monkeypatch, kind) -> None:
    names = [f"top/train/{i}.png" for i in range(5)]
    if kind == "tar":
        arc = make_tar(box / "archives" / "a.tar.gz", [_file(n) for n in names])
    else:
        arc = make_zip(box / "archives" / "a.zip", [(n, PNG) for n in names])
    real, calls = archive_mod._write_file, []

    def interrupted(src, target, limit):
        calls.append(target)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(src, target, limit)

    monkeypatch.setattr(archive_mod, "_write_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        safe_extract(arc, _dest(box), strip_top=True, progress=False)
    assert len(calls) == 3 and calls[0].is_relative_to(box / "out")  # extraction had really begun
    _no_leftovers(box)


# --------------------------------------------------------------------------------------------
# verify_structure


def _images(folder: Path, n: int, suffix: str = ".png") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"{i}{suffix}").write_bytes(PNG)


def test_verify_structure_passes(tmp_path) -> None:
    _images(tmp_path / "train", 3)
    _images(tmp_path / "train", 1, ".JPEG")  # case-insensitive suffixes
    _images(tmp_path / "val", 2, ".webp")
    _images(tmp_path / "extra", 1)  # extra folders are fine
    verify_structure(tmp_path, {"train": 4, "val": 2})


def test_verify_structure_lists_every_problem(tmp_path) -> None:
    _images(tmp_path / "train", 398)
    (tmp_path / "train" / "notes.txt").write_text("x")      # not an image
    (tmp_path / "train" / "._0.png").write_bytes(b"junk")   # hidden (macOS AppleDouble): not counted
    _images(tmp_path / "train" / "nested", 5)               # not directly in train
    _images(tmp_path / "testA", 10)
    with pytest.raises(DataError) as err:
        verify_structure(tmp_path, {"train": 400, "val": 100, "testA": 10})
    msg = str(err.value)
    assert "train: 398 images, expected 400; val: missing" in msg
    assert "testA" not in msg and "\n" not in msg
    assert not isinstance(err.value, ArchiveError) and isinstance(err.value, ImgtransError)


def test_verify_structure_tolerance(tmp_path) -> None:
    _images(tmp_path / "trainA", 90)
    verify_structure(tmp_path, {"trainA": 100}, tolerance=0.1)  # 90 >= 100 * 0.9, despite float rounding
    with pytest.raises(DataError, match=r"trainA: 90 images, expected 100 \(at least 95\)"):
        verify_structure(tmp_path, {"trainA": 100}, tolerance=0.05)
    with pytest.raises(ValueError):
        verify_structure(tmp_path, {"trainA": 100}, tolerance=1.0)


def test_verify_structure_missing_root(tmp_path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        verify_structure(tmp_path / "nope", {"train": 1})

"""The public pix2pix (paired) and CycleGAN (unpaired) datasets, as published by their authors.

Split counts are what the archives hold; the public servers publish no checksums, so a download
is verified by these counts (with a tolerance where the published figures are approximate).
"""
from __future__ import annotations

from typing import Any

PIX2PIX_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/{}.tar.gz"
CYCLEGAN_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{}.zip"
RESEARCH = "research use; images keep their original owners' terms"

PAIRED: dict[str, dict[str, Any]] = {
    "facades": dict(description="CMP Facades: photo (A) <-> architectural label map (B); label->photo is BtoA",
                    domains=("photo", "label map"), splits={"train": 400, "val": 100, "test": 106},
                    licence="CMP Facade Database: research use", size_mb=29),
    "maps": dict(description="Google Maps: aerial photo (A) <-> map (B) around New York",
                 domains=("aerial photo", "map"), splits={"train": 1096, "val": 1098},
                 licence="Google Maps data: research use", size_mb=239),
    "edges2shoes": dict(description="UT Zappos50K: HED edge map (A) -> shoe photo (B)",
                        domains=("edges", "shoe photo"), splits={"train": 50000, "val": 200}, tolerance=0.05,
                        licence=RESEARCH, size_mb=2100),
    "edges2handbags": dict(description="iGAN handbags: HED edge map (A) -> handbag photo (B)",
                           domains=("edges", "handbag photo"), splits={"train": 137000, "val": 200},
                           tolerance=0.05, licence=RESEARCH, size_mb=8600),
    "night2day": dict(description="Transient Attributes: night scene (A) -> day scene (B)",
                      domains=("night", "day"), splits={"train": 20000}, tolerance=0.2,
                      licence=RESEARCH, size_mb=1900),
}

UNPAIRED: dict[str, dict[str, Any]] = {
    "horse2zebra": dict(domains=("horse", "zebra"), splits={"trainA": 939, "trainB": 1177}),
    "apple2orange": dict(domains=("apple", "orange")),
    "summer2winter_yosemite": dict(domains=("Yosemite in summer", "Yosemite in winter")),
    "monet2photo": dict(domains=("Monet painting", "photo")),
    "cezanne2photo": dict(domains=("Cezanne painting", "photo")),
    "ukiyoe2photo": dict(domains=("Ukiyo-e print", "photo")),
    "vangogh2photo": dict(domains=("Van Gogh painting", "photo")),
    "maps": dict(domains=("aerial photo", "map")),
    "cityscapes": dict(domains=("street photo", "label map"),
                       licence="Cityscapes terms: no redistribution; the CycleGAN archive is a derived copy"),
    "facades": dict(domains=("photo", "label map")),
    "iphone2dslr_flower": dict(domains=("iPhone photo", "DSLR photo")),
}

CITYSCAPES_HELP = ("Cityscapes may not be redistributed: register at https://www.cityscapes-dataset.com, "
                   "download gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip, and unzip both into one folder.")


def register(catalog) -> None:
    for name, spec in PAIRED.items():
        fields = dict(spec)
        catalog.add(name, fields.pop("description"), url=PIX2PIX_URL.format(name), archive="tar.gz",
                    layout="aligned", **fields)
    for name, spec in UNPAIRED.items():
        fields = dict(spec)
        a, b = fields["domains"]
        fields.setdefault("splits", {"trainA": 1, "trainB": 1, "testA": 1, "testB": 1})
        fields.setdefault("tolerance", 0.2)
        fields.setdefault("licence", RESEARCH)
        # the plain name too where no paired set has it: `--data horse2zebra`
        aliases = () if name in PAIRED or name == "cityscapes" else (name,)
        catalog.add(f"cyclegan_{name}", f"unpaired {a} <-> {b} (CycleGAN)", paired=False, layout="unpaired",
                    url=CYCLEGAN_URL.format(name), archive="zip", aliases=aliases, **fields)

    catalog.add("cityscapes", "Cityscapes street photo (A) <-> semantic label colours (B), 256x256",
                domains=("street photo", "label map"), layout="aligned", prepare=prepare_cityscapes,
                prepare_help=CITYSCAPES_HELP, splits={"train": 2975, "val": 500},
                licence="Cityscapes terms: non-commercial research, no redistribution",
                notes="prepare it from your own download: imgtrans data prepare cityscapes --from DIR")


def prepare_cityscapes(source: Any, dest: Any, *, progress: Any = None) -> None:
    """Builds ``cityscapes``; its module (Pillow) is imported only when a user prepares it."""
    from .cityscapes import prepare_cityscapes as prepare

    prepare(source, dest, progress=progress)

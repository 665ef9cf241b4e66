"""Copy the Designers Italia UI kit (npm package ``bootstrap-italia``) into the hub's static
folder, so the hub serves it itself (no CDN): ``python -m sportello.web.vendor [node_modules]``.

``make install`` runs ``npm ci`` (package.json and package-lock.json at the repository's
root pin the version) and then this module. Only what the pages use is copied: the CSS, the
JavaScript bundle, the SVG sprite and the Titillium Web fonts (woff2 and woff), with the
kit's licence files.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = HERE / "static" / "kit"
#: files of ``bootstrap-italia/dist`` the pages use, and the licence
FILES = (
    "css/bootstrap-italia.min.css",
    "js/bootstrap-italia.bundle.min.js",
    "svg/sprites.svg",
)
FONT_FAMILIES = ("Titillium_Web",)
FONT_SUFFIXES = (".woff2", ".woff", ".txt")


def default_source() -> Path:
    return HERE.parent.parent / "node_modules" / "bootstrap-italia"


def copy(source: Path, target: Path = TARGET) -> str:
    """Copy the kit from ``source`` (the package folder); returns its version."""
    package = json.loads((source / "package.json").read_text(encoding="utf-8"))
    version = str(package["version"])
    dist = source / "dist"
    if target.exists():
        shutil.rmtree(target)
    for name in FILES:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(dist / name, target / name)
    for family in FONT_FAMILIES:
        out = target / "fonts" / family
        out.mkdir(parents=True, exist_ok=True)
        for font in sorted((dist / "fonts" / family).iterdir()):
            if font.suffix in FONT_SUFFIXES:
                shutil.copyfile(font, out / font.name)
    for licence in ("LICENSE", "LICENSE.md"):
        if (source / licence).exists():
            shutil.copyfile(source / licence, target / licence)
    (target / "VERSION").write_text(version + "\n", encoding="utf-8")
    return version


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0]) / "bootstrap-italia" if args else default_source()
    if not (source / "package.json").exists():
        print(f"bootstrap-italia not found at {source}: run `npm ci` first", file=sys.stderr)
        return 1
    version = copy(source)
    print(f">> bootstrap-italia {version} copied to {TARGET}")
    return 0


if __name__ == "__main__":  # pragma: no cover - command line
    raise SystemExit(main())

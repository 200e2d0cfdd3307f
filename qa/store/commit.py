"""The commit point: `manifest.json`, the one file that says which segments make the index.

    {"format_version": 7, "generation": 12, "model": {...}, "counts": {...}, "created": ...,
     "updated": ..., "scripts": [...], "versions": {...},
     "segments": [{"name": "seg-000003", "articles": 40, "sentences": 1874,
                   "deletes": "seg-000003.del-000012.npy", "deleted_articles": 1, "deleted_sentences": 16},
                  ...]}

A commit replaces the file atomically (`write_file_atomically`): before the rename readers see
the previous commit whole, after it the new one. Segments are listed oldest first; a sentence's
global id is its row in its segment plus the rows of the segments before it.

Format 6 (one `data-NNNNNN` folder) is read as a commit of that one folder as a segment: the
folder's files are a segment's, so an old index answers as before and its first write turns
it into format 7 without rewriting anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qa.config import LEGACY_RECIPE, RECIPES
from qa.errors import IndexCorruptError, IndexFormatError, IndexMissingError
from qa.store.files import write_file_atomically

FORMAT_VERSION = 7
READABLE_VERSIONS = (6, 7)  # 6: one data folder, read as one segment
MANIFEST = "manifest.json"
SEGMENT_PREFIX = "seg-"
LEGACY_PREFIX = "data-"


def read_commit(path: Path) -> dict[str, Any]:
    """The commit point of the index at `path`, in format 7 whatever format wrote it (a commit point
    naming no build recipe, written before recipes existed, is given `qa.config.LEGACY_RECIPE`).

    Raises:
        IndexMissingError: no index there.
        IndexCorruptError: unreadable manifest, or a segment it names is missing.
        IndexFormatError: written by a format this qa cannot read.
    """
    file = path / MANIFEST
    if not file.is_file():
        raise IndexMissingError(
            f"No index at '{path}' (no {MANIFEST}). Build one with `qa build --source DIR --index {path}`."
        )
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
        version = manifest["format_version"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexCorruptError(
            f"The index at '{path}' is corrupt ({MANIFEST}: {exc}). Rebuild it with `qa build --index {path}`."
        ) from None
    if version not in READABLE_VERSIONS:
        raise IndexFormatError(
            f"The index at '{path}' has format version {version}; this qa reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}. Rebuild it with `qa build --index {path}`."
        )
    try:
        if version == 6:
            manifest = _from_format_6(manifest)
        names = [entry["name"] for entry in manifest["segments"]]
        int(manifest["generation"])
    except (KeyError, TypeError, ValueError) as exc:
        raise IndexCorruptError(
            f"The index at '{path}' is corrupt ({MANIFEST} lacks {exc}). Rebuild it with `qa build --index {path}`."
        ) from None
    recipe = manifest.setdefault("recipe", LEGACY_RECIPE)  # none named: written before recipes existed
    if recipe not in RECIPES:
        raise IndexFormatError(
            f"The index at '{path}' was built with the recipe {recipe!r}, which this qa does not know "
            f"(it knows {', '.join(RECIPES)}). Use the qa that built it, or rebuild it with `qa build --index {path}`."
        )
    missing = [name for name in names if not (path / name).is_dir()]
    if missing:
        raise IndexCorruptError(
            f"The index at '{path}' names segment(s) {', '.join(missing)}, which are missing. "
            f"Rebuild it with `qa build --index {path}`."
        )
    return manifest


def _from_format_6(manifest: dict[str, Any]) -> dict[str, Any]:
    data = manifest["data"]
    counts = manifest["counts"]
    segment = {"name": data, "articles": counts["articles"], "sentences": counts["sentences"], "deletes": None,
               "deleted_articles": 0, "deleted_sentences": 0}
    generation = int(data[len(LEGACY_PREFIX):]) if data[len(LEGACY_PREFIX):].isdigit() else 0
    rest = {k: v for k, v in manifest.items() if k not in ("data", "dense")}
    return {**rest, "format_version": FORMAT_VERSION, "generation": generation, "segments": [segment],
            "migrated_from": 6}


def write_commit(path: Path, manifest: dict[str, Any]) -> None:
    """Make `manifest` the index's commit point, atomically and durably."""
    payload = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    write_file_atomically(path / MANIFEST, payload.encode("utf-8"))


def segment_name(generation: int) -> str:
    """The folder name of a segment first committed at `generation`."""
    return f"{SEGMENT_PREFIX}{generation:06d}"


def deletes_name(segment: str, generation: int) -> str:
    """The file name of `segment`'s deletions as committed at `generation`."""
    return f"{segment}.del-{generation:06d}.npy"


def referenced(manifest: dict[str, Any]) -> set[str]:
    """Every file and folder name of the index folder that `manifest` needs."""
    names = {MANIFEST}
    for entry in manifest["segments"]:
        names.add(entry["name"])
        if entry.get("deletes"):
            names.add(entry["deletes"])
    return names

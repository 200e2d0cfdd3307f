"""What a full rebuild indexes: the source folder, the app's pasted articles, and what only the old index holds.

`qa build --index X` used to index the source folder alone, so an article added with `qa add`
or pasted in the app vanished. A rebuild now also reads `<index>/pasted/` (where the app saves
pasted articles as files) and keeps every article of the previous index that none of its
sources provides any more, re-indexed from the full text `articles.jsonl` stores. Only
`drop_missing=True` (`qa build --drop-missing`) drops them. Either way the report names them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from qa.articles import ARTICLE_SUFFIXES, Article
from qa.corpus import Corpus
from qa.errors import IndexMissingError, NoArticlesError, QAError
from qa.index import AddReport

PASTED_FOLDER = "pasted"  # <index>/pasted/: the app's pasted articles, saved as files
_DERIVED_META = ("near_duplicate_of",)  # recomputed against the rebuilt index, not carried over


@dataclass
class RebuildReport(AddReport):
    """An AddReport plus the previous index's articles no source provided.

    `kept` ids were re-indexed from the previous index (they are also in `added`); `dropped`
    ids were left out because `drop_missing` was asked for.
    """

    kept: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def rebuild_sources(source: Path, index_path: Path) -> list[Path]:
    """The folders a rebuild reads: `source`, then `<index>/pasted/` when it exists and is not inside `source`."""
    pasted = index_path / PASTED_FOLDER
    if pasted.is_dir() and not pasted.resolve().is_relative_to(source.resolve()):
        return [source, pasted]
    return [source]


def read_sources(source: Path, index_path: Path) -> tuple[list[Article], RebuildReport]:
    """Parse every article of the rebuild's sources; bad inputs go into the report.

    Raises:
        NoArticlesError: no article at all could be read (a wrong --source, most likely); nothing
            has been written, so the previous index is left as it was.
    """
    from qa.ingest import Failure, load_articles

    sources = rebuild_sources(source, index_path)
    report = RebuildReport()
    parsed: list[Article] = []
    for root in sources:
        for item in load_articles(root):
            if isinstance(item, Failure):
                report.failed.append((item.name, item.reason))
            else:
                parsed.append(item)
    if not parsed:
        names = {str(root) for root in sources}  # a source's own failure ("no such folder") names it once
        reasons = "; ".join(why.rstrip(".") if name in names else f"{name}: {why.rstrip('.')}"
                            for name, why in report.failed)
        raise NoArticlesError(
            f"No article could be indexed from {', '.join(sorted(names))}: "
            + (reasons or f"no {', '.join(ARTICLE_SUFFIXES)} files found")
            + ". Point --source at a folder of articles. The existing index was left as it was."
        )
    return parsed, report


def previous_articles(index_path: Path) -> list[Article]:
    """The articles of the index now at `index_path` (none when there is no index yet).

    Only `articles.jsonl` is read, so an index of another model or with damaged vector files
    still gives its articles back.

    Raises:
        QAError, OSError, ValueError: an index is there but its articles cannot be read.
    """
    from qa.store import MANIFEST, dead_article_rows, read_commit

    try:
        manifest = read_commit(index_path)
    except IndexMissingError:
        return []
    except QAError:  # another format version: its articles.jsonl files may still be readable
        import json

        manifest = json.loads((index_path / MANIFEST).read_text(encoding="utf-8"))
        if "data" in manifest:  # format 6 and before: one data folder
            manifest = {"segments": [{"name": manifest["data"]}]}
    articles: list[Article] = []
    for entry in manifest["segments"]:
        removed = set(dead_article_rows(entry, index_path).tolist())
        articles += [a for row, a in enumerate(Corpus.load(index_path / entry["name"]).articles) if row not in removed]
    return articles


def not_provided(previous: list[Article], parsed: list[Article]) -> list[Article]:
    """The previous articles no source provides again: neither the same text nor the id a file name gives."""
    texts = {a.sha256 for a in parsed}
    ids = {a.id for a in parsed} | {f"{a.id}-{a.sha256[:6]}" for a in parsed}  # the id a name clash gives
    return [a for a in previous if a.sha256 not in texts and a.id not in ids]


def with_missing(parsed: list[Article], index_path: Path, report: RebuildReport, *, drop_missing: bool) -> list[Article]:
    """`parsed` plus the previous index's articles that no source provides, unless `drop_missing`.

    Call it under the index's write lock, so an add that lands meanwhile is not lost.
    """
    try:
        previous = previous_articles(index_path)
    except (QAError, OSError, ValueError, KeyError, TypeError) as exc:
        report.failed.append((str(index_path), (
            f"the previous index could not be read ({type(exc).__name__}: {exc}), so articles that only it "
            "held (added with `qa add` or pasted in the app) could not be kept")))
        return parsed
    missing = not_provided(previous, parsed)
    if drop_missing:
        report.dropped.extend(a.id for a in missing)
        return parsed
    report.kept.extend(a.id for a in missing)
    kept = [Article(**{**a.__dict__, "meta": {k: v for k, v in a.meta.items() if k not in _DERIVED_META}})
            for a in missing]
    return parsed + kept


def describe(report: RebuildReport) -> list[str]:
    """One line each for the kept and the dropped articles, for the CLI (empty when there were none)."""
    def count(ids: list[str]) -> str:
        return f"{len(ids)} article{'s' if len(ids) != 1 else ''}"

    lines = []
    if report.kept:
        lines.append(f"kept {count(report.kept)} not found in the source: {', '.join(report.kept)}; "
                     f"pass --drop-missing to drop {'them' if len(report.kept) != 1 else 'it'}")
    if report.dropped:
        lines.append(f"dropped {count(report.dropped)} not found in the source (--drop-missing): "
                     f"{', '.join(report.dropped)}")
    return lines

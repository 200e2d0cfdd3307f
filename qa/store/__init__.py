"""The index store: immutable segments, deletion files and a commit point that lists them.

    index/
      manifest.json                 the commit point (`commit.py`): format, model, segments
      seg-000004/                   a segment (`segment.py`): articles, sentences, vectors,
                                    dense index, BM25 postings, cues, signatures
      seg-000009/
      seg-000004.del-000011.npy     articles of seg-000004 removed as of commit 11 (`deletes.py`)
      .write.lock                   the writers' lock (`files.py`)

The write path, file by file: a writer takes the lock (`files.write_lock`), writes a new
segment folder or deletion file under a `.partial` name, syncs and renames it
(`files.staged_folder`), then replaces the commit point atomically (`commit.write_commit`) and
sweeps what no commit point names (`files.sweep`). Merges (`merge.py`) go the same way. A kill at
any moment leaves the last commit loadable; readers (`snapshot.py`) hold one commit's segments.
"""

from qa.store.commit import MANIFEST, deletes_name, read_commit, referenced, segment_name, write_commit
from qa.store.deletes import read_deletes, write_deletes
from qa.store.files import fsync_dir, sweep, write_lock
from qa.store.merge import MergePolicy, merge_segments
from qa.store.segment import Segment, SegmentData, dead_article_rows, read_segment_data
from qa.store.snapshot import Snapshot

__all__ = [
    "MANIFEST", "MergePolicy", "Segment", "SegmentData", "Snapshot", "dead_article_rows", "deletes_name",
    "fsync_dir", "merge_segments", "read_commit", "read_deletes", "read_segment_data", "referenced",
    "segment_name", "sweep", "write_commit", "write_deletes", "write_lock",
]

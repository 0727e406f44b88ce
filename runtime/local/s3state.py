"""Keep moto's S3 objects on disk, so the local platform's files survive a restart.

moto's server holds everything in memory and has no persistence switch (moto 5.2 only has
a request *recorder*, which would replay every SQS receive and S3 PUT ever made). So the
supervisor mirrors the buckets into ``data_dir/s3``: an incremental sync (new or changed
ETags are downloaded, deleted keys dropped) runs periodically and once more on shutdown,
and ``restore`` puts everything back into a fresh moto at startup. SQS needs no snapshot:
the database is the source of truth and queued jobs are re-sent at startup.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class SyncResult:
    downloaded: int
    removed: int
    total: int


def _blob_name(bucket: str, key: str) -> str:
    # Keys may hold any character; a hash gives a safe, flat file name.
    return hashlib.sha256(f"{bucket}\0{key}".encode()).hexdigest()


def _load_manifest(root: Path) -> dict[str, dict[str, dict[str, Any]]]:
    path = root / MANIFEST
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def _write_manifest(root: Path, manifest: dict[str, dict[str, dict[str, Any]]]) -> None:
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(tmp, root / MANIFEST)  # atomic: a crash mid-sync keeps the previous manifest


def sync(s3: Any, buckets: list[str], root: Path) -> SyncResult:
    """Mirror ``buckets`` into ``root`` incrementally; return what changed."""
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    old = _load_manifest(root)
    new: dict[str, dict[str, dict[str, Any]]] = {}
    downloaded = 0
    for bucket in buckets:
        entries: dict[str, dict[str, Any]] = {}
        previous = old.get(bucket, {})
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                key, etag = obj["Key"], obj["ETag"]
                blob = _blob_name(bucket, key)
                known = previous.get(key)
                if known and known["etag"] == etag and (root / "blobs" / blob).exists():
                    entries[key] = known
                    continue
                head = s3.head_object(Bucket=bucket, Key=key)
                part = root / "blobs" / (blob + ".part")
                s3.download_file(bucket, key, str(part))
                os.replace(part, root / "blobs" / blob)
                entries[key] = {
                    "etag": etag,
                    "blob": blob,
                    "content_type": head.get("ContentType", "binary/octet-stream"),
                    "metadata": head.get("Metadata", {}),
                }
                downloaded += 1
        new[bucket] = entries
    _write_manifest(root, new)
    keep = {entry["blob"] for entries in new.values() for entry in entries.values()}
    removed = 0
    for path in (root / "blobs").iterdir():
        if path.name not in keep:
            path.unlink()
            removed += 1
    return SyncResult(downloaded=downloaded, removed=removed, total=len(keep))


def restore(s3: Any, root: Path) -> int:
    """Put every mirrored object back (buckets must exist); return how many."""
    count = 0
    for bucket, entries in _load_manifest(root).items():
        for key, entry in entries.items():
            blob = root / "blobs" / entry["blob"]
            if not blob.exists():
                continue
            with blob.open("rb") as body:
                s3.put_object(
                    Bucket=bucket,
                    Key=key,
                    Body=body,
                    ContentType=entry.get("content_type") or "binary/octet-stream",
                    Metadata=entry.get("metadata") or {},
                )
            count += 1
    return count

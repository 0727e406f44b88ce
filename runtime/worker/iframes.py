"""Trick play: one I-frame playlist per video variant, listed in the master so players can scrub.

Each variant gets ``iframes.m3u8`` beside its playlist (``EXT-X-I-FRAMES-ONLY``, one entry per
keyframe: ``EXT-X-BYTERANGE`` into the variant's own segments, so no media is duplicated) and
the master gets one ``EXT-X-I-FRAME-STREAM-INF`` for it. Keyframes come from ffprobe's packet
list (flag K, ``pos``, ``size``). The byte ranges are what RFC 8216 (4.3.3.6) asks and what
Apple's tools write and hls.js (1.7+) loads:

* MPEG-TS: from the first TS packet of the keyframe's PES up to the first packet of the next
  video PES (interleaved audio packets included). The PAT/PMT at the start of the segment is
  NOT in the range: the RFC forbids including the initialisation section, and a client takes
  the bytes before a resource's first I-frame as that section (hls.js does exactly this).
* fMP4: from the ``moof`` of the keyframe's fragment through the keyframe's last byte in the
  ``mdat`` (the mdat header included, the fragment's later samples left out), with
  ``EXT-X-MAP`` naming the variant's init segment. Players (hls.js: ``partialMdat``) trim the
  moof's sample table to the samples present. So only a keyframe that is its fragment's first
  video sample can be listed; ffmpeg's HLS muxer writes one fragment per segment, each starting
  on a keyframe, so fMP4 ladders get one I-frame per segment (TS ladders get every keyframe).

Each entry's EXTINF runs to the next keyframe, so the entries add up to the variant's length.
"""

from __future__ import annotations

import math
import posixpath
from dataclasses import dataclass, replace
from pathlib import Path

from runtime.shared import hls
from runtime.worker import renditions
from runtime.worker.outputs import LocalOutput
from runtime.worker.renditions import Probe, Rendition

HLS_MIME = "application/vnd.apple.mpegurl"
#: RFC 6381 prefixes of video codecs (what an I-frame variant's CODECS may name).
VIDEO_CODECS = ("avc1", "avc3", "hvc1", "hev1", "dvh1", "dvhe", "av01", "vp09")


@dataclass(frozen=True)
class IFrame:
    """One keyframe: ``length`` bytes at ``offset`` in segment ``uri``, shown for ``duration``."""

    uri: str
    offset: int
    length: int
    duration: float


def iframe_name(variant_uri: str) -> str:
    """The I-frame playlist's URI (relative to the master) for a variant playlist's URI."""
    folder, name = posixpath.split(variant_uri)
    stem = name.rsplit(".", 1)[0]
    return posixpath.join(folder, "iframes.m3u8" if stem == "index" else f"{stem}-iframes.m3u8")


def add_iframe_playlists(master: LocalOutput) -> list[LocalOutput]:
    """Write an I-frame playlist for each video variant of ``master`` and list them in it.

    Returns the new playlists as outputs to upload (no job_outputs row: players reach them
    through the master, like the variant playlists' segments)."""
    parsed = hls.parse_master(master.path.read_text())
    streams: list[hls.IFrameStream] = []
    outputs: list[LocalOutput] = []
    key_folder = posixpath.dirname(master.key)
    for variant in parsed.variants:
        try:
            rendition = renditions.load(master.path.parent / variant.uri)
            probed = renditions.probe(rendition)
        except renditions.RenditionError:
            continue  # the ladder check names what is wrong with it
        video = next((s for s in probed.streams if s.get("codec_type") == "video"), None)
        if video is None:
            continue  # an audio-only variant has no pictures to scrub through
        frames = keyframes(rendition, probed, int(video["index"]))
        if not frames:
            continue
        uri = iframe_name(variant.uri)
        target = master.path.parent / uri
        target.write_text(render(rendition, frames))
        rates = [f.length * 8 / f.duration for f in frames if f.duration > 0]
        total = sum(f.duration for f in frames)
        average = sum(f.length for f in frames) * 8 / total if total > 0 else 0.0
        declared = [c.strip() for c in variant.codecs.split(",") if c.strip()]
        codecs = renditions.codec_string(video) or ",".join(c for c in declared if c.startswith(VIDEO_CODECS))
        streams.append(
            hls.IFrameStream(
                uri=uri,
                width=int(video["width"]),
                height=int(video["height"]),
                codecs=codecs,
                bandwidth=math.ceil(max(rates or [average])),
                average_bandwidth=math.ceil(average),
            )
        )
        outputs.append(LocalOutput(target, posixpath.normpath(posixpath.join(key_folder, uri)), None, HLS_MIME))
    if streams:
        master.path.write_text(hls.write_master(replace(parsed, iframes=(*parsed.iframes, *streams))))
    return outputs


def keyframes(rendition: Rendition, probed: Probe, stream: int) -> list[IFrame]:
    """The byte range and display time of every keyframe of ``stream`` in the rendition."""
    packets = [p for p in probed.packets if p.stream == stream and p.pos is not None]
    fragmented = rendition.init_uri is not None
    moofs: dict[int, list[int]] = {}
    found: list[tuple[str, int, int, float]] = []  # uri, offset, length, pts
    for index, packet in enumerate(packets):
        if not packet.key or packet.pos is None:
            continue
        located = rendition.locate(packet.pos)
        if located is None:
            continue
        seg_index, offset = located
        segment = rendition.segments[seg_index]
        if fragmented:
            if seg_index not in moofs:
                moofs[seg_index] = box_offsets(segment.path, b"moof")
            start = max((m for m in moofs[seg_index] if m <= offset), default=None)
            previous = packets[index - 1].pos if index > 0 else None
            if start is None or (previous is not None and previous >= segment.offset + start):
                # Not the first sample of its fragment: a range from the moof would hold (and a
                # player show) the fragment's earlier frames, so the keyframe is not listed.
                continue
            end = offset + packet.size
        else:
            start, end = offset, segment.size
            following = next((p.pos for p in packets[index + 1 :] if p.pos is not None and p.pos > packet.pos), None)
            if following is not None:
                nxt = rendition.locate(following)
                if nxt is not None and nxt[0] == seg_index:
                    end = nxt[1]
        found.append((segment.uri, start, max(0, end - start), packet.pts or 0.0))
    ends = [(p.pts or 0.0) + (p.duration or 0.0) for p in packets if p.pts is not None]
    frames: list[IFrame] = []
    for n, (uri, offset, length, pts) in enumerate(found):
        until = found[n + 1][3] if n + 1 < len(found) else max(ends, default=pts)
        frames.append(IFrame(uri, offset, length, max(0.001, until - pts)))
    return frames


def render(rendition: Rendition, frames: list[IFrame]) -> str:
    """The I-frame media playlist (URIs as in the variant playlist: it lives in the same folder)."""
    fragmented = rendition.init_uri is not None
    playlist = hls.MediaPlaylist(
        target_duration=max(1, math.ceil(max(f.duration for f in frames) - 1e-6)),
        segments=tuple(hls.Segment(f.uri, f.duration, hls.ByteRange(f.length, f.offset)) for f in frames),
        map_uri=rendition.init_uri,
        ended=True,
        version=max(5 if fragmented else 4, rendition.playlist.version),
        i_frames_only=True,
        playlist_type="VOD",
    )
    return hls.write_media(playlist)


def box_offsets(path: Path, kind: bytes) -> list[int]:
    """Offsets of the top-level ISO BMFF boxes of type ``kind`` (reads box headers only)."""
    offsets: list[int] = []
    size_total = path.stat().st_size
    with path.open("rb") as f:
        pos = 0
        while pos + 8 <= size_total:
            f.seek(pos)
            header = f.read(16)
            size = int.from_bytes(header[:4], "big")
            if size == 1 and len(header) >= 16:
                size = int.from_bytes(header[8:16], "big")
            elif size == 0:
                size = size_total - pos
            if header[4:8] == kind:
                offsets.append(pos)
            if size < 8:
                break  # a damaged header: nothing after it can be trusted
            pos += size
    return offsets

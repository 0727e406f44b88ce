"""HLS playlists, in one place: read master and media playlists, write a master and a media
playlist (the worker's I-frame playlists), list and rewrite the URIs a playlist references.

Built on the maintained ``m3u8`` parser (RFC 8216), so the worker (which writes ladders), the
API's playback (which rewrites them with signed URLs) and the local client (which downloads
them) read playlists the same way; no other module imports ``m3u8`` or spells a tag
(tests/unit/test_hls_owner.py). ``m3u8`` has no type hints: its objects stay inside this
module, which hands out the frozen dataclasses below. A master here has video variants (``EXT-X-STREAM-INF``),
audio renditions shared by every variant (``EXT-X-MEDIA:TYPE=AUDIO``, one group) and I-frame
playlists (``EXT-X-I-FRAME-STREAM-INF``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import m3u8

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


_BYTERANGE = re.compile(r"(\d+)(?:@(\d+))?")


@dataclass(frozen=True)
class ByteRange:
    """``EXT-X-BYTERANGE``: ``length`` bytes at ``offset``; no offset means right after the
    previous sub-range of the same resource (RFC 8216 4.3.2.2)."""

    length: int
    offset: int | None = None

    def __str__(self) -> str:
        return str(self.length) if self.offset is None else f"{self.length}@{self.offset}"


@dataclass(frozen=True)
class Segment:
    uri: str
    duration: float
    byterange: ByteRange | None = None


@dataclass(frozen=True)
class MediaPlaylist:
    target_duration: int
    segments: tuple[Segment, ...]
    map_uri: str | None
    ended: bool
    version: int = 1
    #: ``EXT-X-I-FRAMES-ONLY``: each segment (a byte range) is one I-frame.
    i_frames_only: bool = False
    #: ``EXT-X-PLAYLIST-TYPE`` (``VOD``, ``EVENT``) or None.
    playlist_type: str | None = None

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.segments)


def _byterange(value: object) -> ByteRange | None:
    """m3u8 keeps EXT-X-BYTERANGE as its text; None when absent or not ``n[@o]``."""
    match = _BYTERANGE.fullmatch(str(value or ""))
    if match is None:
        return None
    return ByteRange(int(match.group(1)), int(match.group(2)) if match.group(2) is not None else None)


def _optional_resolution(width: int, height: int) -> tuple[int, int] | None:
    return (width, height) if width or height else None


@dataclass(frozen=True)
class Variant:
    """One ``EXT-X-STREAM-INF``: a video rendition, with the audio group it plays with."""

    uri: str
    width: int
    height: int
    codecs: str
    bandwidth: int
    average_bandwidth: int | None = None
    frame_rate: float | None = None
    audio_group: str | None = None

    @property
    def resolution(self) -> tuple[int, int] | None:
        """(width, height), or None when the playlist gives no RESOLUTION."""
        return _optional_resolution(self.width, self.height)


@dataclass(frozen=True)
class AudioRendition:
    """One ``EXT-X-MEDIA:TYPE=AUDIO``; ``language`` is an RFC 5646 tag (``en``)."""

    uri: str
    group_id: str
    name: str
    language: str | None = None
    default: bool = False
    autoselect: bool = True
    channels: int | None = None


@dataclass(frozen=True)
class IFrameStream:
    """One ``EXT-X-I-FRAME-STREAM-INF``: the I-frame playlist of a variant, for scrubbing."""

    uri: str
    width: int
    height: int
    codecs: str
    bandwidth: int
    average_bandwidth: int | None = None

    @property
    def resolution(self) -> tuple[int, int] | None:
        """(width, height), or None when the playlist gives no RESOLUTION."""
        return _optional_resolution(self.width, self.height)


@dataclass(frozen=True)
class Master:
    variants: tuple[Variant, ...]
    audio: tuple[AudioRendition, ...] = ()
    iframes: tuple[IFrameStream, ...] = ()
    version: int = 6
    independent_segments: bool = True

    def validate(self) -> None:
        """What every master this system serves must be; raises ValueError otherwise."""
        if not self.variants:
            raise ValueError("the master playlist lists no variants")
        groups = {a.group_id for a in self.audio}
        for n, v in enumerate(self.variants):
            if v.bandwidth <= 0 or v.width <= 0 or v.height <= 0 or not v.codecs:
                raise ValueError(f"variant {n} lacks BANDWIDTH, RESOLUTION or CODECS")
            if v.audio_group is not None and v.audio_group not in groups:
                raise ValueError(f"variant {n} names audio group {v.audio_group!r}, which no EXT-X-MEDIA defines")
        for group in groups:
            defaults = [a for a in self.audio if a.group_id == group and a.default]
            if len(defaults) != 1:
                raise ValueError(f"audio group {group!r} has {len(defaults)} DEFAULT=YES renditions; it needs one")
        for uri in [v.uri for v in self.variants] + [a.uri for a in self.audio] + [i.uri for i in self.iframes]:
            if not is_relative(uri):
                raise ValueError(f"playlist URI {uri!r} must be relative")


def is_relative(uri: str) -> bool:
    """A URI resolved against the playlist's own location (no scheme, not absolute-path)."""
    return bool(uri) and not _SCHEME.match(uri) and not uri.startswith("/")


def _load(text: str) -> m3u8.M3U8:
    if not text.lstrip().startswith("#EXTM3U"):
        raise ValueError("a playlist starts with #EXTM3U")
    try:
        return m3u8.loads(text)
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise ValueError(f"malformed playlist: {err}") from err


def parse_media(text: str) -> MediaPlaylist:
    """A media playlist's segments (with durations), its init section and whether it ended."""
    playlist = _load(text)
    if playlist.is_variant:
        raise ValueError("expected a media playlist, got a master playlist")
    segments = tuple(Segment(str(s.uri), float(s.duration or 0.0), _byterange(s.byterange)) for s in playlist.segments)
    init = next((s.init_section for s in playlist.segments if s.init_section is not None), None)
    map_uri = init.uri if init is not None else (playlist.segment_map[0].uri if playlist.segment_map else None)
    return MediaPlaylist(
        int(playlist.target_duration or 0),
        segments,
        None if map_uri is None else str(map_uri),
        bool(playlist.is_endlist),
        int(playlist.version or 1),
        bool(playlist.is_i_frames_only),
        str(playlist.playlist_type).upper() if playlist.playlist_type else None,
    )


def write_media(playlist: MediaPlaylist) -> str:
    """A media playlist's text: EXTINF with microseconds, one ``EXT-X-MAP`` before the first
    segment when ``map_uri`` is set, URIs as given (relative to the playlist's folder)."""
    out = m3u8.M3U8()
    out.version = playlist.version
    out.target_duration = playlist.target_duration
    out.playlist_type = playlist.playlist_type
    out.is_i_frames_only = playlist.i_frames_only
    out.is_endlist = playlist.ended
    init = {"uri": playlist.map_uri} if playlist.map_uri else None  # m3u8 writes it once, before the first
    for s in playlist.segments:
        byterange = None if s.byterange is None else str(s.byterange)
        out.add_segment(m3u8.Segment(uri=s.uri, duration=s.duration, byterange=byterange, init_section=init))
    return str(out.dumps(infspec="microseconds"))


def _resolution(value: tuple[int, int] | None) -> tuple[int, int]:
    return value if value else (0, 0)


def parse_master(text: str) -> Master:
    """A master playlist as :class:`Master` (not validated: see :meth:`Master.validate`)."""
    playlist = _load(text)
    if not playlist.is_variant:
        raise ValueError("expected a master playlist, got a media playlist")
    variants = []
    for p in playlist.playlists:
        info = p.stream_info
        width, height = _resolution(info.resolution)
        variants.append(
            Variant(
                uri=str(p.uri),
                width=width,
                height=height,
                codecs=str(info.codecs or ""),
                bandwidth=int(info.bandwidth or 0),
                average_bandwidth=info.average_bandwidth,
                frame_rate=info.frame_rate,
                audio_group=info.audio,
            )
        )
    audio = [
        AudioRendition(
            uri=str(m.uri),
            group_id=str(m.group_id),
            name=str(m.name or ""),
            language=m.language,
            default=(m.default or "").upper() == "YES",
            autoselect=(m.autoselect or "").upper() == "YES",
            channels=int(str(m.channels).split("/")[0]) if m.channels else None,
        )
        for m in playlist.media
        if (m.type or "").upper() == "AUDIO" and m.uri
    ]
    iframes = []
    for i in playlist.iframe_playlists:
        info = i.iframe_stream_info
        width, height = _resolution(info.resolution)
        iframes.append(
            IFrameStream(
                str(i.uri), width, height, str(info.codecs or ""), int(info.bandwidth or 0), info.average_bandwidth
            )
        )
    return Master(
        tuple(variants),
        tuple(audio),
        tuple(iframes),
        int(playlist.version or 1),
        bool(playlist.is_independent_segments),
    )


def _yes(flag: bool) -> str:
    return "YES" if flag else "NO"


def write_master(master: Master) -> str:
    """The master's text: audio renditions, then variants (highest BANDWIDTH first), then
    I-frame playlists; every URI as given (relative to the master's folder)."""
    out = m3u8.M3U8()
    out.version = master.version
    out.is_independent_segments = master.independent_segments
    media = []
    for a in master.audio:
        entry = m3u8.Media(
            uri=a.uri,
            type="AUDIO",
            group_id=a.group_id,
            language=a.language,
            name=a.name,
            default=_yes(a.default),
            autoselect=_yes(a.autoselect),
            channels=str(a.channels) if a.channels else None,
        )
        media.append(entry)
        out.add_media(entry)
    for v in sorted(master.variants, key=lambda v: v.bandwidth, reverse=True):
        info: dict[str, Any] = {
            "bandwidth": v.bandwidth,
            "average_bandwidth": v.average_bandwidth,
            "resolution": f"{v.width}x{v.height}",
            "codecs": v.codecs,
            "frame_rate": v.frame_rate,
            "audio": v.audio_group,
        }
        out.add_playlist(m3u8.Playlist(v.uri, info, media, None))
    for i in master.iframes:
        info = {
            "bandwidth": i.bandwidth,
            "average_bandwidth": i.average_bandwidth,
            "resolution": f"{i.width}x{i.height}",
            "codecs": i.codecs or None,
        }
        out.add_iframe_playlist(m3u8.IFramePlaylist(None, i.uri, info))
    return str(out.dumps())


def _references(playlist: m3u8.M3U8) -> Iterator[Any]:
    """Every object of ``playlist`` that carries a ``uri``, in playlist order."""
    if playlist.is_variant:
        yield from (m for m in playlist.media if m.uri)
        yield from playlist.playlists
        yield from playlist.iframe_playlists
        yield from playlist.image_playlists
        return
    for seg in playlist.segments:
        if seg.init_section is not None:
            yield seg.init_section
        if seg.key is not None and seg.key.uri:
            yield seg.key
        yield seg
        yield from seg.parts
    if playlist.preload_hint is not None:
        yield playlist.preload_hint


def uris(text: str) -> list[str]:
    """Every URI a playlist references (variants, renditions, I-frame playlists; or init
    sections, keys, segments, parts), each once, in a stable order."""
    found: list[str] = []
    for ref in _references(_load(text)):
        if ref.uri not in found:
            found.append(str(ref.uri))
    return found


def rewrite(text: str, rewrite_uri: Callable[[str], str]) -> str:
    """``text`` with every relative URI replaced by ``rewrite_uri(uri)`` (called once per
    distinct URI); absolute URIs are left alone."""
    playlist = _load(text)
    done: dict[str, str] = {}
    seen: set[int] = set()
    for ref in _references(playlist):
        uri = str(ref.uri)
        if id(ref) not in seen and is_relative(uri):
            seen.add(id(ref))
            if uri not in done:
                done[uri] = rewrite_uri(uri)
            ref.uri = done[uri]
    return str(playlist.dumps())

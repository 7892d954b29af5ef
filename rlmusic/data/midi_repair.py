"""Repair of Standard MIDI Files whose notes are intact, so pretty_midi reads them.

Byte level: empty track chunks and unusable meta events (a key signature outside +-7, a zero
tempo or meter) are dropped, each dropped event's delta time passed on to the next event so
timing is kept. Files whose structure is broken (truncated chunks, missing tracks, undefined
status bytes) raise ValueError: they are corrupt, not repairable.

Parsed (mido) level: a long file at a fine resolution is re-timed under pretty_midi's tick
limit (:func:`fit_tick_limit`).
"""

from __future__ import annotations

import math
import struct


def _read_vlq(data: bytes, i: int) -> tuple[int, int]:
    """A MIDI variable-length quantity at ``data[i:]`` -> (value, index after it)."""
    value = 0
    for _ in range(4):
        if i >= len(data):
            raise ValueError("truncated variable-length quantity")
        byte = data[i]
        i += 1
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, i
    raise ValueError("variable-length quantity longer than 4 bytes")


def _vlq(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _unusable_meta(meta_type: int, payload: bytes) -> str | None:
    """Why a meta event cannot be used (mido can't decode it, or pretty_midi refuses it), or None."""
    import mido

    try:
        message = mido.MetaMessage.from_bytes(
            b"\xff" + bytes([meta_type]) + _vlq(len(payload)) + payload
        )
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    if message.type == "time_signature" and message.numerator < 1:
        return f"time signature of {message.numerator} beats"
    if message.type == "set_tempo" and message.tempo < 1:
        return "tempo of 0 microseconds per beat"
    return None


_META_NAMES = {0x51: "tempo", 0x58: "time signature", 0x59: "key signature"}
# data bytes after each status byte mido reads in a track: channel messages (program change and
# channel pressure take one), then system common and real-time ones
_DATA_BYTES = {
    **{status: 1 if 0xC0 <= status <= 0xDF else 2 for status in range(0x80, 0xF0)},
    **{0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF6: 0, 0xF8: 0, 0xFA: 0, 0xFB: 0, 0xFC: 0, 0xFE: 0},
}


def _repair_track(body: bytes, number: int) -> tuple[bytes, list[str]]:
    """One MTrk body without its unusable meta events (their delta times carried forward)."""
    out = bytearray()
    fixes: list[str] = []
    i, running, carried = 0, None, 0
    while i < len(body):
        delta, i = _read_vlq(body, i)
        start = i
        status = body[i] if i < len(body) else None
        if status is None:
            raise ValueError("track ends inside an event")
        if status == 0xFF:
            if i + 1 >= len(body):
                raise ValueError("truncated meta event")
            meta_type = body[i + 1]
            length, i = _read_vlq(body, i + 2)
            payload = body[i : i + length]
            i += length
            why = _unusable_meta(meta_type, payload)
            if why is not None:
                name = _META_NAMES.get(meta_type, f"meta 0x{meta_type:02X}")
                fixes.append(f"dropped an unusable {name} event in track {number} ({why})")
                carried += delta  # the next event keeps its absolute time
                continue
        elif status in (0xF0, 0xF7):
            length, i = _read_vlq(body, i + 1)
            i += length
            running = None
        else:
            if status & 0x80:
                running, i = status, i + 1
            elif running is None:
                raise ValueError("running status without a previous status")
            if running not in _DATA_BYTES:
                raise ValueError(f"status byte 0x{running:02X} in a track")
            i += _DATA_BYTES[running]
        if i > len(body):
            raise ValueError("track ends inside an event")
        out += _vlq(delta + carried) + body[start:i]
        carried = 0
    return bytes(out), fixes


def repair_midi(data: bytes) -> tuple[bytes, list[str]]:
    """A Standard MIDI File without empty track chunks and unusable meta events.

    Returns the repaired bytes and what was dropped. Raises ValueError where the file's
    structure itself is broken (truncated chunks, fewer tracks than announced, bad events):
    those files are corrupt, not repairable.
    """
    if data[:4] != b"MThd" or len(data) < 14:
        raise ValueError("no MThd header")
    header_length = struct.unpack(">I", data[4:8])[0]
    if header_length < 6:
        raise ValueError("MThd chunk shorter than 6 bytes")
    file_format, announced, division = struct.unpack(">HHH", data[8:14])
    position = 8 + header_length
    tracks: list[bytes] = []
    fixes: list[str] = []
    found = 0
    while found < announced:
        if position + 8 > len(data):
            raise ValueError(f"the header announces {announced} tracks, the file holds {found}")
        chunk_id = data[position : position + 4]
        length = struct.unpack(">I", data[position + 4 : position + 8])[0]
        body = data[position + 8 : position + 8 + length]
        if len(body) < length:
            raise ValueError("truncated chunk")
        position += 8 + length
        if chunk_id != b"MTrk":
            continue  # alien chunks: SMF readers skip them
        found += 1
        body, track_fixes = _repair_track(body, found)
        fixes += track_fixes
        if not body:
            fixes.append(f"dropped an empty track chunk (track {found} of {announced})")
            continue
        tracks.append(b"MTrk" + struct.pack(">I", len(body)) + body)
    if not tracks:
        raise ValueError("no track with events")
    file_format = 1 if file_format == 0 and len(tracks) > 1 else file_format
    header = b"MThd" + struct.pack(">IHHH", 6, file_format, len(tracks), division)
    return header + b"".join(tracks), fixes


# pretty_midi refuses a file whose last tick passes this (pretty_midi.pretty_midi.MAX_TICK):
# it maps every tick to seconds in one float64 array, 80 MB at the limit
MAX_TICK = 10_000_000
# the coarsest resolution a long file is re-timed to: onsets move by at most 1/192 quarter
MIN_TICKS_PER_QUARTER = 96


def fit_tick_limit(midi) -> str | None:
    """Re-time a parsed ``mido.MidiFile`` in place so that its last tick is under :data:`MAX_TICK`.

    pretty_midi's limit bounds the memory of its tick-to-seconds array; it is no property of the
    music: music21 writes 10,080 ticks per quarter, so any piece over ~250 bars passes it. Such
    a file is divided by the greatest common divisor of its delta times and resolution (exact:
    nothing moves; returns None), else rounded to the finest resolution that fits (returns what
    was done, for a warning: onsets move by at most half a tick).

    Raises:
        ValueError: a file too long to fit even at :data:`MIN_TICKS_PER_QUARTER` (over 100,000
            quarter notes): a corrupt delta time, not music.
    """
    last = max((sum(message.time for message in track) for track in midi.tracks), default=0)
    if last < MAX_TICK:
        return None
    resolution = midi.ticks_per_beat
    divisor = math.gcd(resolution, *(m.time for track in midi.tracks for m in track))
    if last // divisor < MAX_TICK:
        for track in midi.tracks:
            for message in track:
                message.time //= divisor
        midi.ticks_per_beat = resolution // divisor
        return None
    coarser = (MAX_TICK - 1) * resolution // last  # the finest resolution that fits
    if coarser < MIN_TICKS_PER_QUARTER:
        raise ValueError(
            f"its last event is at quarter note {last / resolution:,.0f} (tick {last:,} at "
            f"{resolution} per quarter): a corrupt delta time, not music"
        )
    for track in midi.tracks:
        tick = previous = 0
        for message in track:
            tick += message.time
            moved = round(tick * coarser / resolution)  # monotone: deltas stay >= 0
            message.time, previous = moved - previous, moved
    midi.ticks_per_beat = coarser
    return (
        f"read at {coarser} ticks per quarter (written at {resolution}; its "
        f"{last / resolution:,.0f} quarter notes pass pretty_midi's {MAX_TICK:,}-tick limit): "
        f"onsets move by at most 1/{2 * coarser} quarter"
    )

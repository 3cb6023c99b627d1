"""How events are stored: the codec, apart from the event classes it reads and writes.

A stored event is keyed ``Name.vN`` (its type and schema version) and its body is a JSON array
led by the type name (msgspec, array-like: compact, big ints exact). Bodies of the current version
decode straight into the class; an older version's body is read with the field list that version
had (``cls.PAST[v].fields``) and upgraded one version at a time by the type's own steps, so both
read paths — one event at a time and a whole segment in one call — give the same event.
"""
from __future__ import annotations

from typing import Any, Callable

import msgspec

from tapedeck.domain.events import BY_NAME, EVENT_TYPES, AnyEvent, Event


class SchemaError(ValueError):
    """A stored event whose type or version this build cannot read."""


def topic(event_type: type[Event]) -> str:
    """Stored key of a type at its current schema: ``Name.vN``."""
    return f"{event_type.__name__}.v{event_type.SCHEMA}"


CURRENT_TOPIC: dict[type[Event], str] = {t: topic(t) for t in EVENT_TYPES}
_encoder = msgspec.json.Encoder()
_decoders: dict[str, msgspec.json.Decoder] = {CURRENT_TOPIC[t]: msgspec.json.Decoder(t) for t in EVENT_TYPES}
_segment_decoder = msgspec.json.Decoder(list[tuple[str, AnyEvent]])


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


def decode_segment(body: bytes | memoryview) -> list[tuple[str, Event]] | None:
    """A whole segment (``[[topic, event], ...]``) in one decode call, or ``None`` when some event in
    it is not of the current schema (the caller then decodes it event by event). The union decodes
    by the body's type name alone, so the stored topic must also name the current version: an older
    body with fewer or renamed fields must never pass as a new one. Bad JSON raises
    ``msgspec.DecodeError``."""
    try:
        decoded = _segment_decoder.decode(body)
    except msgspec.ValidationError:
        return None
    for stored, e in decoded:
        if stored != CURRENT_TOPIC[type(e)]:
            return None
    return decoded


def decoder_for(stored_topic: str) -> Callable[[bytes], Event]:
    """A decoder for one stored topic, upcasting old versions on the way."""
    dec = _decoders.get(stored_topic)
    name, _, ver = stored_topic.partition(".v")
    cls = BY_NAME.get(name)
    if dec is not None and cls is not None:
        return _current_decoder(dec, cls)
    if cls is None or not ver.isdigit():
        raise SchemaError(f"unknown event type {stored_topic!r}")
    version = int(ver)
    if version > cls.SCHEMA:
        raise SchemaError(f"{stored_topic!r} is newer than this build reads (v{cls.SCHEMA})")
    past = cls.PAST.get(version)
    if past is None:
        raise SchemaError(f"{name} keeps no description of its v{version}")
    return _upcasting_decoder(cls, version, past.fields)


def _upcasting_decoder(cls: type[Event], version: int, fields: tuple[str, ...]) -> Callable[[bytes], Event]:
    name = cls.__name__

    def upcast_decode(data: bytes) -> Event:
        values = msgspec.json.decode(data)
        if isinstance(values, list) and values and values[0] == name:
            values = values[1:]  # tagged bodies (every version written since the type name led the array)
        if not isinstance(values, list) or len(values) != len(fields):
            got = len(values) if isinstance(values, list) else type(values).__name__
            raise SchemaError(f"{name}.v{version}: expected {len(fields)} fields, got {got}")
        d = dict(zip(fields, values))
        for v in range(version, cls.SCHEMA):
            step = cls.PAST.get(v)
            if step is None:
                raise SchemaError(f"{name} keeps no step from v{v} to v{v + 1}")
            try:
                d = step.upgrade(d)
            except (ArithmeticError, ValueError, TypeError, KeyError) as e:  # e.g. a v3 price that is not a number
                raise SchemaError(f"{name}.v{version}: cannot upgrade v{v} to v{v + 1}: "
                                  f"{type(e).__name__}: {e}") from None
        return msgspec.convert([name] + [d[f] for f in cls.__struct_fields__], cls)

    return upcast_decode


def _current_decoder(dec: msgspec.json.Decoder, cls: type[Event]) -> Callable[[bytes], Event]:
    """The current version's decoder; bodies written before the type name led the array (an
    untagged array of the same fields, e.g. ``fixtures/golden/schema1-untagged``) load too."""
    name = cls.__name__

    def decode_current(data: bytes) -> Event:
        try:
            return dec.decode(data)
        except msgspec.ValidationError:
            values = msgspec.json.decode(data)
            if not isinstance(values, list) or (values and values[0] == name):
                raise
            return msgspec.convert([name, *values], cls)

    return decode_current


def decode(stored_topic: str, data: bytes) -> Event:
    """One stored event; anything it cannot read (bad JSON, invalid UTF-8, wrong shape or types)
    raises ``SchemaError`` naming the topic, never a decoder's own error type."""
    try:
        return decoder_for(stored_topic)(data)
    except SchemaError:
        raise
    except (msgspec.DecodeError, UnicodeDecodeError, TypeError, ValueError, KeyError, OverflowError) as e:
        raise SchemaError(f"{stored_topic}: unreadable body: {type(e).__name__}: {e}") from None


def to_builtins(event: Event) -> dict[str, Any]:
    """Plain dict (ints stay ints, Decimals become strings) for export and display."""
    values = msgspec.to_builtins(event)  # a list: [type name, field values...]
    return dict(zip(type(event).__struct_fields__, values[1:]))


def as_recorded(recomputed: Event, stored_topic: str, recorded: Event) -> Event:
    """``recomputed`` seen through an older schema: the fields added since ``stored_topic``'s version
    take the values the upcaster gave ``recorded``. Verify compares a decision stored by older code
    on what that code could say (today's code adds a client id; yesterday's had none to compare)."""
    name, _, ver = stored_topic.partition(".v")
    cls = type(recomputed)
    if cls.__name__ != name or not ver.isdigit() or int(ver) >= cls.SCHEMA or type(recorded) is not cls:
        return recomputed
    past = cls.PAST.get(int(ver))
    if past is None:
        return recomputed
    added = {f: getattr(recorded, f) for f in cls.__struct_fields__ if f not in past.fields}
    return msgspec.structs.replace(recomputed, **added) if added else recomputed


def stored_versions() -> list[str]:
    """Every topic this build reads: each type's current version and every past one it describes."""
    return [CURRENT_TOPIC[t] for t in EVENT_TYPES] + [f"{t.__name__}.v{v}" for t in EVENT_TYPES for v in sorted(t.PAST)]

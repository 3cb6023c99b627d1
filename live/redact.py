"""What of a URL may be recorded or printed: its scheme, host and port. Providers put API keys in a
node URL's path, query or credentials (``wss://mainnet.example/v3/KEY``), so every URL that reaches an
event, a manifest, a health answer or an error message goes through here first."""
from __future__ import annotations

from urllib.parse import urlsplit


def redact_url(url: str) -> str:
    """``scheme://host:port`` of a URL, ``/...`` for any path, query or credentials it had (where
    providers put API keys): what may appear in a manifest or an event."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # (a port out of range, a bracket unclosed: nothing of it is repeated)
        return "(a URL that does not parse)"
    hidden = bool(parts.path.strip("/") or parts.query or parts.fragment or parts.username or parts.password)
    return f"{parts.scheme}://{host}{port}{'/...' if hidden else ''}"


def redact_in(text: str, url: str) -> str:
    """``text`` (an exception's message, say) with ``url`` and its query, path and credentials, wherever
    they appear in it, replaced by ``redact_url(url)``'s parts: a reason that may be recorded or printed."""
    if not url:
        return text
    out = text.replace(url, redact_url(url))
    try:
        parts = urlsplit(url)
    except ValueError:
        return out
    for secret in (parts.query, parts.path.strip("/"), parts.fragment, parts.password or "", parts.username or ""):
        if len(secret) >= 3:
            out = out.replace(secret, "...")
    return out

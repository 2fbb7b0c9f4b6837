"""Credentials out of what people read: logs, stored errors, summaries, stored config copies.

A URL may carry a password (``https://user:pass@host/``, ``rtsp://admin:pw@camera/``) or a secret in
its query (``?token=...``). :func:`redact_url` masks both in one URL; :func:`redact_text` in every URL
found in a text (a log line, an exception message, a config's JSON or YAML). The station keeps
using the real values; only the copies that are shown or stored are masked.
"""

from __future__ import annotations

import re

MASK = "***"

# A URL as it appears in text: scheme://, then up to white space or a quote / bracket, less the
# punctuation of the sentence around it ("POST https://host/x?token=t: refused").
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>`]*[^\s\"'<>`.,;:!?)\]}]")
# Query (or fragment) parameters whose value is a secret; the name may carry a prefix or suffix
# (access_token, x-api-key, client_secret). Over-masking a harmless "key" is the cheaper mistake.
_SECRET_PARAM = re.compile(
    r"(?i)([?&;#][^=&;#\s]*(?:token|passw(?:or)?d|pwd|secret|key|sig(?:nature)?|auth|credential)[^=&;#\s]*=)"
    r"([^&;#\s\"',)\]}]*)")


def redact_url(url: str) -> str:
    """``scheme://user:***@host/...?token=***``; a user name alone (``https://TOKEN@host``, the
    GitHub style) is masked as a whole. A URL without secrets comes back unchanged."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    end = len(rest)
    for ch in "/?#":
        i = rest.find(ch)
        if i != -1:
            end = min(end, i)
    authority, tail = rest[:end], rest[end:]
    userinfo, at, host = authority.rpartition("@")  # a raw '@' in a password: the last one ends it
    if at:
        user, colon, _password = userinfo.partition(":")
        authority = f"{user}:{MASK}@{host}" if colon else f"{MASK}@{host}"
    return f"{scheme}://{authority}{_SECRET_PARAM.sub(lambda m: m.group(1) + MASK, tail)}"


def redact_text(text: str) -> str:
    """Every URL in ``text`` passed through :func:`redact_url`; the rest unchanged."""
    if "://" not in text:  # the common case (most log lines) costs one scan
        return text
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


__all__ = ["MASK", "redact_text", "redact_url"]

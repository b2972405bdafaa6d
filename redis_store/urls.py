"""Store URLs: the ``?namespace=`` option and password-free display."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

# Everything between "://" and the last "@": the user info. Matched as plain
# text, because a password with an unencoded "/", "?" or "#" defeats urlsplit.
_USERINFO = re.compile(r"(?<=://)[^@]*(?=@)")
_PASSWORD_PARAM = re.compile(r"(?i)(?<=[?&])password=[^&#]*")


def scheme_of(url: str) -> str:
    if not isinstance(url, str):
        raise TypeError(f"store URL must be a str, got {type(url).__name__}")
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        raise ValueError(f"store URL {redact(url)!r} has no scheme (like redis://host:6379)")
    return scheme.lower()


def has_credentials(url: str) -> bool:
    return bool(_USERINFO.search(url) or _PASSWORD_PARAM.search(url))


def pop_namespace(url: str) -> tuple[str, str | None]:
    """Split ``?namespace=`` off a URL; the rest is passed on untouched."""
    # The query starts at the first "?" after the user info, which may hold one.
    at = url.rfind("@")
    cut = url.find("?", at + 1)
    base, query_text = (url, "") if cut < 0 else (url[:cut], url[cut + 1 :])
    query = parse_qsl(query_text, keep_blank_values=True)
    namespaces = [value for key, value in query if key == "namespace"]
    if len(namespaces) > 1:
        raise ValueError("store URL gives ?namespace= more than once")
    rest = urlencode([(key, value) for key, value in query if key != "namespace"])
    return (f"{base}?{rest}" if rest else base), (namespaces[0] if namespaces else None)


def redact(url: str) -> str:
    """The URL with its user info and any ``password=`` replaced by ``***``:
    safe for repr, errors and logs."""
    url = _USERINFO.sub("***", url, count=1)
    return _PASSWORD_PARAM.sub("password=***", url)

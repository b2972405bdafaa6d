"""Store URLs: the ``?namespace=`` option and password-free display."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def scheme_of(url: str) -> str:
    if not isinstance(url, str):
        raise TypeError(f"store URL must be a str, got {type(url).__name__}")
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        raise ValueError(f"store URL {redact(url)!r} has no scheme (like redis://host:6379)")
    return scheme.lower()


def pop_namespace(url: str) -> tuple[str, str | None]:
    """Split ``?namespace=`` off a URL; the rest is passed on untouched."""
    base, _, query_text = url.partition("?")
    query = parse_qsl(query_text, keep_blank_values=True)
    namespaces = [value for key, value in query if key == "namespace"]
    if len(namespaces) > 1:
        raise ValueError("store URL gives ?namespace= more than once")
    rest = urlencode([(key, value) for key, value in query if key != "namespace"])
    return (f"{base}?{rest}" if rest else base), (namespaces[0] if namespaces else None)


def redact(url: str) -> str:
    """The URL with any password replaced by ``***``: safe for repr and logs."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparseable URL>"
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "password" for key, _ in query):
        query = [(k, "***" if k == "password" else v) for k, v in query]
        parts = parts._replace(query=urlencode(query))
    if password is None:
        return urlunsplit(parts)
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))

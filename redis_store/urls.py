"""Store URLs: the ``?namespace=`` option and password-free display."""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import parse_qsl, unquote, urlencode

from .options import URL_OPTIONS

# Everything between "://" and the last "@": the user info. Matched as plain
# text, because a password with an unencoded "/", "?", "#" or "@" defeats
# urlsplit (and redis-py splits at the last "@" too). Masking too much is safe.
_USERINFO = re.compile(r"(?<=://).*(?=@)")
# Query parameters whose decoded name ends in "password" (password, ssl_password, ...).
_QUERY_PARAM = re.compile(r"(?<=[?&])([^=&#]*)=([^&#]*)")


def scheme_of(url: str) -> str:
    if not isinstance(url, str):
        raise TypeError(f"store URL must be a str, got {type(url).__name__}")
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        # Show nothing of it: without "://" its user info cannot be told apart.
        raise ValueError("store URL has no scheme: write it like redis://host:6379/0")
    return scheme.lower()


def _secret_param(name: str) -> bool:
    return unquote(name).lower().endswith("password")


def has_credentials(url: str) -> bool:
    return bool(_USERINFO.search(url)) or any(_secret_param(m.group(1)) for m in _QUERY_PARAM.finditer(url))


def pop_store_options(url: str, known: dict | None = None) -> tuple[str, dict]:
    """Split the store's own options (``URL_OPTIONS``, or ``known``: name
    -> type) off a URL's query; the rest of the URL is passed on untouched."""
    known = URL_OPTIONS if known is None else known
    # The query starts at the first "?" after the user info, which may hold one.
    at = url.rfind("@")
    cut = url.find("?", at + 1)
    base, query_text = (url, "") if cut < 0 else (url[:cut], url[cut + 1 :])
    options: dict = {}
    rest = []
    for key, value in parse_qsl(query_text, keep_blank_values=True):
        if key not in known:
            rest.append((key, value))
            continue
        if key in options:
            raise ValueError(f"store URL gives ?{key}= more than once")
        try:
            options[key] = known[key](value)
        except ValueError:
            raise ValueError(f"store URL option {key}={value!r} is not a {known[key].__name__}") from None
    return (f"{base}?{urlencode(rest)}" if rest else base), options


class HostList(NamedTuple):
    """``scheme://[user[:password]@]host:port[,host:port...][/path]``."""

    username: str | None
    password: str | None
    hosts: list[tuple[str, int]]
    path: str


def parse_host_list(url: str, default_port: int) -> HostList:
    """Parse a URL naming several hosts (cluster seeds, sentinels)."""
    rest = url.split("://", 1)[1]
    at = rest.rfind("@")
    userinfo, rest = (rest[:at], rest[at + 1 :]) if at >= 0 else ("", rest)
    hostpart, slash, path = rest.partition("/")
    user, colon, password = userinfo.partition(":")
    hosts = []
    for item in filter(None, hostpart.split(",")):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "")
        try:
            hosts.append((unquote(host or item), int(port) if port else default_port))
        except ValueError:
            raise ValueError(f"bad host:port {item!r} in {redact(url)!r}") from None
    if not hosts:
        raise ValueError(f"no host:port in {redact(url)!r}")
    return HostList(unquote(user) or None, unquote(password) if colon else None, hosts, path)


def redact(url: str) -> str:
    """The URL with its user info and any ``password=`` replaced by ``***``:
    safe for repr, errors and logs."""
    url = _USERINFO.sub("***", url, count=1)
    return _QUERY_PARAM.sub(lambda m: f"{m.group(1)}=***" if _secret_param(m.group(1)) else m.group(0), url)

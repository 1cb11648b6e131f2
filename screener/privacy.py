"""What keeps data about a child, and the credentials that reach it, to the people meant to see it.

Credentials travel inside URLs: a camera's `rtsp://admin:pw@cam`, a stream's `?token=...`, a
database's `?password=...`. Every URL screener prints, logs, stores or renders goes through
`mask_urls` first. Every file screener writes about a student (reports, CSVs, recordings, the
database) is readable by its owner only.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from pathlib import Path
from urllib.parse import unquote

PRIVATE_FILE_MODE, PRIVATE_FOLDER_MODE = 0o600, 0o700
"""What screener creates holds data about children: readable by its owner only."""

MASK = "***"
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>`]*(?<![:.,;)])")
"""A URL, up to white space or a quote, without the punctuation of the sentence around it."""
_SECRET_WORDS = ("pass", "pwd", "token", "key", "secret", "auth", "sig", "credential")
"""A query key holding one of these (any case: password, passwd, api_key, access_token,
X-Amz-Signature, sig) carries a credential; a harmless key that also matches is masked too,
which costs nothing but a shown value."""
_PAIR = re.compile(r"([^&;=#]*)=([^&;#]*)")


def mask_urls(text: str) -> str:
    """`text` with every URL in it masked: a URL alone, or an error message that quotes one.

    Userinfo keeps its user name and loses its password (`user:***@host`); a query or fragment
    parameter whose key looks like a credential keeps its key and loses its value."""
    return _URL.sub(lambda match: _mask_url(match.group()), str(text))


def url_secrets(url: str) -> list[str]:
    """The credential values a URL carries (its password, credential-like query values), so
    that a message which repeats one without the URL around it can be masked too."""
    found = []
    authority = re.match(r"[^/?#]*", url.split("://", 1)[-1]).group()  # type: ignore[union-attr]
    if "@" in authority:
        _, colon, password = authority.rsplit("@", 1)[0].partition(":")
        if colon and password:
            found.append(unquote(password))
    for key, value in _PAIR.findall(url.partition("?")[2]):
        if value and any(word in unquote(key).lower() for word in _SECRET_WORDS):
            found.append(unquote(value))
    return found


def _mask_url(url: str) -> str:
    scheme, rest = url.split("://", 1)
    authority_end = re.match(r"[^/?#]*", rest).end()  # type: ignore[union-attr]
    authority, tail = rest[:authority_end], rest[authority_end:]
    if "@" in authority:
        userinfo, host = authority.rsplit("@", 1)
        user, colon, _password = userinfo.partition(":")
        authority = f"{user}:{MASK}@{host}" if colon else authority
    return f"{scheme}://{authority}{_mask_parameters(tail)}"


def _mask_parameters(tail: str) -> str:
    """The path as it is; after `?` or `#`, credential-like values replaced."""
    cut = min((i for i in (tail.find("?"), tail.find("#")) if i >= 0), default=len(tail))
    return tail[:cut] + _PAIR.sub(_mask_pair, tail[cut:])


def _mask_pair(match: re.Match[str]) -> str:
    key = unquote(match.group(1)).lower()
    if any(word in key for word in _SECRET_WORDS) and match.group(2):
        return f"{match.group(1)}={MASK}"
    return match.group()


def write_private(path: Path, data: bytes, temp_prefix: str = ".screener-") -> Path:
    """Write through a temporary file in the same folder, made readable by its owner only,
    then renamed: the file is whole or absent, and never readable by others, even for a
    moment or when it replaces a file of another mode."""
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(OSError):  # file systems without POSIX modes
            os.chmod(temp_name, PRIVATE_FILE_MODE)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return path


def create_private(path: Path) -> None:
    """Create (or empty) a file readable by its owner only, for a writer that opens the file
    by name itself (FFmpeg) and would otherwise create it readable by everyone."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    try:
        # An existing file keeps its mode otherwise; a device (/dev/null) is left as it is.
        if stat.S_ISREG(os.fstat(fd).st_mode):
            with contextlib.suppress(OSError):
                os.fchmod(fd, PRIVATE_FILE_MODE)
    finally:
        os.close(fd)

"""Settings as they may be shown (`phm config show`, messages): passwords and keys hidden.

An address may carry a password (`postgresql://user:password@host/db`, `https://user:token@mlflow.example`) or a
secret in its query (`?password=`, `?token=`), and Spark's extra settings may hold a storage key
(`fs.azure.account.key...`, `fs.s3a.secret.key`); each is shown as `***`.

This module is part of the foundation layer: it imports nothing else from the project.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit

HIDDEN = "***"
_SECRET_NAME = re.compile(r"pass|secret|token|key|credential|auth|sas|signature", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """Whether a setting's or parameter's name says its value is a secret."""
    return bool(_SECRET_NAME.search(name))


def address(uri: str) -> str:
    """`uri` with any password in it, and any query value named like a secret, replaced by `***`."""
    try:
        parts = urlsplit(uri)
        password = parts.password
    except ValueError:  # not parsable as an address: shown only if it cannot hold a password
        return HIDDEN if "@" in uri or "?" in uri else uri
    shown = uri  # pieces are replaced in place: rebuilding would turn sqlite:////path into sqlite://path
    if password is not None:
        userinfo, _, hostinfo = parts.netloc.rpartition("@")
        shown = shown.replace(parts.netloc, f"{userinfo.partition(':')[0]}:{HIDDEN}@{hostinfo}", 1)
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if any(is_secret_name(k) for k, _ in pairs):
            query = urlencode([(k, HIDDEN if is_secret_name(k) else v) for k, v in pairs], safe="*")
            shown = shown.replace(f"?{parts.query}", f"?{query}", 1)
    return shown


_USERINFO = re.compile(r"(://[^:/@\s]*):[^@\s/]*@")


def message(text: str) -> str:
    """A message from a library (it may quote an address it was given) with any password in an address hidden."""
    return _USERINFO.sub(rf"\1:{HIDDEN}@", text)


def table(values: dict[str, str]) -> dict[str, str]:
    """Settings such as Spark's extra settings, each value named like a secret replaced by `***`."""
    return {k: HIDDEN if is_secret_name(k) else v for k, v in values.items()}

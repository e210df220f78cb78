"""Strict typed configuration, shared by every configuration class of the project.

* `Strict`: a pydantic model that refuses unknown keys (`extra="forbid"`), so a misspelled key is an error
  naming it rather than a default silently used.
* `Document`: a configuration that is written to or read from a file (a JSON config, `phm.toml`, a record in
  the hazard log); it carries `schema_version`, and a file written for another version is a clear error.
  Parts nested inside a document (a tuning grid inside a training configuration) are `Strict` and versioned
  with their document.
* `explain`: a validation error as one line per problem, naming each key, with the nearest known key for a
  misspelling ("top_shares: unknown key (did you mean top_share?)").
* `json_schema`: the JSON Schema of a configuration as exported under `schemas/` (tested to be current).
* `read_text`: a configuration file's text, refused (naming the file) when it is not a regular file (a folder, a
  device, a pipe), is larger than `MAX_BYTES` or is not UTF-8, so a slip never hangs or exhausts memory.

This module is part of the foundation layer: it imports nothing else from the project.
"""

from __future__ import annotations

import difflib
import json
import os
import stat
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

#: A configuration file is a few kilobytes; anything this large is not one (and is not read into memory).
MAX_BYTES = 1_000_000

SCHEMA_VERSION_HELP = (
    "Version of this configuration's schema. A file written for another version is refused with "
    "a clear error rather than read with guessed defaults."
)


class Strict(BaseModel):
    """A typed configuration (or part of one) that refuses unknown keys."""

    model_config = ConfigDict(extra="forbid")


def check_schema_version(cls: type, value: int) -> int:
    """`value` must be the schema version `cls` reads (its `schema_version` default)."""
    current = cls.model_fields["schema_version"].default
    if value != current:
        when = "an older" if value < current else "a newer"
        raise ValueError(
            f"this configuration was written for {when} version of its schema ({value}); this version of "
            f"PHM Intelligence reads schema_version {current}. Compare it with the JSON Schema under "
            f"schemas/ (or `phm config schemas`) and update it"
        )
    return value


class Document(Strict):
    """A configuration read from or written to a file: strict, and versioned by `schema_version`."""

    schema_version: int = Field(1, description=SCHEMA_VERSION_HELP)

    @field_validator("schema_version")
    @classmethod
    def _schema_version(cls, value: int) -> int:
        return check_schema_version(cls, value)


def _field_names(model: Any, loc: tuple) -> list[str]:
    """The field names of the model at `loc` inside `model` (for suggestions); [] when it cannot be resolved."""
    current = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        if isinstance(part, int) or part not in current.model_fields:
            continue  # a list index or a dict key: stay on the same model
        current = _model_in(current.model_fields[part].annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside an annotation (`X`, `X | None`, `list[X]`, `dict[str, X]`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def explain(exc: ValidationError, model: type[BaseModel] | None = None) -> str:
    """A validation error as `key: problem; ...`, unknown keys named with the nearest known key of `model`."""
    parts = []
    for e in exc.errors():
        loc = tuple(e.get("loc", ()))
        where = ".".join(map(str, loc)) or "(whole configuration)"
        if e.get("type") == "extra_forbidden":
            known = _field_names(model, loc[:-1]) if model is not None else []
            close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6) if loc else []
            hint = (
                f" (did you mean {'.'.join(map(str, loc[:-1] + (close[0],)))}?)"
                if close
                else (f" (known keys: {', '.join(known)})" if known else "")
            )
            parts.append(f"{where}: unknown key{hint}")
        else:
            message = str(e.get("msg", "")).removeprefix("Value error, ")
            parts.append(f"{where}: {message}")
    return "; ".join(parts)


def json_schema(model: type[BaseModel]) -> str:
    """The JSON Schema of a configuration, as exported under `schemas/` (stable text, newline at the end)."""
    schema = model.model_json_schema(mode="validation")
    return json.dumps(schema, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


class ConfigFileError(ValueError):
    """A configuration file that cannot be read as one; the message names it."""


def read_text(path: Path, what: str = "configuration file") -> str:
    """The text of the `what` (a configuration or settings file) at `path`: a regular UTF-8 file of at most
    `MAX_BYTES`; otherwise a `ConfigFileError` naming it."""
    try:
        # opened first and checked after (no race between the check and the read); a pipe opened without waiting
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ConfigFileError(f"{path}: the {what} is not a regular file (a folder, a device or a pipe?)")
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigFileError(f"{path}: the {what} cannot be read ({exc.strerror or type(exc).__name__})") from None
    if len(data) > MAX_BYTES:
        raise ConfigFileError(f"{path}: more than {MAX_BYTES:,} bytes: not a {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigFileError(f"{path}: the {what} is not UTF-8 text") from None

"""Reading a user's configuration files (protocols, gate policies, model specs) and wording their errors.

Every way such a file can fail becomes one :class:`~faceaudit.core.errors.BadInput` line that names
the file: missing, a directory, unreadable, not UTF-8 (with the byte offset), not valid YAML (with
the line), or not what the schema asks for (with the key). The schema's own wording of a pydantic
error is :func:`format_validation_error`; callers whose schemas have unions pass a hook that removes
the union tags from the location, which the user never wrote.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import yaml
from pydantic import BaseModel, ValidationError

from faceaudit.core.errors import BadInput

__all__ = ["FileMessages", "read_text", "parse_yaml", "load_yaml", "format_validation_error"]


@dataclass(frozen=True)
class FileMessages:
    """How each way of failing to read a file is worded.

    Templates may use ``{path}``, ``{what}`` (e.g. ``policy file``), ``{byte}`` (the offset of the
    first byte that is not UTF-8) and ``{reason}`` (the operating system's words).
    """

    missing: str = "{path}: {what} not found"
    directory: str = "{path}: {what} is a directory, not a file"
    not_utf8: str = "{path}: {what} is not UTF-8 text (byte {byte})"
    unreadable: str = "{path}: cannot read {what}: {reason}"


def read_text(path: str | os.PathLike, what: str = "file", messages: FileMessages = FileMessages()) -> str:
    """A user's text file, decoded as UTF-8; every way it can fail is one BadInput line naming it.

    Parameters
    ----------
    path : str or path-like
        The file.
    what : str
        What the file is, for the messages (``"policy file"``, ``"summary"``).
    messages : FileMessages
        The wording of each failure.

    Returns
    -------
    str
        The file's text.

    Raises
    ------
    BadInput
        The file is missing, a directory, unreadable or not UTF-8.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.yaml").write_bytes("x: caf\\u00e9\\n".encode("utf-8"))
    >>> read_text(folder / "a.yaml")
    'x: café\\n'
    >>> _ = (folder / "b.yaml").write_bytes(b"x: caf\\xe9\\n")
    >>> read_text(folder / "b.yaml", "policy file")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: .../b.yaml: policy file is not UTF-8 text (byte 6)
    """
    path = Path(path)
    words = {"path": path, "what": what}
    if not path.exists():
        raise BadInput(messages.missing.format(**words))
    if path.is_dir():
        raise BadInput(messages.directory.format(**words))
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadInput(messages.not_utf8.format(**words, byte=err.start)) from None
    except OSError as err:
        raise BadInput(messages.unreadable.format(**words, reason=err.strerror or err)) from None


class Yaml12BoolLoader(yaml.SafeLoader):
    """A SafeLoader with YAML 1.2 booleans: only true/false. YAML 1.1 (PyYAML's default) reads the
    key ``on:`` as the boolean True, which would turn a policy's ``on: ci_upper`` into an unknown key."""


Yaml12BoolLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12BoolLoader.add_implicit_resolver("tag:yaml.org,2002:bool",
                                       re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def parse_yaml(text: str, where: str, yaml12_bools: bool = False) -> Any:
    """Parse YAML text safely; a syntax error is one BadInput line with its line number.

    Parameters
    ----------
    text : str
        The YAML document.
    where : str
        Prefix of the error message (usually the file's path).
    yaml12_bools : bool
        Read only ``true``/``false`` as booleans (YAML 1.2), so that ``on``, ``yes`` and ``no``
        stay strings.

    Returns
    -------
    Any
        The parsed document (``None`` for an empty one).

    Examples
    --------
    >>> parse_yaml("on: ci_upper", "p.yaml")
    {True: 'ci_upper'}
    >>> parse_yaml("on: ci_upper", "p.yaml", yaml12_bools=True)
    {'on': 'ci_upper'}
    >>> parse_yaml("a: [\\n", "p.yaml")
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: p.yaml: not valid YAML at line 2: expected the node content, but found '<stream end>'
    """
    try:
        return yaml.load(text, Loader=Yaml12BoolLoader if yaml12_bools else yaml.SafeLoader)  # noqa: S506 (SafeLoaders)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise BadInput(f"{where}: not valid YAML{at}: {getattr(err, 'problem', err)}") from None


def load_yaml(path: str | os.PathLike, what: str = "file", messages: FileMessages = FileMessages(),
              where: Optional[str] = None, yaml12_bools: bool = False) -> Any:
    """:func:`read_text` then :func:`parse_yaml`.

    Parameters
    ----------
    path : str or path-like
        The YAML file.
    what : str
        What the file is, for the messages of :func:`read_text`.
    messages : FileMessages
        The wording of each reading failure.
    where : str, optional
        Prefix of a YAML syntax error (default: the path).
    yaml12_bools : bool
        See :func:`parse_yaml`.

    Returns
    -------
    Any
        The parsed document.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "policy.yaml"
    >>> _ = p.write_text("rules:\\n  - {metric: fdr, min: 0.9, on: estimate}\\n")
    >>> load_yaml(p, "policy file", yaml12_bools=True)
    {'rules': [{'metric': 'fdr', 'min': 0.9, 'on': 'estimate'}]}
    >>> load_yaml(p.parent / "nope.yaml", "policy file")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: .../nope.yaml: policy file not found
    """
    text = read_text(path, what, messages)
    return parse_yaml(text, str(path) if where is None else where, yaml12_bools=yaml12_bools)


def _known_keys(err_loc: tuple, model: type[BaseModel] | None) -> list[str]:
    """The keys allowed where an unknown key ``err_loc`` was found (for a 'did you mean')."""
    if model is None:
        return []
    fields = model.model_fields
    for part in err_loc[:-1]:
        if isinstance(part, int):
            continue
        f = fields.get(str(part))
        if f is None:
            return []
        ann = f.annotation
        inner = getattr(ann, "__args__", None)
        target = next((a for a in (inner or (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if target is None:
            return []
        fields = target.model_fields
    return list(fields)


def format_validation_error(err: ValidationError, where: str, model: type[BaseModel] | None = None,
                            loc_cleanup: Optional[Callable[[tuple], tuple]] = None,
                            explain: Optional[Callable[[dict], Optional[tuple[tuple, str]]]] = None) -> str:
    """One line ``<where>: <key.path>: <what>`` for a pydantic validation error.

    Parameters
    ----------
    err : pydantic.ValidationError
        The error; an unknown key is reported before anything else (a typo such as ``n_seed`` also
        makes the key it misspells look missing, and the typo is the thing to fix).
    where : str
        Prefix naming the file.
    model : pydantic model class, optional
        The schema validated: gives unknown keys a "did you mean" and lets a model-level check
        whose message starts with one of its keys (``"edits: ..."``) be reported at that key.
    loc_cleanup : callable, optional
        ``loc -> loc``: removes parts of an error's location that the user never wrote (the tags
        of a discriminated union).
    explain : callable, optional
        ``error -> (loc, message)`` or None: a better message for errors the schema knows more
        about than pydantic (an unknown union tag); the error passed has the cleaned location.

    Returns
    -------
    str
        The message, one line.

    Examples
    --------
    >>> from pydantic import BaseModel, ConfigDict
    >>> class Cfg(BaseModel):
    ...     model_config = ConfigDict(extra="forbid")
    ...     n_seeds: int
    >>> try:
    ...     Cfg.model_validate({"n_seed": 3})
    ... except ValidationError as err:
    ...     print(format_validation_error(err, "p.yaml", Cfg))
    p.yaml: n_seed: unknown key (did you mean 'n_seeds'?)
    >>> try:
    ...     Cfg.model_validate({"n_seeds": "many"})
    ... except ValidationError as err:
    ...     print(format_validation_error(err, "p.yaml"))
    p.yaml: n_seeds: Input should be a valid integer, unable to parse string as an integer (got 'many')
    """
    errors = err.errors()
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    parts = tuple(first["loc"])
    if loc_cleanup is not None:
        parts = tuple(loc_cleanup(parts))
    first = {**first, "loc": parts}
    if explain is not None:
        better = explain(first)
        if better is not None:
            loc_parts, msg = better
            return f"{where}: {'.'.join(str(p) for p in loc_parts) or '(top level)'}: {msg}"
    loc = ".".join(str(p) for p in parts) or "(top level)"
    msg = first["msg"].removeprefix("Value error, ")
    if (loc == "(top level)" and model is not None and ":" in msg
            and msg.split(":", 1)[0] in model.model_fields):
        loc, msg = msg.split(":", 1)[0], msg.split(":", 1)[1].strip()  # a model check that names its key
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
        close = difflib.get_close_matches(str(parts[-1]), _known_keys(parts, model), n=1)
        if close:
            msg += f" (did you mean {close[0]!r}?)"
    elif first["type"] == "missing":
        msg = "required key is missing"
    elif "input" in first and first["type"] not in ("value_error",):
        msg = f"{msg} (got {first['input']!r})"
    return f"{where}: {loc}: {msg}"

"""Reading setup files: the text of each layer, and a scan of its syntax that records
where every section and key comes from (so each problem names its file and line).
"""

from __future__ import annotations

import configparser
import io
import json
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kos_core.errors import SetupFileError

_DEFAULTS = "DEFAULTS"

# Same rule as kernel and plugin names elsewhere in kos.
_PLUGIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SECTION_HEADER = configparser.ConfigParser.SECTCRE
# configparser's own option pattern, for delimiters ":" and "=".
_OPTION_LINE = re.compile(r"(?P<option>.*?)\s*(?P<vi>:|=)\s*(?P<value>.*)$")
_NON_SPACE = re.compile(r"\S")


class _Parser(configparser.ConfigParser):
    """``configparser`` set up for the setup file format."""

    def __init__(self) -> None:
        super().__init__(
            delimiters=(":", "="),
            comment_prefixes=("#",),
            inline_comment_prefixes=None,
            strict=True,
            empty_lines_in_values=True,
            default_section=_DEFAULTS,
            interpolation=configparser.BasicInterpolation(),
        )

    def optionxform(self, optionstr: str) -> str:
        """Keep keys as written: they are case-sensitive."""
        return optionstr


@dataclass
class _Layer:
    """One setup file that was read, and where its sections and keys are."""

    path: Path
    index: int
    lines: list[str]
    headers: dict[str, int] = field(default_factory=dict)
    keys: dict[tuple[str, str], int] = field(default_factory=dict)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _split_lines(text: str) -> list[str]:
    # Line breaks as a text-mode file sees them: "\n", "\r\n" and "\r".
    return io.StringIO(text, newline=None).readlines()


def _read_lines(path: Path) -> list[str] | None:
    """Read the lines of ``path``; ``None`` if it does not exist."""
    where = str(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            raise SetupFileError(where, None, "is a broken symbolic link") from None
        return None
    except OSError as exc:
        raise SetupFileError(where, None, f"cannot read it: {_reason(exc)}") from None
    if stat.S_ISDIR(mode):
        raise SetupFileError(where, None, "is a directory, not a setup file")
    if not stat.S_ISREG(mode):
        raise SetupFileError(where, None, "is not a regular file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SetupFileError(where, None, f"cannot read it: {_reason(exc)}") from None
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8", errors="replace")
        line = len(_split_lines(before + "x"))
        raise SetupFileError(where, line, "not valid UTF-8 text") from None
    return _split_lines(text)


def _scan(path: Path, index: int, lines: Sequence[str]) -> _Layer:
    """Check the syntax of one file and record where things are.

    Classifies lines exactly as ``configparser`` does, and rejects everything it
    would reject (and a little more), so the parser never fails on a file that
    passed this scan.
    """
    layer = _Layer(path=path, index=index, lines=list(lines))
    section: str | None = None
    key: str | None = None
    indent_level = 0

    def error(line: int, message: str) -> SetupFileError:
        return SetupFileError(str(path), line, message)

    for lineno, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        first = _NON_SPACE.search(line)
        indent = first.start() if first else 0
        if section is not None and key and indent > indent_level:
            continue  # continues the previous value
        indent_level = indent
        if text.startswith("["):
            header = _SECTION_HEADER.match(text)
            if header is None:
                if "]" in text:
                    raise error(lineno, "section header has no name")
                raise error(lineno, 'section header is missing "]"')
            if text[header.end() :].strip():
                raise error(
                    lineno,
                    'text after "]" in section header (comments go on lines of their own)',
                )
            name = header.group("header")
            if name != _DEFAULTS and not _PLUGIN_NAME.match(name):
                raise error(
                    lineno,
                    f"bad section name {_quote(name)}: a plugin name is 1-64 letters, "
                    'digits, "_", "-" or ".", starting with a letter or digit',
                )
            if name in layer.headers:
                raise error(
                    lineno,
                    f"section [{name}] appears twice in this file "
                    f"(first at line {layer.headers[name]})",
                )
            layer.headers[name] = lineno
            section, key = name, None
            continue
        if section is None:
            raise error(lineno, "text before the first [section] header")
        option = _OPTION_LINE.match(text)
        if option is None:
            raise error(lineno, 'line is not "key: value"')
        name = option.group("option").rstrip()
        if not name:
            raise error(lineno, 'line is not "key: value" (the key is missing)')
        if (section, name) in layer.keys:
            raise error(
                lineno,
                f"key {_quote(name)} appears twice in [{section}] "
                f"(first at line {layer.keys[section, name]})",
            )
        layer.keys[section, name] = lineno
        key = name
    return layer


def _from_parser_error(path: Path, exc: configparser.Error) -> SetupFileError:
    line: int | None = getattr(exc, "lineno", None)
    if isinstance(exc, configparser.ParsingError) and exc.errors:
        line = exc.errors[0][0]
    message = exc.message.splitlines()[0] if exc.message else type(exc).__name__
    return SetupFileError(str(path), line, message)


def _quote(text: str) -> str:
    """``text`` in double quotes, with line breaks and quotes escaped."""
    return json.dumps(text, ensure_ascii=False)


# -- merging and checking values ------------------------------------------------

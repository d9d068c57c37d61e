"""``kos call``: call one method of a bound service from a shell.

Arguments are shell words converted to the declared types; for a ``bytes`` or ``str``
parameter, ``-`` reads the value from standard input and ``@FILE`` from a file (``@@``
starts a word that really begins with ``@``). A ``bytes`` result goes to standard
output as it is; a ``File`` result is read to its end onto standard output and
closed; any other object result (a factory's private child) is of no use to a shell:
it is closed at once and the command says how to use it from Python instead.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import click

from kos_core.cli.common import kernel_option
from kos_core.cli.errors import reports_errors
from kos_core.errors import UsageError

#: how much of a ``File`` result one ``read`` asks for
CHUNK = 1 << 20


@click.command(context_settings={"ignore_unknown_options": True})
@kernel_option
@click.argument("service")
@click.argument("method", required=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@reports_errors
def call(kernel: str | None, service: str, method: str | None, args: tuple[str, ...]) -> None:
    """Call METHOD of the service bound at SERVICE with ARGS.

    Arguments are converted to the types the interface declares: 'kos call bitbucket
    Set greeting hello' sends the bytes b"hello". For a bytes or str argument, '-'
    reads it from standard input and '@FILE' from a file ('@@x' is the word '@x').
    Bytes results are written to standard output as they are, and a File result is
    read to its end onto it. Without METHOD, list the service's methods.
    """
    from kos_core._client import connect
    from kos_core.interface import find_interface

    with connect(kernel) as kos:
        kind, typename, _ = kos.kernel.Lookup(service)
        if kind != "service":
            raise UsageError(f"{service} is a context, not a service (try: kos ls {service})")
        methods = find_interface(typename).methods()
        if method is None:
            click.echo(f"{service}: {typename}")
            for each in methods.values():
                click.echo(f"  {each.signature()}")
            return
        spec = methods.get(method)
        if spec is None:
            raise UsageError(
                f"{typename} has no method {method!r} (it has: {', '.join(methods) or 'none'})"
            )
        if not spec.required <= len(args) <= len(spec.params):
            raise UsageError(f"usage: kos call {service} {spec.signature()}")
        stdin_used = [False]
        values = [
            _argument(word, param.type, f"argument {param.name!r}", stdin_used)
            for word, param in zip(args, spec.params[: len(args)], strict=True)
        ]
        result = getattr(kos.lookup(service), method)(*values)
        _show(result, f"{typename}.{method}")


def _argument(word: str, tp: Any, what: str, stdin_used: list[bool]) -> Any:
    """One shell word as a value of the declared type ``tp``."""
    from kos_core.interface import from_word

    if tp in (bytes, str) and (word == "-" or word.startswith("@")):
        if word.startswith("@@"):
            data = word[1:].encode()
        elif word == "-":
            if stdin_used[0]:
                raise UsageError(f"{what}: standard input ('-') can be read only once")
            stdin_used[0] = True
            data = sys.stdin.buffer.read()
        else:
            try:
                data = Path(word[1:]).read_bytes()
            except OSError as exc:
                raise UsageError(f"{what}: cannot read {word[1:]}: {exc.strerror}") from None
        if tp is bytes:
            return data
        try:
            return data.decode()
        except UnicodeDecodeError:
            raise UsageError(f"{what}: {word} is not UTF-8 text") from None
    return from_word(word, tp, what)


def _show(result: Any, what: str) -> None:
    """Print a result for a shell."""
    from kos_core._rpc import RemoteObject
    from kos_core.fileapi import File

    if isinstance(result, RemoteObject):
        if isinstance(result, File):
            _stream(result)
            return
        name = result._kos_proxy_of.wire_name if result._kos_proxy_of else "an object"
        close = getattr(result, "Close", None) or getattr(result, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):  # the hint below matters more
                close()
        raise UsageError(
            f"{what} returned {name}, a server for one client that a shell cannot keep"
            " (closed); use it from Python: kos_core.connect().lookup(...)"
        )
    _print(result)


def _stream(file: Any) -> None:
    """Copy a remote ``File`` to standard output, then close it."""
    out = sys.stdout.buffer
    try:
        while True:
            chunk = file.read(CHUNK)
            if not chunk:
                break
            out.write(chunk if isinstance(chunk, bytes) else chunk.encode())
        out.flush()
    finally:
        file.close()


def _print(result: Any) -> None:
    if result is None:
        return
    if isinstance(result, bytes):
        sys.stdout.buffer.write(result)
        if sys.stdout.isatty() and not result.endswith(b"\n"):
            sys.stdout.buffer.write(b"\n")  # raw for pipes; a terminal gets its line ended
        sys.stdout.buffer.flush()
    elif isinstance(result, list):
        for item in result:
            if isinstance(item, bytes):  # one per line, as the other items
                sys.stdout.buffer.write(item + b"\n")
                sys.stdout.buffer.flush()
            else:
                _print(item)
    elif isinstance(result, str):
        click.echo(result)
    else:
        click.echo(repr(result))

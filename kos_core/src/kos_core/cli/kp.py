"""``kos kp``: submit Knowbot Programs to a kernel, list them, kill them.

``kos kp submit FILE[:CLASS]`` sends the file's text to the kernel, which runs the
class in a confined process of its own and answers with the KP's id once its
``__main__`` runs. The output of a KP is ``kos logs kp/ID``; KPs also appear in
``kos status``.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

import click

from kos_core.cli.common import echo_json, kernel_option, print_table
from kos_core.cli.errors import reports_errors
from kos_core.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path


@click.group()
def kp() -> None:
    """Run Knowbot Programs (untrusted, confined, mobile) at a kernel."""


def kp_class(path: Path, source: str) -> str:
    """The one class of ``source`` that defines ``__main__`` (read, never run)."""
    try:
        tree = ast.parse(source, str(path))
    except SyntaxError as exc:
        raise UsageError(f"{path}:{exc.lineno}: {exc.msg}") from None
    found = [
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        and any(isinstance(f, ast.FunctionDef) and f.name == "__main__" for f in node.body)
    ]
    if len(found) != 1:
        which = ", ".join(found) or "none"
        raise UsageError(f"{path}: say which class is the KP (FILE:CLASS); with __main__: {which}")
    return found[0]


@kp.command(context_settings={"ignore_unknown_options": True})
@kernel_option
@click.option(
    "--limit",
    "limits",
    default="",
    metavar="cpu=S,mem=MiB,wall=S",
    help="Ask for other limits than the station's defaults (within its ceilings).",
)
@click.option(
    "--unconfined",
    is_flag=True,
    help="Run the KP even if the station cannot confine it (logged as a warning).",
)
@click.argument("target", metavar="FILE[:CLASS]")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@reports_errors
def submit(
    kernel: str | None, limits: str, unconfined: bool, target: str, args: tuple[str, ...]
) -> None:
    """Run the KP class CLASS of FILE at a kernel, with ARGS (after --); print its id.

    Without CLASS, the one class of FILE that has a __main__ method.
    """
    from kos_core._client import connect

    path_text, sep, classname = target.rpartition(":")
    if not sep or "/" in classname:
        path_text, classname = target, ""
    from pathlib import Path

    path = Path(path_text)
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    classname = classname or kp_class(path, source)
    with connect(kernel) as kos:
        kp_id = kos.kernel.SubmitKP(f"{path}:{classname}", source, list(args), limits, unconfined)
    click.echo(kp_id)


@kp.command(name="list")
@kernel_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@reports_errors
def list_(kernel: str | None, as_json: bool) -> None:
    """The KPs of a kernel: id, class, state, pid, CPU used, origin, how they ended."""
    from kos_core._client import connect

    with connect(kernel) as kos:
        rows = kp_records(kos)
    if as_json:
        echo_json({"kernel": kos.name, "kps": rows})
    else:
        print_kps(rows)


@kp.command()
@kernel_option
@click.argument("kp_id", metavar="ID")
@reports_errors
def kill(kernel: str | None, kp_id: str) -> None:
    """End KP ID, and every process it started."""
    from kos_core._client import connect

    with connect(kernel) as kos:
        click.echo(f"{kp_id}: {kos.kernel.KillKP(kp_id)}")


def kp_records(kos: Any) -> list[dict[str, Any]]:
    """The kernel's KP table as dicts (for ``kos kp list`` and ``kos status``)."""
    return [
        {
            "id": kp_id,
            "class": classname,
            "state": state,
            "pid": pid or None,
            "cpu": round(cpu, 2),
            "origin": origin,
            "last_exit": last_exit,
            "uptime": round(uptime, 1),
        }
        for kp_id, classname, state, pid, cpu, origin, last_exit, uptime in kos.kernel.KPs()
    ]


def print_kps(rows: list[dict[str, Any]]) -> None:
    """The KP table, as ``kos kp list`` prints it."""
    print_table(
        ["KP", "CLASS", "STATE", "PID", "CPU", "ORIGIN", "LAST EXIT"],
        [
            [
                r["id"],
                r["class"],
                r["state"],
                str(r["pid"] or "-"),
                f"{r['cpu']:.2f}s",
                r["origin"],
                r["last_exit"] or "-",
            ]
            for r in rows
        ],
    )

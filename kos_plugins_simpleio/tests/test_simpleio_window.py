"""The simpleio window as a person and a client see it: a real kernel, the real
plugin, a real Tk window on a private Xvfb, real key and mouse events (xdotool).

How the tests read what a window shows: the window's text is not exposed to other
X clients, and the ``FileAPI.File`` a client holds has no "get text" method. But Tk
offers a Text widget's selected text to every X client as the PRIMARY selection.
So a test drags the mouse over the text area, as a person selecting text would, and
reads PRIMARY with ``xclip``: that is the widget's real content, converted by the
window itself. Screenshots check, in addition, that the text is drawn.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kos_core.errors import ServiceUnavailable
from kos_core.fileapi import FileIOError
from kos_core.testing import KernelProcess, process_ended, wait_ended, wait_for
from kos_plugins_simpleio import SpawnError
from simpleio_helpers import (
    TITLE,
    Pending,
    Screen,
    live_descendants,
    luminances,
    read_png,
    window_child,
)

#: A client's window: its ``FileAPI.File`` and its X window id.
Window = tuple[Any, str]


@contextlib.contextmanager
def open_window(kernel: KernelProcess, screen: Screen, *size: int) -> Iterator[Window]:
    """``(file, window id)``: a new window (of ``size`` ``(height, width)`` if given),
    once it is on the screen, opened by a client connection that is closed afterwards.
    """
    before = screen.windows()
    with kernel.connect() as kos:
        factory = kos.lookup("simpleio")
        file = factory.GetNewSimpleIOWH(*size) if size else factory.GetNewSimpleIO()
        yield file, screen.new_window(before)


@contextlib.contextmanager
def open_window_process(kernel: KernelProcess, screen: Screen) -> Iterator[tuple[Any, str, int]]:
    """:func:`open_window`, and the pid of the process the plugin started for the window."""
    before = live_descendants(kernel.plugin_pids["simpleio"])
    with open_window(kernel, screen) as (file, wid):
        yield file, wid, window_child(kernel, before)


@pytest.fixture
def window(kernel: KernelProcess, screen: Screen) -> Iterator[Window]:
    """``(file, window id)``: a window of the default size, opened for the test."""
    with open_window(kernel, screen) as opened:
        yield opened


def ask(file: Any, question: str) -> Pending:
    """Write ``question`` to the window; a readline() pending on the answer."""
    file.write(question)
    return Pending(file.readline, "readline()")


def test_written_text_is_shown_in_the_window(screen: Screen, window: Window) -> None:
    file, wid = window
    assert file.write("hello from a client\n") == len("hello from a client\n")
    file.writelines(["second line\n", "third ", "line\n"])
    file.write(b"bytes are shown as text\n")
    file.flush()
    shown = screen.window_text(wid, "bytes are shown as text")
    assert shown.rstrip("\n") == (
        "hello from a client\nsecond line\nthird line\nbytes are shown as text"
    )
    assert file.tell() == len(shown.rstrip("\n")) + 1
    file.close()


def test_typed_line_comes_back_from_a_pending_readline(screen: Screen, window: Window) -> None:
    file, wid = window
    pending = ask(file, "What is your name?\n")
    screen.type_line(wid, "Guido van Rossum")
    assert pending.result(10) == "Guido van Rossum\n"
    # What the person sent is echoed in the window, below the question.
    shown = screen.window_text(wid, "Guido")
    assert shown.rstrip("\n") == "What is your name?\nGuido van Rossum"
    file.close()


def test_typed_text_comes_back_from_read_n(screen: Screen, window: Window) -> None:
    file, wid = window
    screen.type_line(wid, "abcdef")
    screen.type_line(wid, "")  # an empty line is a line too
    assert Pending(lambda: file.read(3), "read(3)").result(10) == "abc"
    assert Pending(lambda: file.read(4), "read(4)").result(10) == "def\n"
    assert Pending(file.readline, "readline()").result(10) == "\n"
    file.close()


def test_two_clients_get_two_windows(kernel: KernelProcess, screen: Screen) -> None:
    with open_window(kernel, screen) as (file1, wid1):
        with open_window(kernel, screen) as (file2, wid2):
            assert wid1 != wid2
            name1, name2 = screen.name(wid1), screen.name(wid2)
            assert name1.startswith(TITLE + " ")
            assert name2.startswith(TITLE + " ")
            assert name1 != name2
            file1.write("only in the first window\n")
            file2.write("only in the second window\n")
            shown1 = screen.window_text(wid1, "first")
            shown2 = screen.window_text(wid2, "second")
            assert shown1.rstrip("\n") == "only in the first window"
            assert shown2.rstrip("\n") == "only in the second window"
            # Typed text goes to the window's own client only.
            screen.type_line(wid2, "to the second")
            assert Pending(file2.readline, "readline() 2").result(10) == "to the second\n"
            assert "to the second" not in screen.window_text(wid1, "first")
            file2.close()
        file1.close()


def test_GetNewSimpleIOWH_gives_a_window_of_that_size(
    kernel: KernelProcess, screen: Screen
) -> None:
    with open_window(kernel, screen) as (file1, default_wid):
        with open_window(kernel, screen, 10, 40) as (file2, small_wid):
            default, small = screen.geometry(default_wid), screen.geometry(small_wid)
            # 10 lines by 40 columns against the default 24 by 80 (same font, same
            # scroll bar and entry line): clearly narrower and lower.
            assert small.width < default.width * 0.7, (small, default)
            assert small.height < default.height * 0.7, (small, default)
            file2.write("x" * 40 + "\n")
            assert screen.window_text(small_wid, "xxx").rstrip("\n") == "x" * 40
            file2.close()
        file1.close()


@pytest.mark.parametrize(("height", "width"), [(0, 40), (10, 0), (-1, -1), (501, 10), (10, 501)])
def test_bad_sizes_are_SpawnError(
    windowless_kernel: KernelProcess, screen: Screen, height: int, width: int
) -> None:
    before = screen.windows()
    with (
        windowless_kernel.connect() as kos,
        pytest.raises(SpawnError, match="between 1 and 500"),
    ):
        kos.lookup("simpleio").GetNewSimpleIOWH(height, width)
    assert screen.windows() == before


def test_screenshot_of_a_window_with_text(screen: Screen, window: Window, tmp_path: Path) -> None:
    def dark_and_light(shot: Path) -> tuple[int, int]:
        """How many dark and light pixels the text area (the top rows) has."""
        width, height, rows = read_png(screen.screenshot(wid, shot))
        geometry = screen.geometry(wid)
        assert (width, height) == (geometry.width, geometry.height)
        values = luminances(rows[:80])
        return sum(1 for v in values if v < 64), sum(1 for v in values if v > 192)

    file, wid = window
    empty = tmp_path / "empty.png"
    # Once painted, the empty window is light, with no glyphs in the text area.
    dark, _light = wait_for(
        lambda: (counts := dark_and_light(empty))[1] > 5000 and counts,
        10,
        "the empty window to be painted",
    )
    assert dark < 100
    for _ in range(5):
        file.write("#" * 70 + "\n")
    file.flush()
    shot = tmp_path / "shot.png"
    # Dark glyphs on a light background.
    _dark, light = wait_for(
        lambda: (counts := dark_and_light(shot))[0] > 500 and counts,
        10,
        "the text to be drawn",
    )
    assert light > 5000
    assert shot.is_file()
    assert screen.window_text(wid, "#").rstrip("\n") == "\n".join(["#" * 70] * 5)
    file.close()


def test_closing_the_window_as_a_person_ends_a_pending_readline(
    kernel: KernelProcess, screen: Screen
) -> None:
    with open_window_process(kernel, screen) as (file, wid, pid):
        pending = ask(file, "Waiting for you...\n")
        screen.close_as_person(wid)  # WM_DELETE_WINDOW, as from the close button
        assert pending.result(10) == ""  # end of file
        screen.wait_gone(wid)
        with pytest.raises(FileIOError, match="closed"):
            file.readline()
        with pytest.raises(FileIOError, match="closed"):
            file.write("anyone there?\n")
        assert not process_ended(pid)  # still answering its client...
        file.close()
        wait_ended(pid, "the window process")  # ... until the client closes the file


def test_a_window_destroyed_from_outside_ends_a_pending_readline(
    screen: Screen, window: Window
) -> None:
    # Not every close goes through WM_DELETE_WINDOW: a window manager's forced
    # close (here `xdotool windowclose`) destroys the window. The client must still
    # learn that the window is gone -- end of file, FileIOError, or (should the
    # window process die of the X error) ServiceUnavailable -- and not wait forever
    # for input that can never come.
    file, wid = window
    pending = Pending(file.readline, "readline()")
    screen.run("xdotool", "windowclose", wid)
    screen.wait_gone(wid)
    with contextlib.suppress(FileIOError, ServiceUnavailable):
        assert pending.result(10) == ""
    error = Pending(lambda: file.write("anyone there?\n"), "write()").error(10)
    assert isinstance(error, (FileIOError, ServiceUnavailable)), repr(error)


def test_a_window_whose_X_connection_is_killed_fails_a_pending_readline(
    kernel: KernelProcess, screen: Screen
) -> None:
    # xkill (here `xdotool windowkill`) drops the window's connection to the X
    # server: the window process cannot go on, and its client learns it at once.
    with open_window_process(kernel, screen) as (file, wid, pid):
        pending = Pending(file.readline, "readline()")
        screen.run("xdotool", "windowkill", wid)
        assert isinstance(pending.error(10), ServiceUnavailable)
        screen.wait_gone(wid)
        wait_ended(pid, "the window process")


def test_a_pending_readline_does_not_block_write_or_close(screen: Screen, window: Window) -> None:
    # A program may show text (or give up and close its window) while it waits
    # for the person to answer, as it can with a terminal.
    file, wid = window
    pending = ask(file, "Your answer?\n")
    Pending(lambda: file.write("(still waiting)\n"), "write()").result(10)
    assert "(still waiting)" in screen.window_text(wid, "(still waiting)")
    Pending(file.close, "close()").result(10)
    screen.wait_gone(wid)
    # Ended by the close: "" (end of file) or an error, but no longer waiting.
    with contextlib.suppress(FileIOError, ServiceUnavailable):
        assert pending.result(10) == ""


def test_lines_typed_before_the_window_was_closed_are_still_read(
    screen: Screen, window: Window
) -> None:
    # A file's end comes after its data: what the person sent before closing the
    # window is the client's to read, and then reading gives "" (end of file).
    file, wid = window
    screen.type_line(wid, "first words")
    screen.type_line(wid, "last words")
    screen.window_text(wid, "last words")  # both lines were sent
    screen.close_as_person(wid)
    screen.wait_gone(wid)
    assert Pending(file.readlines, "readlines()").result(10) == [
        "first words\n",
        "last words\n",
    ]
    assert Pending(file.readline, "readline()").result(10) == ""
    file.close()

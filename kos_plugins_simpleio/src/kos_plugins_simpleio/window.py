"""The window child: a Tk talk window served as a ``FileAPI.File`` to one client.

Threads: Tk lives in the main thread, as Tk requires. The one-shot RPC server answers
the client in its own thread and never touches a widget: it puts a function on a
queue and waits for its result, and the main thread runs queued functions from an
``after()`` callback every few milliseconds. The same callback notices when the
child should end (client gone, parent dead, SIGTERM) and gives the interpreter
regular control, so Ctrl-C gets through the Tk main loop (the 1998 ``_keep_alive``).
Typed input goes the other way through a condition variable: Enter appends the line
to a buffer that ``read``/``readline`` wait on.
"""

from __future__ import annotations

import threading
import tkinter
from collections.abc import Callable
from typing import Any, TypeVar

from kos_core import pluginlib
from kos_core.calls import CallQueue
from kos_core.fileapi import FileIOError

_T = TypeVar("_T")
PUMP_MS = 10
CALL_TIMEOUT = 10.0


class TkStdio:
    """Implements ``FileAPI.File`` on a window: ``write`` shows text, ``read``/``readline``
    return what a person typed and sent with Enter. Text, not bytes.
    """

    DEFAULTHEIGHT = 24
    DEFAULTWIDTH = 80
    #: calls run on their own threads: a read waiting for the person does not hold up
    #: a write or a close from another thread of the client
    kos_concurrent = True

    def __init__(self, height: int = 0, width: int = 0, title: str = "simpleio") -> None:
        self._height = height or self.DEFAULTHEIGHT
        self._width = width or self.DEFAULTWIDTH
        self._calls = CallQueue()  # work for the Tk thread (this one)
        self._input = ""
        self._cond = threading.Condition()
        self._eof = False  # the person closed the window
        self._eof_read = False  # a read has returned end-of-file since
        self._written = 0
        self._master = tkinter.Tk(className="KOSStdio")  # fails here without a display
        self._create_widgets(title)

    # -- the main thread ------------------------------------------------------------

    def _create_widgets(self, title: str) -> None:
        master = self._master
        master.title(title)
        master.iconname(title)
        master.protocol("WM_DELETE_WINDOW", self._quit)
        frame = tkinter.Frame(master)
        frame.pack(fill="both", expand=True)
        self._scroll = tkinter.Scrollbar(frame)
        self._scroll.pack(side="right", fill="y")
        self.text = tkinter.Text(
            frame, height=self._height, width=self._width, wrap="word", state="disabled"
        )
        self.text.pack(side="left", fill="both", expand=True)
        self.text.configure(yscrollcommand=self._scroll.set)
        self._scroll.configure(command=self.text.yview)
        self.entry = tkinter.Entry(master, width=self._width)
        self.entry.pack(side="bottom", fill="x")
        self.entry.bind("<Return>", self._send_line)
        self.entry.focus_set()

    def kos_serve(self, child: Any) -> None:
        """Run the Tk main loop until the child is done (called by ``serve_child``)."""
        self._child = child
        self._master.after(PUMP_MS, self._pump)
        self._master.mainloop()
        # However the window went (closed by the person, destroyed from outside), the
        # readers must see end-of-file; then keep answering (FileIOError) until the
        # client goes.
        self._window_gone()
        child.wait()

    def _pump(self) -> None:
        self._calls.run_pending()
        if self._child.done:
            self._master.destroy()
            return
        self._master.after(PUMP_MS, self._pump)

    def _send_line(self, event: object = None) -> str:
        line = self.entry.get() + "\n"
        self.entry.delete(0, "end")
        self._show(line)
        with self._cond:
            self._input += line
            self._cond.notify_all()
        return "break"

    def _show(self, text: str) -> None:
        self.text.configure(state="normal")
        self.text.insert("end", text)
        self.text.see("end")
        self.text.configure(state="disabled")

    def _quit(self) -> None:
        self._window_gone()
        self._master.destroy()

    def _window_gone(self) -> None:
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    # -- RPC threads ----------------------------------------------------------------

    def _in_tk(self, func: Callable[[], _T]) -> _T:
        self._check_open()
        try:
            return self._calls.call(func, CALL_TIMEOUT)
        except TimeoutError:
            raise FileIOError("the window did not answer (closed?)") from None
        except tkinter.TclError as exc:
            raise FileIOError(f"the window is gone: {exc}") from exc

    def _check_open(self) -> None:
        if self._eof:
            raise FileIOError("the window was closed")

    def write(self, s: bytes | str) -> int:
        text = s.decode("utf-8", "replace") if isinstance(s, bytes) else s
        self._in_tk(lambda: self._show(text))
        self._written += len(text)
        return len(text)

    def writelines(self, lines: list[bytes | str]) -> None:
        for line in lines:
            self.write(line)

    # After the person closes the window, what they sent is still read; then one read
    # returns end-of-file (""), and reading past that fails with FileIOError.

    def readline(self, size: int = -1) -> str:
        with self._cond:
            while "\n" not in self._input and not self._eof:
                if 0 <= size <= len(self._input):
                    break
                self._cond.wait()
            end = self._input.find("\n") + 1 or len(self._input)
            if size >= 0:
                end = min(end, size)
            return self._take(end)

    def read(self, size: int = -1) -> str:
        with self._cond:
            while not self._eof and (size < 0 or len(self._input) < size):
                self._cond.wait()
            return self._take(len(self._input) if size < 0 else size)

    def _take(self, end: int) -> str:
        data, self._input = self._input[:end], self._input[end:]
        if not data and self._eof:
            if self._eof_read:
                raise FileIOError("the window was closed")
            self._eof_read = True
        return data

    def readlines(self, hint: int = -1) -> list[bytes | str]:
        return list(self.read().splitlines(keepends=True))

    def tell(self) -> int:
        return self._written

    def seek(self, offset: int, whence: int = 0) -> int:
        raise FileIOError("a window cannot seek")

    def flush(self) -> None:
        self._in_tk(self._master.update_idletasks)

    def close(self) -> None:
        if not self._eof:
            self._in_tk(self._master.withdraw)
        pluginlib.end_connection()

    def open(self, mode: str) -> None:
        """A window is always open for reading and writing."""
        self._check_open()


def make_window(height: int = 0, width: int = 0, title: str = "simpleio") -> TkStdio:
    """Open a window in a child (the fork server's target)."""
    return TkStdio(int(height), int(width), str(title))

"""Progress of long operations: a bar in a notebook, text in a terminal, silence in programs.

An operation that can take seconds (a replay of a large archive, ``compare``,
``snapshot``, ``materialize``, the built-in alerts, a bucketed replay, reports)
names its steps to a :class:`Steps`. Nothing is shown unless progress is on and
the operation has run for :data:`DELAY` seconds: quick calls never print. Then a
bar (tqdm) appears and says which step is under way and for how long, ticking
while a single long step (one compiled fold) runs.

Whether progress is on (:func:`show_progress`):

* ``None`` (the default): on in a Jupyter kernel — a widget bar in JupyterLab
  (``tqdm.notebook``) — and off anywhere else: a script, a test, a server;
  where the caller is a program it stays quiet;
* ``True``: on (in a kernel a widget bar, elsewhere text on standard error:
  what the command line does when standard error is a terminal);
* ``False``: off (what report runs do: nobody watches them, and their outputs
  stay the same from run to run).

One operation shows one bar: operations run inside another (a ``replay``
inside ``snapshot``) and any started while a bar is active are quiet.
"""

from __future__ import annotations

import contextvars
import sys
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, cast

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ["DELAY", "Steps", "progress_enabled", "show_progress"]

#: Seconds an operation runs before its bar appears (quick calls show nothing).
DELAY: float = 2.0

#: Seconds between two refreshes of a bar while a step runs (its clock ticks).
TICK: Final = 0.5

_LOCAL = threading.local()  # this thread's setting: None (automatic), True or False
_ACTIVE = [0]  # operations with a Steps open, in any thread: inner ones stay quiet
_ACTIVE_LOCK = threading.Lock()


class show_progress:  # a function to the caller (as torch.set_grad_enabled), and a context
    """Turn progress bars on (``True``), off (``False``) or automatic (``None``).

    Called alone it sets this thread's choice for what follows (a notebook's
    cells all run in one thread); in a ``with`` block it holds for the block
    only, and the previous choice comes back after it.

    Examples
    --------
    >>> from eventkit.replay.progress import progress_enabled, show_progress
    >>> progress_enabled()  # not in a Jupyter kernel: quiet
    False
    >>> with show_progress(True):
    ...     progress_enabled()
    True
    >>> progress_enabled()
    False

    """

    def __init__(self, enabled: bool | None = True) -> None:  # noqa: FBT001 (the one switch)
        self._previous: bool | None = getattr(_LOCAL, "enabled", None)
        _LOCAL.enabled = enabled

    def __enter__(self) -> show_progress:
        return self

    def __exit__(self, *_exc: object) -> None:
        _LOCAL.enabled = self._previous


def progress_enabled() -> bool:
    """Whether an operation started now in this thread may show a bar."""
    chosen: bool | None = getattr(_LOCAL, "enabled", None)
    return _in_kernel() if chosen is None else chosen


def _in_kernel() -> bool:
    """Running in a Jupyter kernel (JupyterLab, Voila, papermill), not a plain interpreter."""
    shell = sys.modules.get("ipykernel.zmqshell")
    ipython = sys.modules.get("IPython")
    if shell is None or ipython is None:
        return False
    return isinstance(ipython.get_ipython(), shell.ZMQInteractiveShell)


class Steps:
    """The progress of one operation: ``total`` steps, each named as it begins.

    Use it as a context manager and call :meth:`begin` before each step (or
    :meth:`advance` after each of many alike). The bar appears once the
    operation has run :data:`DELAY` seconds, if progress is on
    (:func:`progress_enabled`) and no other operation shows one; it ends full
    when the block ends normally, and stops where it was on an error.

    Examples
    --------
    >>> with show_progress(True), Steps("replay", 2) as steps:
    ...     steps.begin("reading events")
    ...     steps.begin("folding 3 events")
    >>> steps.done, steps.shown  # quick: no bar was drawn
    (2, False)

    """

    def __init__(self, what: str, total: int, *, unit: str = "step") -> None:
        self.what = what
        self.total = total
        self.unit = unit
        self.done = 0  # steps finished
        self.now = ""  # the step under way
        self._began = time.monotonic()
        self._on = False
        self._bar: tqdm[None] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    @property
    def shown(self) -> bool:
        """Whether a bar was drawn."""
        return self._bar is not None

    def __enter__(self) -> Steps:
        with _ACTIVE_LOCK:
            self._on = progress_enabled() and _ACTIVE[0] == 0
            _ACTIVE[0] += 1
        self._began = time.monotonic()
        if self._on:  # the ticker writes where this thread would (a kernel's current cell)
            context = contextvars.copy_context()
            self._ticker = threading.Thread(target=context.run, args=(self._tick,),
                                            name="eventkit-progress", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        with _ACTIVE_LOCK:
            _ACTIVE[0] -= 1
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        with self._lock:
            if exc_type is None:
                self.done, self.now = self.total, "done"
            if self._bar is not None:
                if exc_type is None:
                    self._draw()
                self._bar.close()

    def begin(self, name: str) -> None:
        """Step ``name`` begins: the steps before it are done."""
        with self._lock:
            if self.now:
                self.done = min(self.done + 1, self.total)
            self.now = name
            self._refresh()

    def advance(self, steps: int = 1, *, name: str | None = None) -> None:
        """``steps`` more steps are done (thread-safe: callbacks of parallel work)."""
        with self._lock:
            self.done = min(self.done + steps, self.total)
            if name is not None:
                self.now = name
            self._refresh()

    def write(self, line: str) -> None:
        """Print ``line`` (to standard output) without breaking a text bar."""
        with self._lock:
            if self._bar is None:
                print(line, flush=True)
            else:
                self._bar.write(line, file=sys.stdout)

    def _tick(self) -> None:
        while not self._stop.wait(TICK):
            with self._lock:
                self._refresh()

    def _refresh(self) -> None:
        """Draw the bar if it is due (the lock is held)."""
        if not self._on or (self._bar is None and time.monotonic() - self._began < DELAY):
            return
        if self._bar is None:
            self._bar = _new_bar(self.what, self.total, self.unit)
        self._draw()

    def _draw(self) -> None:
        assert self._bar is not None
        self._bar.n = self.done
        self._bar.set_description_str(f"{self.what}: {self.now}" if self.now else self.what,
                                      refresh=False)
        self._bar.refresh()


def _new_bar(what: str, total: int, unit: str) -> tqdm[None]:
    """A widget bar in a Jupyter kernel, else a text bar on standard error."""
    kind: type[Any]
    if _in_kernel():
        from tqdm.notebook import tqdm_notebook  # noqa: PLC0415 (only when a bar is shown)

        kind = tqdm_notebook
    else:
        from tqdm.std import tqdm as text_bar  # noqa: PLC0415

        kind = text_bar
    return cast("tqdm[None]", kind(
        total=total, desc=what, unit=unit, leave=True, dynamic_ncols=True, mininterval=0,
        bar_format="{desc} {bar} {n_fmt}/{total_fmt} " + unit + "s [{elapsed}]"))

"""Live progress of every long step (convert, compare, run, zoo): one place draws it, on stderr.

A ``Progress`` is off (every method a no-op) under ``--json``, ``-q/--quiet`` and when stderr is not a
terminal, so piped runs and logs stay clean. When on it holds one rich ``Live`` display whose rows are:

* a byte bar (``bytes_bar``): done/total bytes, ETA and the current tensor's name, cut to the
  console's width so a row never wraps (an 80-column terminal too);
* a phase row (``ByteBar.phase``): a step with no byte count (compare's "outputs: prompt k/n"),
  drawn as a pulsing bar with its own elapsed time, never as a finished 100 % bar;
* a step bar (``steps``): k of n steps done (a run's gates), ETA, and what is running now;
* named rows (``row``): one live line per item (a zoo's models), updated in place.

rich is imported only when something is drawn (tests/test_architecture_imports.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .units import human_bytes

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress as RichProgress, TaskID

# Columns of a row besides its name: label 11, bar 16, amount 17, clock 8, a space after each, one spare.
_FIXED_WIDTH = 11 + 16 + 17 + 8 + 4 + 1
_NAME_MIN = 8


def wanted(console: Console, *, quiet: bool = False, json: bool = False) -> bool:
    """Whether to draw: a terminal, and neither ``--quiet`` nor ``--json``."""
    return console.is_terminal and not quiet and not json


def _cut(text: str, width: int) -> str:
    """``text`` cut from the left to ``width`` characters (a tensor's distinctive part is its end)."""
    if width <= 0:
        return ""
    return text if len(text) <= width else "…" + text[-(width - 1):]


def _clock_column() -> Any:
    """ETA where the total is known ("eta 0:12"), the elapsed time where it is not ("0:41 …"):
    a phase without a count shows its own running clock, never a finished bar's 0:00."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    def clock(seconds: float) -> str:
        m, s = divmod(int(seconds), 60)
        h, m = divmod(m, 60)
        return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"

    class Clock(ProgressColumn):
        def render(self, task: Any) -> Text:
            if task.total is None:
                return Text(f"{clock(task.elapsed or 0):>6} …", style="progress.elapsed")
            left = task.time_remaining
            return Text(f"eta {clock(left):>4}" if left is not None else "eta  -:--", style="progress.remaining")

    return Clock()


class Progress:
    """The progress display of one command. Use as a context manager; disabled, it draws nothing."""

    def __init__(self, console: Console | None, enabled: bool) -> None:
        self.console = console
        self.enabled = bool(enabled and console is not None)
        self._bar: RichProgress | None = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.progress import BarColumn, Progress as RichProgress, TextColumn

            self._bar = RichProgress(TextColumn("{task.description:<11.11}"), BarColumn(bar_width=16),
                                     TextColumn("{task.fields[amount]:>17.17}"), _clock_column(),
                                     TextColumn("{task.fields[name]}"),
                                     console=self.console, transient=True, auto_refresh=True)
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _name_width(self) -> int:
        width = self.console.width if self.console is not None else 80
        return max(_NAME_MIN, width - _FIXED_WIDTH)

    def _add(self, label: str, total: float | None) -> TaskID | None:
        if self._bar is None:
            return None
        return self._bar.add_task(label, total=total, amount="", name="")

    def _update(self, task: TaskID | None, **fields: Any) -> None:
        if self._bar is not None and task is not None:
            if "name" in fields:
                fields["name"] = _cut(str(fields["name"]), self._name_width())
            self._bar.update(task, **fields)

    def _remove(self, task: TaskID | None) -> None:
        if self._bar is not None and task is not None:
            self._bar.remove_task(task)

    def bytes_bar(self, label: str, total: int | None = None) -> ByteBar:
        """A byte bar: call it as ``bar(done_bytes, total_bytes, name)`` (compare's and convert's callback)."""
        return ByteBar(self, label, total)

    def steps(self, label: str, total: int) -> StepBar:
        """A k-of-n bar: ``.start(name)`` when a step begins, ``.end(name)`` when it stops running,
        ``.done()`` counts one step done."""
        return StepBar(self, label, total)

    def row(self, label: str, text: str = "") -> Row:
        """One live line (a zoo's model): ``.set(text)``, ``.finish()`` removes it."""
        return Row(self, label, text)


class ByteBar:
    """Bytes done of a total, with speed and ETA; a ``phase`` replaces it by a step without bytes."""

    def __init__(self, owner: Progress, label: str, total: int | None) -> None:
        self.owner = owner
        self.total = total
        self.task = owner._add(label, total)
        self._phase: TaskID | None = None

    def __call__(self, done: int, total: int | None, name: str) -> None:
        total = total if total is not None else self.total
        if self.owner._bar is None or self.task is None:
            return
        amount = f"{human_bytes(done)}/{human_bytes(total)}" if total else human_bytes(done)
        self.owner._update(self.task, completed=done, total=total, amount=amount, name=name)

    def phase(self, label: str, k: int, n: int, what: str = "") -> None:
        """Step ``k`` of ``n`` of a phase without a byte count (``"outputs: prompt"``): the byte bar
        is removed and a pulsing bar with its own clock shows this phase until the display ends."""
        if self.owner._bar is None:
            return
        self.owner._remove(self.task)
        self.task = None
        self.owner._remove(self._phase)
        head, _, rest = label.partition(": ")  # "outputs: prompt" -> row "outputs", amount "prompt 1/1"
        self._phase = self.owner._add(head, None)
        self.owner._update(self._phase, amount=f"{rest or head} {k}/{n}", name=what)


class StepBar:
    """k of n steps done, ETA from the steps' pace, the running steps' names."""

    def __init__(self, owner: Progress, label: str, total: int) -> None:
        self.owner = owner
        self.total = total
        self.finished = 0
        self.running: list[str] = []
        self.task = owner._add(label, total)
        self._show()

    def _show(self) -> None:
        name = ", ".join(self.running) if self.running else ""
        amount = f"{self.finished}/{self.total} gates" if self.total else "planning"
        self.owner._update(self.task, completed=self.finished, total=self.total or None, amount=amount, name=name)

    def start(self, name: str) -> None:
        self.running.append(name)
        self._show()

    def end(self, name: str) -> None:
        """A running step (a gate or a conversion) ended; not counted (its record counts it)."""
        if name in self.running:
            self.running.remove(name)
        self._show()

    def done(self, name: str = "") -> None:
        """One more step done (``name`` also ends it)."""
        if name in self.running:
            self.running.remove(name)
        self.finished += 1
        self._show()

    def grow(self, total: int) -> None:
        """The plan is known: the number of steps to expect."""
        self.total = total
        self._show()


class Row:
    """One named line updated in place."""

    def __init__(self, owner: Progress, label: str, text: str) -> None:
        self.owner = owner
        self.task = owner._add(_cut(label, 11), None)
        self.set(text)

    def set(self, text: str) -> None:
        self.owner._update(self.task, name=text)

    def finish(self) -> None:
        self.owner._remove(self.task)
        self.task = None

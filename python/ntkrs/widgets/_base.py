"""The machinery every dashboard shares: controls, an Agg figure rendered to PNG into an ``Image``
widget (no ipympl needed), a busy indicator, and a Python API (``set``, ``state``, ``figure``)."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import ipywidgets as W
import numpy as np
import PIL.Image
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["Dashboard", "single_threaded_blas", "sticky_limits"]


def single_threaded_blas() -> Any:
    """A context in which numpy's BLAS/LAPACK run on one thread (if threadpoolctl is installed).

    On a few cores, OpenBLAS's spinning threads right after the core's own threads finish make a
    256×256 ``eigvalsh`` take up to a second instead of 10 ms."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return nullcontext()
    return threadpool_limits(1)


def sticky_limits(current: tuple[float, float] | None, lo: float, hi: float, log: bool = False,
                  pad: float = 0.06, headroom: float = 0.0, fill: float = 0.5) -> tuple[float, float]:
    """Axis limits for data in ``[lo, hi]`` that stay put while the data fit them and fill at least
    ``fill`` of them, so a slider can move curves without re-laying out the axes (``log``: in decades).
    A new layout pads both ends by ``pad`` (a fraction of the span), and the top by ``headroom`` more when
    the data outgrew the old limits (they are likely to keep growing as the slider moves on)."""
    if log:
        lo, hi = np.log10(max(lo, 1e-300)), np.log10(max(hi, 1e-300))
        cur = None if current is None else (np.log10(current[0]), np.log10(current[1]))
    else:
        cur = current
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return current if current is not None else (0.0, 1.0)
    span = max(hi - lo, 1e-12 * max(abs(lo), abs(hi), 1e-300))
    if cur is None or lo < cur[0] or hi > cur[1] or span < fill * (cur[1] - cur[0]):
        grew = cur is not None and hi > cur[1]
        cur = (lo - pad * span, hi + (pad + (headroom if grew else 0.0)) * span)
    return (10.0 ** cur[0], 10.0 ** cur[1]) if log else (float(cur[0]), float(cur[1]))


class Dashboard(W.VBox):
    """Base class of the dashboards: an ``ipywidgets.VBox`` of controls, a status line with a progress
    bar, and the rendered figure.

    Subclasses build their controls and figure, then implement :meth:`compute` (fill ``self.data``;
    call ``report(fraction)`` during long work) and :meth:`draw` (update the figure from
    ``self.data``). Every change of a control recomputes and redraws once. Optionally, :meth:`on_control`
    reconfigures controls when one changes, and :meth:`static_key` with :meth:`dynamic_artists` lets an
    update redraw only the artists that changed over a cached background (blitting).

    Without a frontend, drive it from Python: ``d.set(W_std=2.0)``, ``d.state``, ``d.data``,
    ``d.figure.savefig("k.png")``, ``d.png`` (the bytes shown in the notebook).

    Attributes:
        controls: the control widgets by name (``set`` takes the same names).
        figure: the matplotlib ``Figure`` (Agg canvas, independent of pyplot).
        data: the arrays the figure shows, from the last update.
        busy_after: seconds after which the progress bar and a "computing" note appear (1.0).
        timings: seconds taken by each update (compute + draw + PNG), newest last.
        error: the message of the last failed update, or ``None``.
    """

    busy_after: float = 1.0

    def __init__(self, controls: dict[str, W.ValueWidget], layout_rows: list[list[str]],
                 figsize: tuple[float, float], dpi: int = 80) -> None:
        self.controls = controls
        self.figure = Figure(figsize=figsize, dpi=dpi)
        FigureCanvasAgg(self.figure)
        self.dpi = dpi
        self.data: dict[str, Any] = {}
        self.timings: list[float] = []
        self.error: str | None = None
        self.busy_shown = 0
        self._hold = False
        self._background: Any = None
        self._background_key: Any = None
        self._lock = threading.Lock()
        self.image = W.Image(format="png", layout=W.Layout(width=f"{int(figsize[0] * dpi)}px"))
        self.progress = W.FloatProgress(value=0.0, min=0.0, max=1.0, description="",
                                        layout=W.Layout(visibility="hidden", width="240px"))
        self.status = W.HTML(value="")
        rows = [W.HBox([controls[name] for name in row]) for row in layout_rows]
        for control in controls.values():
            control.observe(self._on_change, names="value")
        super().__init__(rows + [W.HBox([self.progress, self.status]), self.image])

    # ---- Python API -------------------------------------------------------------------------

    @property
    def state(self) -> dict[str, Any]:
        """The current control values, by name."""
        return {name: c.value for name, c in self.controls.items()}

    def set(self, **values: Any) -> Dashboard:
        """Set several controls at once (names as in :attr:`controls`), then update once.

        Raises ``ValueError`` for an unknown name or a value the control rejects, and re-raises an
        error from the computation (in the notebook it is shown in the status line instead)."""
        unknown = sorted(set(values) - set(self.controls))
        if unknown:
            raise ValueError(f"unknown control(s) {unknown}; the controls are {sorted(self.controls)}")
        self._hold = True
        try:
            for name in self.controls:  # in control order: the activation before its parameter
                if name in values:
                    self._assign(name, values[name])
        finally:
            self._hold = False
        self.update(raise_errors=True)
        return self

    def _assign(self, name: str, value: Any) -> None:
        control = self.controls[name]
        if isinstance(control, W.Dropdown | W.ToggleButtons | W.SelectionSlider):
            allowed = [o[1] if isinstance(o, tuple) else o for o in control.options]
            if value not in allowed:
                raise ValueError(f"{name}: {value!r} is not one of {allowed}")
        if hasattr(control, "min") and hasattr(control, "max") and not control.min <= value <= control.max:
            raise ValueError(f"{name}: {value!r} is outside [{control.min}, {control.max}]")
        control.value = value
        self.on_control(name)

    @property
    def png(self) -> bytes:
        """The PNG bytes of the figure as last shown."""
        return bytes(self.image.value)

    def pixels(self) -> np.ndarray:
        """The figure as last shown, an ``(H, W, 4)`` uint8 RGBA array."""
        return np.asarray(PIL.Image.open(io.BytesIO(self.png)).convert("RGBA"))

    def savefig(self, path: Any, **kwargs: Any) -> None:
        """Save the figure (``matplotlib.figure.Figure.savefig`` arguments)."""
        self.figure.savefig(path, **kwargs)

    # ---- update cycle -------------------------------------------------------------------------

    def on_control(self, name: str) -> None:
        """Hook called when control ``name`` changed, before the update (e.g. to reconfigure others)."""

    def compute(self, report: Callable[[float], None]) -> None:  # pragma: no cover - abstract
        """Every dashboard overrides this: recompute ``self.data`` from the controls, calling
        ``report(fraction)`` as it goes (the progress bar)."""
        raise NotImplementedError(f"{type(self).__name__} must define compute()")

    def draw(self) -> None:  # pragma: no cover - abstract
        """Every dashboard overrides this: redraw ``self.figure`` from ``self.data``."""
        raise NotImplementedError(f"{type(self).__name__} must define draw()")

    def _on_change(self, change: dict[str, Any]) -> None:
        if self._hold:
            return
        name = next(n for n, c in self.controls.items() if c is change["owner"])
        self._hold = True
        try:
            self.on_control(name)
        finally:
            self._hold = False
        self.update()

    def update(self, raise_errors: bool = False, full: bool = False) -> None:
        """Recompute, redraw and show the figure (the progress bar appears after ``busy_after`` s).

        ``full=True`` redraws the whole figure instead of blitting the dynamic artists."""
        if full:
            self._background = None
        start = time.perf_counter()
        try:
            with self._busy() as report:
                self.compute(report)
                self.draw()
                png = self._render()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self.status.value = f"<span style='color:#b00'>{self.error}</span>"
            if raise_errors:
                raise
            return
        self.image.value = png
        self.error = None
        self.timings.append(time.perf_counter() - start)
        self.status.value = self.describe()

    def static_key(self) -> Any:
        """A value that changes whenever anything but :meth:`dynamic_artists` changes (axes limits, images,
        ticks); while it stays the same, updates redraw only the dynamic artists over a cached background
        (blitting). ``None`` (the default) redraws everything every time."""
        return None

    def dynamic_artists(self) -> list[Any]:
        """The artists that change between updates with the same :meth:`static_key`."""
        return []

    def _render(self) -> bytes:
        """Draw the figure (blitting the dynamic artists when possible) and return it as PNG bytes."""
        canvas = self.figure.canvas
        key, dynamic = self.static_key(), self.dynamic_artists()
        if key is None or key != self._background_key or self._background is None:
            for artist in dynamic:
                artist.set_animated(True)
            try:
                canvas.draw()
                self._background = canvas.copy_from_bbox(self.figure.bbox)
            finally:
                for artist in dynamic:
                    artist.set_animated(False)
            self._background_key = key
        else:
            canvas.restore_region(self._background)
        for artist in dynamic:
            self.figure.draw_artist(artist)
        buf = io.BytesIO()
        PIL.Image.fromarray(np.asarray(canvas.buffer_rgba())).save(buf, format="png", compress_level=1)
        return buf.getvalue()

    def describe(self) -> str:
        """HTML for the status line after an update (subclasses add their read-outs)."""
        return f"<small>updated in {1e3 * self.timings[-1]:.0f} ms</small>"

    @contextmanager
    def _busy(self) -> Iterator[Callable[[float], None]]:
        start = time.perf_counter()
        state = {"done": False, "shown": False}

        def show() -> None:
            with self._lock:
                if state["done"] or state["shown"]:
                    return
                state["shown"] = True
                self.busy_shown += 1
                self.progress.layout.visibility = "visible"
                self.status.value = "<i>computing…</i>"

        def report(fraction: float) -> None:
            self.progress.value = float(min(max(fraction, 0.0), 1.0))
            if time.perf_counter() - start >= self.busy_after:
                show()

        timer = threading.Timer(self.busy_after, show)
        timer.daemon = True
        timer.start()
        try:
            yield report
        finally:
            timer.cancel()
            with self._lock:
                state["done"] = True
                self.progress.layout.visibility = "hidden"
                self.progress.value = 0.0

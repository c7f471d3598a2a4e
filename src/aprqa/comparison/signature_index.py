"""Near-linear search of same-shape reference signatures for the SWAPPED/COPIED screen.

The screen asks: which reference tensors' signatures (a few thousand decoded elements each) lie
within rel-L2 ``tau`` of the candidate's? Comparing every failing tensor with every same-shape
reference tensor costs ``F × N × n`` (F failing tensors, N same-shape references, n signature
elements): quadratic in a model where a wrong dtype or converter fails every tensor.

The index keeps a random Gaussian sketch of each signature (``k`` = 64 coordinates, one seeded
projection ``G`` with N(0, 1/k) entries, applied once per reference tensor). For any fixed
difference ``x = a − b``, ``‖Gx‖² / ‖x‖²`` is χ²_k / k, so the sketch distance estimates the true one
within a factor that is known to a tiny probability. A query sketches the candidate's signature
(``k × n``), measures the sketch distance to every reference (``N × k``), and computes the exact
rel-L2 only for references whose estimate is within ``SLACK × tau``; the exact result decides, so
the hits are exactly those of the all-against-all screen, unless a true hit's estimate exceeds
``SLACK ×`` its distance: ``P(χ²_64 / 64 > 4) < exp(-51)`` per pair (Chernoff bound), far below any
hardware error rate.

Per failing tensor: ``O(n·k + N·k + h·n)`` with ``h`` the references the filter keeps — the tensors
within ``SLACK × tau`` in sketch distance. Independent tensors are ~√2 apart (rel-L2), so ``h`` is
the true matches only while ``SLACK × tau`` stays below ~0.9 (every float and 8/6/5/4-bit type's
screen threshold); a threshold that admits unrelated tensors (2–3-bit types on rows of unrelated
weights) makes ``h`` grow toward ``N``, as the all-against-all screen did (docs/performance.md).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

SKETCH_DIM = 64            # k: sketch coordinates per signature
SLACK = 2.0                # filter radius / screen radius; P(miss) < exp(-k/2 (S² − 1 − ln S²)) per pair
# Below this many references the exact screen (N·n per query) costs no more than sketching the query (n·k).
MIN_INDEXED = SKETCH_DIM
MAX_SKETCH_COLS = 1 << 16  # the projection matrix is k × n float32: 16 MB at this n; wider is screened exactly
_SEED = 0x5EED


def screen(matrix: np.ndarray, b: np.ndarray) -> np.ndarray:
    """rel-L2 of candidate sample ``b`` against every row of ``matrix`` (over ``b``'s finite
    elements; nan where a reference row has a non-finite value or no energy)."""
    ok = np.isfinite(b)
    if not ok.all():
        matrix, b = matrix[:, ok], b[ok]
    d = matrix - b[None, :]
    num = np.einsum("ij,ij->i", d, d, dtype=np.float64)
    den = np.einsum("ij,ij->i", matrix, matrix, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(num / den)


_proj_lock = threading.Lock()
_proj: dict[int, np.ndarray] = {}


def projection(n: int) -> np.ndarray:
    """The seeded ``[n, k]`` Gaussian projection (N(0, 1/k) entries), cached per ``n``."""
    with _proj_lock:
        g = _proj.get(n)
        if g is None:
            rng = np.random.default_rng(_SEED + n)
            g = (rng.standard_normal((n, SKETCH_DIM), dtype=np.float32) / np.float32(np.sqrt(SKETCH_DIM)))
            _proj[n] = g
        return g


@dataclass
class SignatureIndex:
    """The signatures ``matrix [N, n]`` of N same-shape reference tensors, searchable by rel-L2.

    ``exact_rows`` counts the signature rows the exact stage has compared (for the complexity test
    and the docs' bound); ``queries`` the searches made.
    """

    matrix: np.ndarray
    sketch: np.ndarray | None = field(init=False, default=None)
    energy: np.ndarray = field(init=False)
    _always: np.ndarray = field(init=False, default_factory=lambda: np.empty(0, np.int64))
    _sk2: np.ndarray = field(init=False, default_factory=lambda: np.empty(0))
    exact_rows: int = field(init=False, default=0)
    queries: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        m = self.matrix
        self.energy = np.einsum("ij,ij->i", m, m, dtype=np.float64) if m.size else np.zeros(len(m))
        if len(m) >= MIN_INDEXED and 0 < m.shape[1] <= MAX_SKETCH_COLS:
            g = projection(m.shape[1])
            with np.errstate(invalid="ignore", over="ignore"):
                # one row at a time: a single-threaded gemv each, where one threaded gemm stalls for
                # hundreds of milliseconds waking BLAS threads on a loaded machine
                self.sketch = np.stack([row @ g for row in m]).astype(np.float64)
                self._sk2 = np.einsum("ij,ij->i", self.sketch, self.sketch)
            # a float32 sketch that overflowed where the float64 energy did not: always screened exactly
            self._always = np.flatnonzero(~np.isfinite(self.sketch).all(axis=1) & np.isfinite(self.energy))

    def search(self, b: np.ndarray, tau: float) -> np.ndarray:
        """rel-L2 of ``b`` against every signature where it is ≤ ``tau``; +inf elsewhere (a reference
        the filter ruled out, or one farther than ``tau``). Same hits as ``screen(matrix, b) <= tau``."""
        self.queries += 1
        n_ref = len(self.matrix)
        ok = np.isfinite(b)
        if self.sketch is None or not ok.all():
            # small group, or a candidate with non-finite values (the screen masks them per query)
            self.exact_rows += n_ref
            err = screen(self.matrix, b)
            return np.where(err <= tau, err, np.inf)
        with np.errstate(invalid="ignore", over="ignore"):
            sb = (b.astype(np.float32) @ projection(len(b))).astype(np.float64)
        if not np.isfinite(sb).all():  # float32 overflow in the candidate's sketch: screen exactly
            self.exact_rows += n_ref
            err = screen(self.matrix, b)
            return np.where(err <= tau, err, np.inf)
        # ‖s_i − s_b‖² expanded: one gemv over the N × k sketches, no N × k temporary. Cancellation
        # only matters near 0, where any estimate is inside the radius and the exact stage decides.
        with np.errstate(divide="ignore", invalid="ignore"):  # a non-finite reference's row: nan, never kept
            d2 = np.maximum(self._sk2 + sb @ sb - 2.0 * (self.sketch @ sb), 0.0)
            est = np.sqrt(d2 / self.energy)
        keep = np.flatnonzero(est <= SLACK * tau)  # nan (non-finite or zero-energy reference) never kept
        if len(self._always):
            keep = np.union1d(keep, self._always)
        out = np.full(n_ref, np.inf)
        if len(keep):
            self.exact_rows += len(keep)
            err = screen(self.matrix[keep], b)
            hit = err <= tau
            out[keep[hit]] = err[hit]
        return out

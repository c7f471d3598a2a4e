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
from typing import Sequence

import numpy as np

from .. import core
from ..quant.dtypes import DType

SKETCH_DIM = core.SKETCH_DIM  # k: sketch coordinates per signature (64)
SLACK = 2.0                # filter radius / screen radius; P(miss) < exp(-k/2 (S² − 1 − ln S²)) per pair
# Below this many references the exact screen (N·n per query) costs no more than sketching the query (n·k).
MIN_INDEXED = SKETCH_DIM
MAX_SKETCH_COLS = 1 << 16  # the projection matrix is k × n float32: 16 MB at this n; wider is screened exactly
_SKETCH_ROWS = 32          # signatures sketched per native call
_BATCH_PAIRS = 1 << 22     # (query, reference) pairs may_keep decides per native call: a 4 MB mask
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
_proj: dict[int, tuple[np.ndarray, float]] = {}
_F32_U = 2.0 ** -24


def _projection_t(n: int) -> tuple[np.ndarray, float]:
    """The seeded projection transposed (``[k, n]``, C-contiguous: the weight rows the native matmul
    reads) and its Frobenius norm, cached per ``n``."""
    with _proj_lock:
        hit = _proj.get(n)
        if hit is None:
            rng = np.random.default_rng(_SEED + n)
            g = (rng.standard_normal((n, SKETCH_DIM), dtype=np.float32) / np.float32(np.sqrt(SKETCH_DIM)))
            gt = np.ascontiguousarray(g.T)
            hit = (gt, float(np.sqrt(np.einsum("ij,ij->", gt, gt, dtype=np.float64))))
            _proj[n] = hit
        return hit


def projection(n: int) -> np.ndarray:
    """The seeded ``[n, k]`` Gaussian projection (N(0, 1/k) entries), cached per ``n``."""
    return _projection_t(n)[0].T


def sketch(rows: np.ndarray) -> np.ndarray:
    """The sketches ``rows · G`` of float32 signatures ``[m, n]``: float32 products (the core's matmul, on
    the calling thread: a BLAS gemm wakes its threads, which stalls on a loaded machine), as float64."""
    gt, _ = _projection_t(rows.shape[1])
    out = np.empty((len(rows), SKETCH_DIM), np.float32)
    for r0 in range(0, len(rows), _SKETCH_ROWS):  # a few rows per call: they stay in cache with G
        core.matmul(gt, DType.F32, SKETCH_DIM, rows.shape[1], rows[r0:r0 + _SKETCH_ROWS], out[r0:r0 + _SKETCH_ROWS],
                    threads=1)
    return out.astype(np.float64)


def _gamma(n: int) -> float:
    """Relative bound of a float32 sum of ``n`` products, in any order: ``n·u / (1 − n·u)``."""
    return n * _F32_U / (1 - n * _F32_U)


# ‖s_j‖² and ‖sb‖² scaled down by the float32 dot product's bound (and float64's on top): their sum less
# twice the dot is then at most ‖s_j − sb‖² (SignatureIndex.may_keep)
_DOT_LOW = 1 - _gamma(SKETCH_DIM) - 1e-12


@dataclass
class SignatureIndex:
    """The signatures ``matrix [N, n]`` of N same-shape reference tensors, searchable by rel-L2.

    ``matrix`` may also be N float32 vectors of n (the rows a compare's full passes took): they are then
    read a few at a time and never copied into one array, except the few an exact stage compares.
    ``exact_rows`` counts the signature rows the exact stage has compared (for the complexity test
    and the docs' bound); ``queries`` the searches made.
    """

    matrix: np.ndarray | Sequence[np.ndarray]
    sketch: np.ndarray | None = field(init=False, default=None)
    energy: np.ndarray = field(init=False)
    _always: np.ndarray = field(init=False, default_factory=lambda: np.empty(0, np.int64))
    _sk2: np.ndarray = field(init=False, default_factory=lambda: np.empty(0))
    _sketch32_t: np.ndarray = field(init=False, default_factory=lambda: np.empty((SKETCH_DIM, 0), np.float32))
    _sk2c: np.ndarray = field(init=False, default_factory=lambda: np.empty(0))
    _sk_slack: np.ndarray = field(init=False, default_factory=lambda: np.empty(0))
    _root_energy: np.ndarray = field(init=False, default_factory=lambda: np.empty(0))
    exact_rows: int = field(init=False, default=0)
    queries: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        m = self.matrix
        n = len(m[0]) if len(m) else 0
        self.energy = np.zeros(len(m))
        indexed = len(m) >= MIN_INDEXED and 0 < n <= MAX_SKETCH_COLS
        sk = np.empty((len(m), SKETCH_DIM)) if indexed else None
        with np.errstate(invalid="ignore", over="ignore"):
            for r0 in range(0, len(m) if n else 0, _SKETCH_ROWS):  # a few signatures at a time, in cache
                rows = self._rows(slice(r0, r0 + _SKETCH_ROWS))
                self.energy[r0:r0 + len(rows)] = np.einsum("ij,ij->i", rows, rows, dtype=np.float64)
                if sk is not None:
                    sk[r0:r0 + len(rows)] = sketch(rows)
        if sk is not None:
            with np.errstate(invalid="ignore", over="ignore"):
                self.sketch = sk
                self._sk2 = np.einsum("ij,ij->i", self.sketch, self.sketch)
                # for core.sketch_filter: exact float32 copies (the products are float32), transposed
                self._sketch32_t = np.ascontiguousarray(self.sketch.T.astype(np.float32))
                self._sk2c = self._sk2 * _DOT_LOW
                self._sk_slack = 1e-6 * np.sqrt(self._sk2)
                self._root_energy = np.sqrt(self.energy)
            # a float32 sketch that overflowed where the float64 energy did not: always screened exactly
            self._always = np.flatnonzero(~np.isfinite(self.sketch).all(axis=1) & np.isfinite(self.energy))

    def _rows(self, at: slice | np.ndarray) -> np.ndarray:
        """The signatures ``at`` as one float32 array ``[len(at), n]``."""
        if isinstance(self.matrix, np.ndarray):
            return self.matrix[at]
        picked = self.matrix[at] if isinstance(at, slice) else [self.matrix[i] for i in at]
        return np.stack(picked) if len(picked) else np.empty((0, len(self.matrix[0]) if len(self.matrix) else 0),
                                                             np.float32)

    def search(self, b: np.ndarray, tau: float) -> np.ndarray:
        """rel-L2 of ``b`` against every signature where it is ≤ ``tau``; +inf elsewhere (a reference
        the filter ruled out, or one farther than ``tau``). Same hits as ``screen(matrix, b) <= tau``."""
        self.queries += 1
        n_ref = len(self.matrix)
        ok = np.isfinite(b)
        if self.sketch is None or not ok.all():
            # small group, or a candidate with non-finite values (the screen masks them per query)
            self.exact_rows += n_ref
            err = screen(self._rows(slice(None)), b)
            return np.where(err <= tau, err, np.inf)
        with np.errstate(invalid="ignore", over="ignore"):
            sb = sketch(b.astype(np.float32, copy=False)[None, :])[0]
        if not np.isfinite(sb).all():  # float32 overflow in the candidate's sketch: screen exactly
            self.exact_rows += n_ref
            err = screen(self._rows(slice(None)), b)
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
            err = screen(self._rows(keep), b)
            hit = err <= tau
            out[keep[hit]] = err[hit]
        return out

    def may_keep(self, queries: np.ndarray | Sequence[np.ndarray], taus: np.ndarray) -> np.ndarray:
        """Which references ``search(queries[i], taus[i])``'s filter could keep, for a batch of queries
        (``[q, n]`` float32, or q float32 vectors of n: they are then read a few at a time, never copied
        into one array) at once: ``[q, N]``, False only where the filter provably rules reference j out.

        The batch's sketches are this module's float32 products of the whole batch and its distances
        float32 dot products, while the search makes its own for one query; each float32 sum of n
        products is within γ_n·Σ|terms| of the exact one whatever its order, so the two sketches of a
        query differ by at most Δ = 2γ_n·‖x‖·‖G‖_F (Cauchy–Schwarz per coordinate). A reference is
        ruled out when its distance to this sketch, less its dot product's rounding and less Δ, still
        exceeds the filter's radius ``SLACK × tau`` (with room for the search's float64 rounding). A
        query with a non-finite value or a sketch near float32 overflow, and every query while some
        reference is always screened exactly, may keep every reference."""
        out = np.ones((len(queries), len(self.matrix)), bool)
        if self.sketch is None or len(self._always) or not len(queries) or not len(self.matrix):
            return out
        step = max(1, _BATCH_PAIRS // len(self.matrix))  # queries per native call: a bounded mask
        for q0 in range(0, len(queries), step):
            out[q0:q0 + step] = self._may_keep(queries[q0:q0 + step], np.asarray(taus)[q0:q0 + step])
        return out

    def _may_keep(self, queries: np.ndarray | Sequence[np.ndarray], taus: np.ndarray) -> np.ndarray:
        out = np.ones((len(queries), len(self.matrix)), bool)
        n = len(queries[0])
        _, g_norm = _projection_t(n)
        squares, sketches = np.empty(len(queries), np.float32), np.empty((len(queries), SKETCH_DIM))
        with np.errstate(invalid="ignore", over="ignore"):
            for r0 in range(0, len(queries), _SKETCH_ROWS):  # a few queries at a time, in cache
                part = queries[r0:r0 + _SKETCH_ROWS]
                rows = part if isinstance(part, np.ndarray) else np.stack(part)
                squares[r0:r0 + len(rows)] = np.einsum("ij,ij->i", rows, rows)
                sketches[r0:r0 + len(rows)] = sketch(rows)
            # ‖x‖ from above: a float32 sum of n rounded squares is within γ_n of its terms' sum
            x_norm = np.sqrt(squares.astype(np.float64) * (1 + 2 * _gamma(n)))
            ok = np.isfinite(x_norm) & (x_norm * g_norm < 1e36)  # no partial sum of a sketch overflows
            sb = sketches[ok]  # (the others' sketches, of non-finite or huge values, go unused)
            sb2 = np.einsum("ij,ij->i", sb, sb)
            # ‖s_j − sb‖ − Δ > R·√E_j rules j out, past the search's own float64 rounding of its distance
            # (√ of 1e-12·(‖s_j‖² + (‖sb‖ + Δ)²), at most 1e-6·(‖s_j‖ + ‖sb‖ + Δ)); ‖s_j − sb‖² from below,
            # the float32 dot's error being at most γ_64‖s_j‖‖sb‖ ≤ γ_64·(‖s_j‖² + ‖sb‖²)/2 (core.sketch_filter)
            delta = (2 * _gamma(n) * g_norm * (1 + 1e-6)) * x_norm[ok]
            radius = SLACK * np.asarray(taus, np.float64)[ok] * (1 + 1e-9)
            reach0 = delta + 1e-6 * (np.sqrt(sb2) + delta)
        out[ok] = core.sketch_filter(self._sketch32_t, self._sk2c, self._root_energy, self._sk_slack,
                                     sb.astype(np.float32), sb2 * _DOT_LOW, np.ascontiguousarray(radius),
                                     np.ascontiguousarray(reach0), threads=1)
        return out

"""Explicit-vector pieces of the direct CPU kernel: 16 rows at a time, one row per vector lane.

numba compiles with LLVM's SLP vectoriser off, and the loop vectoriser, given a loop over a tile's
rows per centre, reloads the tile for every centre. These intrinsics are written as LLVM vector IR
instead (``<16 x float>``: one AVX-512 register; LLVM splits it on narrower machines):

``nearest_in_tile(X, start, centers_t, tile_x, tile_d, tile_j, n_features, n_block, runner_up)``
    The 16 rows from ``start`` are loaded and transposed in registers into one vector per
    feature (16 features at a time, or from 128-bit loads when a row is 4, 8, 12 or 16
    features). Squared distances ``sum_f (x[f] - centers_t[f, j])^2`` to a block of ``n_block``
    centres are computed together, each centre's 16 distances in a register, so each feature
    vector is reused across the block (the GEMM-style micro-kernel); features are summed in
    increasing ``f``. Each block's nearest and runner-up are found by a tree of pairwise
    merges and merged, block by block in increasing ``j``, into the rows' nearest (``[0]``) and
    runner-up (``[1]``) in ``tile_d``/``tile_j``: ties go to the lower index.
``store_tile_lanes(...)``
    The tile's four per-row outputs as four vector stores, non-temporal for long blocks.
``accumulate_tile(...)``
    The tile's rows added to their nearest centre's float64 sums, weights and per-lane inertia
    (into ``SUM_GROUPS`` copies of the sums and weights by the row's place in the tile, or one).
``add_scaled_row(sums_row, row, weight, n_features)``
    One row added to float64 sums, for a chunk's last rows (fewer than a tile).
``prefetch_tile(X, row, n_features, cache_level)``
    A hint to fetch the 16 rows from ``row`` into L1 or L2, some tiles before they are used.
``interleave_tile(out, addresses, row, n_columns)``
    16 rows of a block written from its columns (see :mod:`gpuseg.kernels.interleave`).

All are CPU-only; ``n_features``, ``n_block`` and ``weighted`` must be compile-time constants (the
kernel is compiled once per ``n_features``) and every 2-D array C-contiguous. numba's disk cache
checks only the calling kernel's own source file, so the kernels that inline these close over
:func:`source_digest` of this module: an edit here recompiles them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 16

_F32 = ir.FloatType()
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_VEC = ir.VectorType(_F32, LANES)
_IVEC = ir.VectorType(_I32, LANES)
_MASK = ir.VectorType(ir.IntType(1), LANES)

# Feature loops are unrolled up to this many features; wider rows loop over blocks of 16.
_MAX_UNROLLED_FEATURES = 64


def source_digest(*names: str) -> str:
    """A digest of the given modules of this package (file names such as ``"_simd.py"``).

    numba's disk cache checks only a kernel's own file for changes, but it keys compiled code on
    the values the function closes over: a kernel closing over the digest of the modules whose
    intrinsics it inlines misses the cache after an edit to them instead of loading stale code.
    """
    digest = hashlib.sha256()
    for name in names:
        digest.update((Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()


def _c_arrays(*arrays) -> bool:
    """Whether every argument is a 2-D C-contiguous array type (rows are indexed by hand)."""
    return all(isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C" for a in arrays)


def _vector_ptr(builder, data, offset, vec_type):
    """Pointer to ``data[offset:]`` as a vector of ``vec_type``."""
    element = builder.gep(data, [offset], source_etype=vec_type.element)
    return builder.bitcast(element, vec_type.as_pointer())


def _load(builder, data, offset, vec_type=_VEC):
    """Load a vector from ``data[offset:]``, assuming only element alignment."""
    return builder.load(_vector_ptr(builder, data, offset, vec_type), align=4)


def _store(builder, value, data, offset):
    """Store a vector at ``data[offset:]``."""
    builder.store(value, _vector_ptr(builder, data, offset, value.type), align=4)


def _splat(builder, value, vec_type):
    """A vector with every lane ``value``."""
    one = builder.insert_element(ir.Constant(vec_type, ir.Undefined), value, _I32(0))
    zeros = ir.Constant(ir.VectorType(_I32, vec_type.count), [0] * vec_type.count)
    return builder.shuffle_vector(one, one, zeros)


def _load_first(builder, data, offset, width):
    """Load ``data[offset:offset + width]`` into the low lanes, zeros above.

    A masked load: a full-width load of a row's last features could read past the end of ``X``.
    """
    if width == LANES:
        return _load(builder, data, offset)
    fnty = ir.FunctionType(_VEC, [_VEC.as_pointer(), _I32, _MASK, _VEC])
    fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.masked.load.v16f32.p0")
    mask = ir.Constant(_MASK, [lane < width for lane in range(LANES)])
    zeros = ir.Constant(_VEC, [0.0] * LANES)
    return builder.call(fn, [_vector_ptr(builder, data, offset, _VEC), _I32(4), mask, zeros])


def _transpose16(builder, rows):
    """Transpose 16 vectors of 16 lanes: ``out[c][r] = rows[r][c]``.

    Four rounds of two-input shuffles, 64 in all: 32-bit then 64-bit interleaves within 128-bit
    lanes, then two rounds of 128-bit lane moves. Every lane is labelled with the ``(row, column)``
    it holds and each round is written as the layout it produces; the masks follow from the labels.
    """
    values = list(rows)
    labels = [[(r, c) for c in range(LANES)] for r in range(LANES)]

    def shuffle_round(pairs, layouts):
        new_values = []
        for (i, j), want in zip(pairs, layouts, strict=True):
            where = {label: lane for lane, label in enumerate(labels[i])}
            where.update({label: LANES + lane for lane, label in enumerate(labels[j])})
            mask = ir.Constant(_IVEC, [where[label] for label in want])
            new_values.append(builder.shuffle_vector(values[i], values[j], mask))
        return new_values, layouts

    # Round 1: rows 2i and 2i + 1 interleaved element by element within each 128-bit lane.
    pairs, layouts = [], []
    for i in range(0, LANES, 2):
        for half in (0, 1):
            pairs.append((i, i + 1))
            layouts.append(
                [
                    (i + s, 4 * q + 2 * half + e)
                    for q in range(4)
                    for e in range(2)
                    for s in range(2)
                ]
            )
    values, labels = shuffle_round(pairs, layouts)
    # Round 2: values[4g + c] holds rows 4g..4g+3 of columns c, 4 + c, 8 + c, 12 + c (one column
    # per 128-bit lane).
    pairs, layouts = [], []
    for g in range(4):
        for half in (0, 1):
            for sub in (0, 1):
                pairs.append((4 * g + half, 4 * g + 2 + half))
                layouts.append(
                    [(4 * g + s, 4 * q + 2 * half + sub) for q in range(4) for s in range(4)]
                )
    values, labels = shuffle_round(pairs, layouts)
    # Rounds 3 and 4: a 4 x 4 transpose of 128-bit lanes across the four row groups.
    pairs, layouts = [], []
    for c in range(4):
        for groups in ((0, 1), (2, 3)):
            for quarters in ((0, 1), (2, 3)):
                pairs.append((4 * groups[0] + c, 4 * groups[1] + c))
                layouts.append(
                    [(4 * g + s, 4 * q + c) for g in groups for q in quarters for s in range(4)]
                )
    values, labels = shuffle_round(pairs, layouts)
    pairs, layouts = [], []
    for c in range(4):
        for q in range(4):
            pairs.append((4 * c, 4 * c + 2) if q < 2 else (4 * c + 1, 4 * c + 3))
            layouts.append([(r, 4 * q + c) for r in range(LANES)])
    values, labels = shuffle_round(pairs, layouts)
    return [values[labels.index([(r, c) for r in range(LANES)])] for c in range(LANES)]


def _transpose4_in_lanes(builder, rows):
    """Four vectors transposed as 4 x 4 blocks inside each 128-bit lane: in lane ``q``,
    ``out[e][4q + s] = rows[s][4q + e]``. Eight in-lane shuffles."""

    def shuffle(a, b, pattern):
        mask = [4 * q + p for q in range(4) for p in pattern]
        return builder.shuffle_vector(a, b, ir.Constant(_IVEC, mask))

    r0, r1, r2, r3 = rows
    # Lane q of each: (r0, r1) or (r2, r3) interleaved element by element, then pair by pair.
    low01, high01 = shuffle(r0, r1, (0, 16, 1, 17)), shuffle(r0, r1, (2, 18, 3, 19))
    low23, high23 = shuffle(r2, r3, (0, 16, 1, 17)), shuffle(r2, r3, (2, 18, 3, 19))
    return [
        shuffle(low01, low23, (0, 1, 16, 17)),
        shuffle(low01, low23, (2, 3, 18, 19)),
        shuffle(high01, high23, (0, 1, 16, 17)),
        shuffle(high01, high23, (2, 3, 18, 19)),
    ]


def _transpose_rows_by_quarters(builder, x_data, first, n):
    """The 16 rows from element ``first``, ``n`` a multiple of 4 up to 16, as ``n`` vectors.

    The vector for features ``4c:4c + 4`` and row offset ``s`` is built from four 128-bit loads:
    lane ``q`` holds those features of row ``s + 4q``. A 4 x 4 transpose inside each lane of the
    four vectors ``s = 0..3`` then leaves each feature's 16 rows in one vector, in row order: the
    two rounds of 128-bit lane moves of :func:`_transpose16` become loads.
    """
    quarter = ir.VectorType(_F32, 4)
    halves = ir.Constant(ir.VectorType(_I32, 8), list(range(8)))
    whole = ir.Constant(_IVEC, list(range(LANES)))
    columns = []
    for c in range(n // 4):
        vectors = []
        for s in range(4):
            parts = [
                _load(builder, x_data, builder.add(first, _I64((s + 4 * q) * n + 4 * c)), quarter)
                for q in range(4)
            ]
            low = builder.shuffle_vector(parts[0], parts[1], halves)
            high = builder.shuffle_vector(parts[2], parts[3], halves)
            vectors.append(builder.shuffle_vector(low, high, whole))
        columns.extend(_transpose4_in_lanes(builder, vectors))
    return columns


def _transpose_rows(builder, x_data, first, n):
    """The 16 rows from element ``first`` of ``x_data``, as ``n`` vectors: one per feature.

    Rows of 4, 8, 12 or 16 features go through :func:`_transpose_rows_by_quarters`. Nanoseconds
    per 16-row tile against 8 centres (``benchmarks/bench_tile.py``, three runs alternating with
    the general transpose): 4 features 28.5-29.2 -> 24.9-26.2, 8: 38.9-39.9 -> 35.1-36.5, 12:
    54.4-56.0 -> 47.1-51.5, 16: 62.9-70.3 -> 60.2-63.6. With 32 features it ran slower (441 -> 455
    cycles in an earlier harness), so wider rows keep the general one.
    """
    if n <= LANES and n % 4 == 0:
        return _transpose_rows_by_quarters(builder, x_data, first, n)
    columns = []
    for block in range(0, n, LANES):
        width = min(LANES, n - block)
        rows = [
            _load_first(builder, x_data, builder.add(first, _I64(r * n + block)), width)
            for r in range(LANES)
        ]
        columns.extend(_transpose16(builder, rows)[:width])
    return columns


def _block_distances(builder, column, centers_data, row_stride, j0, n, n_centers):
    """The 16 rows' squared distances to centres ``j0:j0 + n_centers``, one vector per centre.

    ``column(f)`` is feature ``f``'s vector: ``f`` a Python int when ``n`` is unrolled, an LLVM
    value otherwise. Features are summed in increasing order; each centre's distances are one
    register, so each feature vector is used ``n_centers`` times per load.
    """

    def add_features(acc, f_start, count):
        for f in range(count):
            if f_start is None:
                f_index, x = _I64(f), column(f)
            else:
                f_index = builder.add(f_start, _I64(f))
                x = column(f_index)
            c_row = builder.add(builder.mul(f_index, row_stride), j0)
            for j in range(n_centers):
                c_ptr = builder.gep(centers_data, [builder.add(c_row, _I64(j))], source_etype=_F32)
                diff = builder.fsub(x, _splat(builder, builder.load(c_ptr), _VEC))
                acc[j] = builder.call(fma, [diff, diff, acc[j]])
        return acc

    # An explicit fused multiply-add per term (rather than contraction, which left LLVM free to
    # fuse the first two terms either way round), so that a scalar loop can match it bit for bit.
    fma = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(_VEC, [_VEC] * 3), "llvm.fma.v16f32"
    )

    zero = ir.Constant(_VEC, [0.0] * LANES)
    if n <= _MAX_UNROLLED_FEATURES:
        return add_features([zero] * n_centers, None, n)
    # Stack slots across the loop's iterations; LLVM promotes them back to registers.
    slots = [cgutils.alloca_once_value(builder, zero) for _ in range(n_centers)]
    with cgutils.for_range(builder, _I64(n // LANES)) as loop:
        f_start = builder.mul(loop.index, _I64(LANES))
        updated = add_features([builder.load(s) for s in slots], f_start, LANES)
        for slot, value in zip(slots, updated, strict=True):
            builder.store(value, slot)
    return add_features([builder.load(s) for s in slots], _I64(n - n % LANES), n % LANES)


def _fold_block(builder, acc, j0, state, runner_up=True):
    """Fold a block's distance vectors into ``state``: the running ``(best_d, best_j, second_d,
    second_j)``, or ``None`` for the first block. Returns the new state. Without ``runner_up``
    only the nearest is kept (``second_d``/``second_j`` are ``None``), by the same comparisons.

    The block's own nearest and runner-up come from a tree of pairwise merges (centres ``2i`` and
    ``2i + 1``, then pairs of pairs), which the state then absorbs: the order by distance, then
    index, that folding the centres in one at a time gives, in about half the dependent steps. A
    runner-up is reported only at a finite distance: one at +inf (a padding centre, or a distance
    that overflowed) becomes none (-1 at +inf).
    """
    j0_32 = builder.trunc(j0, _I32)

    def index(j):
        return _splat(builder, builder.add(j0_32, _I32(j)), _IVEC)

    if not runner_up:
        return _fold_nearest(builder, acc, index, state)
    inf = ir.Constant(_VEC, [float("inf")] * LANES)
    none = ir.Constant(_IVEC, [-1] * LANES)
    tops = []
    for j in range(0, len(acc) - 1, 2):
        # Two single centres: the lower index wins ties, as in _merge_top2.
        below = builder.fcmp_ordered("<", acc[j + 1], acc[j])
        tops.append(
            (
                builder.select(below, acc[j + 1], acc[j]),
                builder.select(below, index(j + 1), index(j)),
                builder.select(below, acc[j], acc[j + 1]),
                builder.select(below, index(j), index(j + 1)),
            )
        )
    if len(acc) % 2:
        tops.append((acc[-1], index(len(acc) - 1), inf, none))
    while len(tops) > 1:
        n_pairs = len(tops) // 2
        merged = [_merge_top2(builder, tops[2 * i], tops[2 * i + 1]) for i in range(n_pairs)]
        tops = merged + tops[2 * n_pairs :]
    block = tops[0]
    best_d, best_j, second_d, second_j = (
        block if state is None else _merge_top2(builder, state, block)
    )
    has_second = builder.fcmp_ordered("<", second_d, inf)
    second_d = builder.select(has_second, second_d, inf)
    return best_d, best_j, second_d, builder.select(has_second, second_j, none)


def _fold_nearest(builder, acc, index, state):
    """:func:`_fold_block` without the runner-up: the same tree of pairwise merges, each keeping
    the nearer of two (the lower index on equal distances)."""

    def nearer(a, b):  # every index in a below every index in b
        b_wins = builder.fcmp_ordered("<", b[0], a[0])
        return builder.select(b_wins, b[0], a[0]), builder.select(b_wins, b[1], a[1])

    tops = [(d, index(j)) for j, d in enumerate(acc)]
    while len(tops) > 1:
        n_pairs = len(tops) // 2
        merged = [nearer(tops[2 * i], tops[2 * i + 1]) for i in range(n_pairs)]
        tops = merged + tops[2 * n_pairs :]
    best = tops[0] if state is None else nearer(state[:2], tops[0])
    return (*best, None, None)


def _merge_top2(builder, a, b):
    """The nearest and runner-up of two ``(best_d, best_j, second_d, second_j)`` lists, every
    index in ``a`` below every index in ``b``.

    Strict comparisons keep ``a``'s entry on equal distances, so ties go to the lower index. The
    runner-up is the better of ``a``'s entry that did not win and ``b``'s.
    """
    a_d, a_j, a_second_d, a_second_j = a
    b_d, b_j, b_second_d, b_second_j = b
    b_wins = builder.fcmp_ordered("<", b_d, a_d)
    from_a = builder.select(b_wins, a_d, a_second_d), builder.select(b_wins, a_j, a_second_j)
    from_b = builder.select(b_wins, b_second_d, b_d), builder.select(b_wins, b_second_j, b_j)
    b_second = builder.fcmp_ordered("<", from_b[0], from_a[0])
    return (
        builder.select(b_wins, b_d, a_d),
        builder.select(b_wins, b_j, a_j),
        builder.select(b_second, from_b[0], from_a[0]),
        builder.select(b_second, from_b[1], from_a[1]),
    )


@intrinsic
def nearest_in_tile(
    typingctx, X, start, centers_t, tile_x, tile_d, tile_j, n_features, n_block, runner_up
):
    """Nearest and runner-up centre of the 16 rows ``X[start:start + 16]``, into ``tile_d``/``j``.

    ``X`` is ``(n_samples, n_features)`` float32 (read; the 16 rows must exist), ``centers_t``
    ``(n_features, n_padded)`` float32 (read, ``n_padded`` a multiple of ``n_block``), ``tile_d``/
    ``tile_j`` ``(2, 16)`` float32/int32 (written: nearest in row 0, runner-up in row 1, one lane
    per row). The rows are transposed in registers into one vector per feature, then every block
    of ``n_block`` centres is folded in, in increasing order. Rows of up to 64 features stay in
    registers; wider ones go through ``tile_x`` (``(n_features, 16)`` float32 scratch). Without
    ``runner_up`` (a literal bool) only the nearest is found and row 1 is left as it was.
    """
    if not all(isinstance(v, types.IntegerLiteral) for v in (n_features, n_block)):
        return None
    if not isinstance(runner_up, types.BooleanLiteral):
        return None
    if not _c_arrays(X, centers_t, tile_x, tile_d, tile_j):
        return None
    sig = types.void(X, start, centers_t, tile_x, tile_d, tile_j, n_features, n_block, runner_up)

    def codegen(context, builder, signature, args):
        arrays = [_array(context, builder, signature, args, i) for i in (0, 2, 3, 4, 5)]
        row = context.cast(builder, args[1], signature.args[1], types.intp)
        _nearest(
            builder, *arrays, row, n_features.literal_value, n_block.literal_value,
            runner_up.literal_value,
        )  # fmt: skip
        return context.get_dummy_value()

    return sig, codegen


def _array(context, builder, signature, args, i):
    """The numba array structure of argument ``i``."""
    return context.make_array(signature.args[i])(context, builder, args[i])


def _nearest(builder, x, centers, tile_x, tile_d, tile_j, row, n, n_centers, runner_up):
    """Emit the nearest/runner-up search of the 16 rows from ``row`` (see nearest_in_tile)."""
    d_data, j_data, t_data = tile_d.data, tile_j.data, tile_x.data
    row_stride = cgutils.unpack_tuple(builder, centers.shape, 2)[1]
    columns = _transpose_rows(builder, x.data, builder.mul(row, _I64(n)), n)
    if n <= _MAX_UNROLLED_FEATURES:
        column = columns.__getitem__
    else:
        for f, value in enumerate(columns):
            _store(builder, value, t_data, _I64(f * LANES))

        def column(f_index):
            return _load(builder, t_data, builder.mul(f_index, _I64(LANES)))

    def distances(j0):
        return _block_distances(builder, column, centers.data, row_stride, j0, n, n_centers)

    state = _fold_block(builder, distances(_I64(0)), _I64(0), None, runner_up)
    _store_state(builder, state, d_data, j_data)
    n_blocks = builder.sdiv(row_stride, _I64(n_centers))
    with cgutils.for_range(builder, builder.sub(n_blocks, _I64(1))) as loop:
        j0 = builder.mul(builder.add(loop.index, _I64(1)), _I64(n_centers))
        state = _load_state(builder, d_data, j_data, runner_up)
        state = _fold_block(builder, distances(j0), j0, state, runner_up)
        _store_state(builder, state, d_data, j_data)


def _load_state(builder, d_data, j_data, runner_up=True):
    """The running ``(best_d, best_j, second_d, second_j)`` held in ``tile_d``/``tile_j`` (the
    last two ``None`` without ``runner_up``)."""
    best = (_load(builder, d_data, _I64(0)), _load(builder, j_data, _I64(0), _IVEC))
    if not runner_up:
        return (*best, None, None)
    return (
        *best,
        _load(builder, d_data, _I64(LANES)),
        _load(builder, j_data, _I64(LANES), _IVEC),
    )


def _store_state(builder, state, d_data, j_data):
    """Write the running nearest (and runner-up, when kept) into ``tile_d``/``tile_j``."""
    best_d, best_j, second_d, second_j = state
    _store(builder, best_d, d_data, _I64(0))
    _store(builder, best_j, j_data, _I64(0))
    if second_d is not None:
        _store(builder, second_d, d_data, _I64(LANES))
        _store(builder, second_j, j_data, _I64(LANES))


@intrinsic
def store_tile_lanes(
    typingctx, start, tile_d, tile_j, labels, distances, second_labels, second_distances,
    streaming, runner_up,
):  # fmt: skip
    """Write a whole tile's nearest and runner-up (``tile_d``/``tile_j``) to rows ``start:+16``.

    Four 16-lane vector stores (two, the nearest only, without ``runner_up``, a literal bool).
    With ``streaming`` they are non-temporal: written straight to memory, without first reading
    the output's cache lines in or evicting the block being read; every output row ``start`` must
    then sit on a 64-byte boundary. A streaming kernel ends with :func:`store_fence`.
    """
    outputs = (labels, distances, second_labels, second_distances)
    if not _c_arrays(tile_d, tile_j) or not all(
        isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" for a in outputs
    ):
        return None
    if not isinstance(runner_up, types.BooleanLiteral):
        return None
    keep_second = runner_up.literal_value
    sig = types.void(
        start, tile_d, tile_j, labels, distances, second_labels, second_distances, streaming,
        runner_up,
    )  # fmt: skip

    def codegen(context, builder, signature, args):
        row = context.cast(builder, args[0], signature.args[0], types.intp)
        d_data, j_data, *targets = (
            _array(context, builder, signature, args, i).data for i in range(1, 7)
        )
        streaming = context.cast(builder, args[7], signature.args[7], types.boolean)
        best_d, best_j, second_d, second_j = _load_state(builder, d_data, j_data, keep_second)
        vectors = (best_j, best_d, second_j, second_d)  # labels, distances, second_...
        if not keep_second:
            vectors, targets = vectors[:2], targets[:2]
        non_temporal = builder.module.add_metadata([_I32(1)])
        with builder.if_else(streaming) as (then, otherwise):
            with then:
                for value, data in zip(vectors, targets, strict=True):
                    store = builder.store(value, _vector_ptr(builder, data, row, value.type), 64)
                    store.set_metadata("nontemporal", non_temporal)
            with otherwise:
                for value, data in zip(vectors, targets, strict=True):
                    _store(builder, value, data, row)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def store_fence(typingctx):
    """Order this thread's earlier non-temporal stores before anything it does next."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return sig, codegen


_F64 = ir.DoubleType()
# Copies of the float64 totals that a tile's rows are added into by their place in the tile (row
# ``t`` into copy ``t % SUM_GROUPS``), so that rows of one centre close together do not each wait
# for the one before to be stored: with a few centres most rows have a namesake a few rows back.
# Fused pass on 10M x 16, k=8 (two threads, median of 21 passes alternating in one process, two
# processes): one copy 43.9, 43.6 ms; four 42.2, 38.1 ms (two copies 41.1, eight 41.8 in a first
# run). From k=16 on the distances dominate and copies changed nothing.
SUM_GROUPS = 4
# Float64 accumulation works in vectors of this many features: up to 16 float32 of a row in one
# load, widened into two 8-double vectors (``empty_partials`` aligns the float64 sums to 64
# bytes). On 10M x 16, k=8 (two threads) the pass took 41.4 ms with 4, 39.7 with 8 and 38.1 with
# 16, though most such loads straddle two cache lines. 8 was also 30 % slower when the kernel
# came from numba's disk cache than when compiled in the process (the same machine code; the
# cause was not found); 4 and 16 ran alike either way.
_SUM_WIDTH = 16


def _add_scaled(builder, sums_data, s_offset, x_data, x_offset, w, n):
    """Emit ``sums[s_offset:s_offset + n] += w * x[x_offset:x_offset + n]`` in float64.

    ``x`` is float32, widened before the product; ``w`` is a float64 value, or ``None`` for 1
    (no product). Rows of up to 64 features are unrolled; wider ones loop over vectors.
    """

    def add(f_start, width):
        vd = ir.VectorType(_F64, width)
        x_at = builder.add(x_offset, f_start)
        x = builder.fpext(_load(builder, x_data, x_at, ir.VectorType(_F32, width)), vd)
        if w is not None:
            x = builder.fmul(x, _splat(builder, w, vd))
        s_at = builder.add(s_offset, f_start)
        _store(builder, builder.fadd(_load(builder, sums_data, s_at, vd), x), sums_data, s_at)

    if n <= _MAX_UNROLLED_FEATURES:
        for f in range(0, n, _SUM_WIDTH):
            add(_I64(f), min(_SUM_WIDTH, n - f))
        return
    with cgutils.for_range(builder, _I64(n // _SUM_WIDTH)) as loop:
        add(builder.mul(loop.index, _I64(_SUM_WIDTH)), _SUM_WIDTH)
    if n % _SUM_WIDTH:
        add(_I64(n - n % _SUM_WIDTH), n % _SUM_WIDTH)


@intrinsic
def add_scaled_row(typingctx, sums_row, row, weight, n_features):
    """``sums_row[:n] += weight * row[:n]`` in float64, for a literal ``n = n_features``.

    numba compiles with LLVM's SLP vectoriser off, so a scalar loop over the features stays one
    element at a time; this emits them as vectors. Both arrays must be contiguous with at least
    ``n`` elements.
    """
    if not isinstance(n_features, types.IntegerLiteral):
        return None
    sig = types.void(sums_row, row, weight, n_features)

    def codegen(context, builder, signature, args):
        sums_data, row_data = (_array(context, builder, signature, args, i).data for i in (0, 1))
        w = context.cast(builder, args[2], signature.args[2], types.float64)
        _add_scaled(builder, sums_data, _I64(0), row_data, _I64(0), w, n_features.literal_value)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def accumulate_tile(
    typingctx, X, sample_weight, start, tile_d, tile_j, sums, weights, inertia_lanes,
    group_stride, n_features, weighted,
):  # fmt: skip
    """Add the 16 rows from ``start`` to their nearest centre's float64 totals, in row order.

    For each row ``t``, with ``g = j + (t % SUM_GROUPS) * group_stride`` for ``j = tile_j[0, t]``
    and ``w = sample_weight[start + t]`` (1 unless ``weighted``): ``sums[g] += w * X[start + t]``,
    ``weights[g] += w`` and ``inertia_lanes[t] += w * tile_d[0, t]``. With ``group_stride`` the
    number of centres, the rows go to :data:`SUM_GROUPS` copies of the totals by their place in
    the tile; with 0, all to one. The same arithmetic as a plain loop over the rows, without its
    per-row index checks: every ``g`` must lie in ``[0, sums.shape[0])`` and the 16 rows must
    exist. ``n_features`` and ``weighted`` must be compile-time constants.
    """
    if not isinstance(n_features, types.IntegerLiteral) or not isinstance(
        weighted, types.BooleanLiteral
    ):
        return None
    if not _c_arrays(X, tile_d, tile_j, sums):
        return None
    is_weighted = weighted.literal_value
    sig = types.void(
        X, sample_weight, start, tile_d, tile_j, sums, weights, inertia_lanes, group_stride,
        n_features, weighted,
    )  # fmt: skip

    def codegen(context, builder, signature, args):
        x, w, d, j, sums, weights, inertia = (
            _array(context, builder, signature, args, i).data for i in (0, 1, 3, 4, 5, 6, 7)
        )
        row0 = context.cast(builder, args[2], signature.args[2], types.intp)
        stride = context.cast(builder, args[8], signature.args[8], types.intp)
        n = n_features.literal_value
        for t in range(LANES):
            row = builder.add(row0, _I64(t))
            label = builder.sext(builder.load(builder.gep(j, [_I64(t)])), _I64)
            if t % SUM_GROUPS:
                label = builder.add(label, builder.mul(stride, _I64(t % SUM_GROUPS)))
            weight = None
            if is_weighted:
                weight = builder.fpext(builder.load(builder.gep(w, [row])), _F64)
            s_offset, x_offset = builder.mul(label, _I64(n)), builder.mul(row, _I64(n))
            _add_scaled(builder, sums, s_offset, x, x_offset, weight, n)
            weight_ptr = builder.gep(weights, [label])
            total = builder.load(weight_ptr)
            builder.store(builder.fadd(total, weight or ir.Constant(_F64, 1.0)), weight_ptr)
        # One float64 inertia per lane: inertia[t] += w_t * d_t.
        vd = ir.VectorType(_F64, LANES)
        nearest = builder.fpext(_load(builder, d, _I64(0)), vd)
        if is_weighted:
            nearest = builder.fmul(nearest, builder.fpext(_load(builder, w, row0, _VEC), vd))
        total = builder.fadd(_load(builder, inertia, _I64(0), vd), nearest)
        _store(builder, total, inertia, _I64(0))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def prefetch_tile(typingctx, X, row, n_features, cache_level):
    """Hint the caches to fetch the 16 rows ``X[row:row + 16]``, one hint per 64-byte line.

    ``cache_level`` (a literal 1 or 2) says how close to the core: 1 fetches into L1, 2 into L2
    only. A hint only: it never faults, so ``row`` may lie past the end of ``X``. The kernels call
    it a few tiles ahead of the rows they work on, so that a tile's lines arrive while the tiles
    before it are computed: the hardware prefetchers alone left the fused pass waiting on memory.
    """
    if not isinstance(n_features, types.IntegerLiteral) or not _c_arrays(X):
        return None
    if not isinstance(cache_level, types.IntegerLiteral) or cache_level.literal_value not in (1, 2):
        return None
    # LLVM's locality hint: 3 keeps the line in every level (L1 and out), 2 from L2 out.
    locality = 4 - cache_level.literal_value
    sig = types.void(X, row, n_features, cache_level)

    def codegen(context, builder, signature, args):
        n = n_features.literal_value
        first = builder.mul(context.cast(builder, args[1], signature.args[1], types.intp), _I64(n))
        data = _array(context, builder, signature, args, 0).data
        base = builder.ptrtoint(builder.gep(data, [first], source_etype=_F32), _I64)
        byte_ptr = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [byte_ptr, _I32, _I32, _I32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        for offset in range(0, LANES * 4 * n, 64):
            address = builder.inttoptr(builder.add(base, _I64(offset)), byte_ptr)
            # read, locality, data cache
            builder.call(fn, [address, _I32(0), _I32(locality), _I32(1)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def interleave_tile(typingctx, out, addresses, row, n_columns):
    """Rows ``row:row + 16`` of ``out`` from its columns: ``out[row + r, c] = column_c[row + r]``.

    ``out`` is ``(n_rows, n_columns)`` float32 (written), ``addresses`` ``(n_columns,)`` int64
    (read): the address of each float32 column, which must hold the 16 rows. Columns are taken
    16 at a time, loaded 16 rows each, transposed in registers, and every row's part is stored as
    one vector: each value is read once and written once, where a column-by-column copy writes
    every row's cache line once per column. ``n_columns`` must be a compile-time constant.
    """
    if not isinstance(n_columns, types.IntegerLiteral) or not _c_arrays(out):
        return None
    if not (isinstance(addresses, types.Array) and addresses.dtype == types.int64):
        return None
    sig = types.void(out, addresses, row, n_columns)

    def codegen(context, builder, signature, args):
        out_data, address_data = (_array(context, builder, signature, args, i).data for i in (0, 1))
        first = context.cast(builder, args[2], signature.args[2], types.intp)
        n = n_columns.literal_value
        zeros = ir.Constant(_VEC, [0.0] * LANES)
        for block in range(0, n, LANES):
            width = min(LANES, n - block)
            columns = []
            for c in range(block, block + width):
                address = builder.load(builder.gep(address_data, [_I64(c)], source_etype=_I64))
                columns.append(_load(builder, builder.inttoptr(address, _F32.as_pointer()), first))
            rows = _transpose16(builder, columns + [zeros] * (LANES - width))
            keep = ir.Constant(ir.VectorType(_I32, width), list(range(width)))
            for r, values in enumerate(rows):
                if width < LANES:
                    values = builder.shuffle_vector(values, values, keep)
                at = builder.add(builder.mul(builder.add(first, _I64(r)), _I64(n)), _I64(block))
                _store(builder, values, out_data, at)
        return context.get_dummy_value()

    return sig, codegen

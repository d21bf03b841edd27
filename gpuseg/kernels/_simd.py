"""Explicit-vector pieces of the direct CPU kernel: 16 rows at a time, one row per vector lane.

numba compiles with LLVM's SLP vectoriser off, and the loop vectoriser, given a loop over a tile's
rows per centre, reloads the tile for every centre. These two intrinsics are written as LLVM vector
IR instead (``<16 x float>``: one AVX-512 register; LLVM splits it on narrower machines):

``transpose_rows(X, start, tile_x, n_features)``
    ``tile_x[f, r] = X[start + r, f]`` for the 16 rows from ``start``: each row is loaded 16
    features at a time and the 16 x 16 blocks are transposed in registers.
``fold_centers(tile_x, centers_t, j_start, tile_d, tile_j, n_features, n_block, first)``
    Squared distances ``sum_f (tile_x[f] - centers_t[f, j])^2`` of the 16 rows to the ``n_block``
    centres from ``j_start``, folded in increasing ``j`` into the rows' running nearest (``[0]``)
    and runner-up (``[1]``) in ``tile_d``/``tile_j``. Every centre of the block keeps its 16
    distances in a register, so each feature row of the tile is loaded once per block (the
    GEMM-style micro-kernel), and features are summed in increasing ``f``.

Both are CPU-only; ``n_features``, ``n_block`` and ``first`` must be compile-time constants (the
kernel is compiled once per ``n_features``) and every array C-contiguous. numba's disk cache
checks only the calling kernel's own source file: after editing this module, delete the cached
``*.nbi``/``*.nbc`` files in ``gpuseg/kernels/__pycache__``.
"""

from __future__ import annotations

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

# Contraction turns each squared difference's add into an FMA. No-NaN/no-inf flags are left out so
# that infinite and NaN distances compare as they should.
_FLAGS = ("contract",)

# Feature loops are unrolled up to this many features; wider rows loop over blocks of 16.
_MAX_UNROLLED_FEATURES = 64


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


@intrinsic
def transpose_rows(typingctx, X, start, tile_x, n_features):
    """``tile_x[f, r] = X[start + r, f]`` for ``r < 16``; the 16 rows must exist."""
    if not isinstance(n_features, types.IntegerLiteral) or not _c_arrays(X, tile_x):
        return None
    n = n_features.literal_value
    sig = types.void(X, start, tile_x, n_features)

    def codegen(context, builder, signature, args):
        x_data = context.make_array(signature.args[0])(context, builder, args[0]).data
        t_data = context.make_array(signature.args[2])(context, builder, args[2]).data
        first = builder.mul(context.cast(builder, args[1], signature.args[1], types.intp), _I64(n))
        for block in range(0, n, LANES):
            width = min(LANES, n - block)
            rows = [
                _load_first(builder, x_data, builder.add(first, _I64(r * n + block)), width)
                for r in range(LANES)
            ]
            for f, column in enumerate(_transpose16(builder, rows)[:width]):
                _store(builder, column, t_data, _I64((block + f) * LANES))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def fold_centers(typingctx, tile_x, centers_t, j_start, tile_d, tile_j, n_features, n_block, first):
    """Fold centres ``j_start:j_start + n_block`` into 16 rows' nearest and runner-up.

    ``tile_x`` is ``(n_features, 16)`` float32 (read), ``centers_t`` ``(n_features, n_clusters)``
    float32 (read), ``tile_d``/``tile_j`` ``(2, 16)`` float32/int32 (read unless ``first``,
    written). With ``first``, centre ``j_start`` starts the nearest and the runner-up ``(-1, inf)``.
    """
    literals = (n_features, n_block, first)
    if not all(isinstance(v, (types.IntegerLiteral, types.BooleanLiteral)) for v in literals):
        return None
    if not _c_arrays(tile_x, centers_t, tile_d, tile_j):
        return None
    n = n_features.literal_value
    n_centers = n_block.literal_value
    is_first = first.literal_value
    sig = types.void(tile_x, centers_t, j_start, tile_d, tile_j, n_features, n_block, first)

    def codegen(context, builder, signature, args):
        t_data = context.make_array(signature.args[0])(context, builder, args[0]).data
        centers = context.make_array(signature.args[1])(context, builder, args[1])
        row_stride = cgutils.unpack_tuple(builder, centers.shape, 2)[1]
        j0 = context.cast(builder, args[2], signature.args[2], types.intp)
        d_data = context.make_array(signature.args[3])(context, builder, args[3]).data
        j_data = context.make_array(signature.args[4])(context, builder, args[4]).data

        def add_features(acc, f_start, count):
            """Add features ``f_start:f_start + count`` to the block's accumulators."""
            for f in range(count):
                f_index = builder.add(f_start, _I64(f))
                x = _load(builder, t_data, builder.mul(f_index, _I64(LANES)))
                c_row = builder.add(builder.mul(f_index, row_stride), j0)
                for j in range(n_centers):
                    c_ptr = builder.gep(
                        centers.data, [builder.add(c_row, _I64(j))], source_etype=_F32
                    )
                    diff = builder.fsub(x, _splat(builder, builder.load(c_ptr), _VEC), flags=_FLAGS)
                    square = builder.fmul(diff, diff, flags=_FLAGS)
                    acc[j] = builder.fadd(acc[j], square, flags=_FLAGS)
            return acc

        zero = ir.Constant(_VEC, [0.0] * LANES)
        if n <= _MAX_UNROLLED_FEATURES:
            acc = add_features([zero] * n_centers, _I64(0), n)
        else:
            # Stack slots across the loop's iterations; LLVM promotes them back to registers.
            slots = [cgutils.alloca_once_value(builder, zero) for _ in range(n_centers)]
            with cgutils.for_range(builder, _I64(n // LANES)) as loop:
                f_start = builder.mul(loop.index, _I64(LANES))
                updated = add_features([builder.load(s) for s in slots], f_start, LANES)
                for slot, value in zip(slots, updated, strict=True):
                    builder.store(value, slot)
            acc = add_features([builder.load(s) for s in slots], _I64(n - n % LANES), n % LANES)

        j0_32 = builder.trunc(j0, _I32)
        if is_first:
            best_d, best_j = acc[0], _splat(builder, j0_32, _IVEC)
            second_d = ir.Constant(_VEC, [float("inf")] * LANES)
            second_j = ir.Constant(_IVEC, [-1] * LANES)
        else:
            best_d, second_d = _load(builder, d_data, _I64(0)), _load(builder, d_data, _I64(LANES))
            best_j = _load(builder, j_data, _I64(0), _IVEC)
            second_j = _load(builder, j_data, _I64(LANES), _IVEC)
        for j in range(1 if is_first else 0, n_centers):
            d = acc[j]
            index = _splat(builder, builder.add(j0_32, _I32(j)), _IVEC)
            # Strict comparisons in increasing j: ties keep the lower index, NaN is never picked.
            below_best = builder.fcmp_ordered("<", d, best_d)
            below_second = builder.fcmp_ordered("<", d, second_d)
            second_d = builder.select(below_best, best_d, builder.select(below_second, d, second_d))
            second_j = builder.select(
                below_best, best_j, builder.select(below_second, index, second_j)
            )
            best_d = builder.select(below_best, d, best_d)
            best_j = builder.select(below_best, index, best_j)
        _store(builder, best_d, d_data, _I64(0))
        _store(builder, second_d, d_data, _I64(LANES))
        _store(builder, best_j, j_data, _I64(0))
        _store(builder, second_j, j_data, _I64(LANES))
        return context.get_dummy_value()

    return sig, codegen

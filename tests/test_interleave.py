"""The column interleave that fills Parquet blocks: equal to a column-by-column copy."""

import numpy as np
import pytest

from gpuseg.kernels.interleave import interleave_columns


@pytest.mark.parametrize("n_columns", [1, 3, 16, 17, 40])
@pytest.mark.parametrize("n_rows", [0, 5, 16, 33, 1000])
def test_rows_equal_the_columns_laid_side_by_side(n_columns, n_rows):
    rng = np.random.default_rng()
    # Columns starting 0-2 floats past an allocation: loads of any alignment.
    backing = [rng.standard_normal(n_rows + 3).astype(np.float32) for _ in range(n_columns)]
    columns = [b[j % 3 : j % 3 + n_rows] for j, b in enumerate(backing)]
    out = np.full((n_rows, n_columns), np.nan, dtype=np.float32)
    interleave_columns(out, columns)
    expected = np.empty((n_rows, n_columns), dtype=np.float32)
    for j, column in enumerate(columns):
        expected[:, j] = column
    np.testing.assert_array_equal(out, expected)


def test_special_values_are_copied_bit_for_bit():
    values = np.array([np.inf, -np.inf, np.nan, -0.0, 1e-45, 3.4e38] * 6, dtype=np.float32)
    columns = [np.roll(values, j) for j in range(5)]
    out = np.zeros((len(values), 5), dtype=np.float32)
    interleave_columns(out, columns)
    np.testing.assert_array_equal(out.view(np.int32), np.column_stack(columns).view(np.int32))


@pytest.mark.parametrize(
    ("out", "columns", "message"),
    [
        (np.empty((4, 2), np.float64), [np.ones(4, np.float32)] * 2, "float32 array"),
        (np.empty((4, 2), np.float32), [np.ones(4, np.float32)], "one column per input"),
        (np.empty((4, 2), np.float32).T, [np.ones(2, np.float32)] * 4, "C-contiguous"),
        (np.empty((4, 2), np.float32), [np.ones(4, np.float32), np.ones(3, np.float32)], r"\[1\]"),
        (np.empty((4, 2), np.float32), [np.ones(4, np.float32), np.ones(4)], r"columns\[1\]"),
        (np.empty((4, 1), np.float32), [np.ones(8, np.float32)[::2]], "contiguous float32"),
    ],
)
def test_bad_arguments_raise_naming_them(out, columns, message):
    with pytest.raises(ValueError, match=message):
        interleave_columns(out, columns)

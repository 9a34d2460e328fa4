"""Dictionary encoding of an extract's text columns: every row's value comes back exactly,
whatever the chunking (a CSV or Parquet file arrives in many chunks)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from overblik.features._validation import encode


def _decoded(column: pa.ChunkedArray) -> list[str | None]:
    enc = encode(column)
    values = [*enc.uniques.to_pylist(), None]  # the null slot is last
    return [values[c] for c in enc.codes]


def test_many_chunks_with_shared_and_new_values() -> None:
    rng = np.random.default_rng(0)
    rows = [None if i % 97 == 0 else f"v{int(x)}" for i, x in
            enumerate(rng.integers(0, 3000, 20_000))]
    chunks = [pa.array(rows[i:i + 700], pa.string()) for i in range(0, len(rows), 700)]
    column = pa.chunked_array(chunks)
    assert column.num_chunks > 20
    enc = encode(column)
    assert len(enc.uniques) == len({r for r in rows if r is not None})
    assert enc.codes.dtype == np.int32 and _decoded(column) == rows


def test_empty_and_one_chunk_columns() -> None:
    assert _decoded(pa.chunked_array([], pa.string())) == []
    assert _decoded(pa.chunked_array([pa.array(["a", None, "a"])])) == ["a", None, "a"]
    assert _decoded(pa.chunked_array([pa.array([None, None], pa.string())])) == [None, None]

"""Single-rank checks of the pieces that need no exchange: hand-off, calendar, splits, backends, errors."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from deeprc.data import DTable, cylon_available
from deeprc.data import handoff
from deeprc.data import timeseries as ts
from deeprc.data._comm import SingleComm
from deeprc.errors import DeepRCError


@pytest.fixture()
def comm() -> SingleComm:
    return SingleComm()


@pytest.fixture()
def daily(comm: SingleComm) -> DTable:
    start = dt.datetime(2024, 12, 30)
    n = 10
    table = pa.table({"sid": ["a"] * n, "time": pa.array([start + dt.timedelta(days=i) for i in range(n)], pa.timestamp("s")),
                      "x": [float(i) for i in range(n)], "y": list(range(n))})
    return DTable.from_arrow(table, comm, source="daily.parquet")


def test_cylon_backend_without_pycylon_is_a_clear_error(comm: SingleComm) -> None:
    if cylon_available():
        pytest.skip("pycylon imports here")
    with pytest.raises(DeepRCError, match="pycylon cannot be imported.*backend='native'"):
        DTable.from_arrow(pa.table({"a": [1]}), comm, backend="cylon")
    assert DTable.from_arrow(pa.table({"a": [1]}), comm, backend="auto").backend.name == "native"
    with pytest.raises(DeepRCError, match="unknown"):
        DTable.from_arrow(pa.table({"a": [1]}), comm, backend="spark")


def test_torch_loader_is_zero_copy_and_complete(daily: DTable) -> None:
    arrays = handoff.column_arrays(daily, ["x"])
    assert np.shares_memory(arrays["x"], np.asarray(daily.to_arrow().column("x").chunk(0).to_numpy()))
    ds = handoff.torch_dataset(daily, ["x"], ["x"], dtype="float64")
    assert np.shares_memory(ds.features.numpy(), arrays["x"])      # torch tensor is a view on Arrow memory
    loader = handoff.torch_dataloader(daily, ["x", "y"], ["y"], batch_size=4)
    batches = list(loader)
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    assert np.allclose(np.concatenate([b[0].numpy() for b in batches]), np.column_stack([np.arange(10)] * 2))


def test_handoff_refuses_nulls_and_strings(comm: SingleComm) -> None:
    t = DTable.from_arrow(pa.table({"x": [1.0, None], "s": ["a", "b"]}), comm, source="in.csv")
    with pytest.raises(DeepRCError, match="in.csv: field 'x'.*1 missing"):
        handoff.torch_dataset(t, ["x"], ["x"])
    with pytest.raises(DeepRCError, match="in.csv: field 's'.*numeric"):
        handoff.column_arrays(t, ["s"])


def test_tf_dataset_batches(daily: DTable) -> None:
    pytest.importorskip("tensorflow")
    ds = handoff.tf_dataset(daily, ["x", "y"], ["y"], batch_size=3)
    xs = np.concatenate([x.numpy() for x, _ in ds])
    assert xs.shape == (10, 2) and np.allclose(xs[:, 1], np.arange(10))


def test_calendar_features(daily: DTable) -> None:
    out = ts.add_calendar(daily, "time", ["year", "month", "dayofweek", "dayofyear", "quarter"]).to_arrow()
    times = daily.to_arrow().column("time").to_pylist()
    assert out.column("time_year").to_pylist() == [t.year for t in times]
    assert out.column("time_dayofweek").to_pylist() == [t.weekday() for t in times]
    assert out.column("time_dayofyear").to_pylist() == [t.timetuple().tm_yday for t in times]
    with pytest.raises(DeepRCError, match="daily.parquet: field 'x'.*date or timestamp"):
        ts.add_calendar(daily, "x")


def test_time_split_by_date_and_fractions(daily: DTable) -> None:
    train, val, test = ts.time_split(daily, "time", "2025-01-03", "2025-01-06")
    assert (train.num_rows, val.num_rows, test.num_rows) == (4, 3, 3)
    assert max(train.to_arrow().column("time").to_pylist()) < min(val.to_arrow().column("time").to_pylist())
    train, val, test = ts.time_split(daily, "time", fractions=(0.6, 0.2, 0.2))
    assert (train.num_rows, val.num_rows, test.num_rows) == (6, 2, 2)


def test_missing_values_are_explicit(comm: SingleComm) -> None:
    t = DTable.from_arrow(pa.table({"t": [1, 2, 3], "x": [1.0, None, None]}), comm, source="obs.csv")
    with pytest.raises(DeepRCError, match="obs.csv: field 'x': 2 missing values"):
        ts.fill_missing(t, "x")
    with pytest.raises(DeepRCError, match="strategy 'mean' is unknown"):
        ts.fill_missing(t, "x", "mean")


def test_normalize_round_trip_with_training_stats(daily: DTable) -> None:
    train, _, test = ts.time_split(daily, "time", fractions=(0.6, 0.2, 0.2))
    scaled, stats = ts.normalize(train, ["x"])
    x = train.to_arrow().column("x").to_numpy()
    assert stats["x"]["mean"] == pytest.approx(x.mean()) and stats["x"]["std"] == pytest.approx(x.std())
    assert np.allclose(ts.denormalize(scaled.to_arrow().column("x").to_numpy(), stats["x"]), x)
    test_scaled, same = ts.normalize(test, ["x"], stats=stats)       # validation/test reuse train stats
    assert same == stats and test_scaled.to_arrow().column("x").to_numpy().min() > 1.0


def test_local_operator_errors(daily: DTable, comm: SingleComm) -> None:
    with pytest.raises(DeepRCError, match="daily.parquet: field 'nope'"):
        daily.select(["x", "nope"])
    with pytest.raises(DeepRCError, match="daily.parquet"):
        daily.filter(pc.field("nope") > 1)
    with pytest.raises(DeepRCError, match="3 values for 10 rows"):
        daily.with_column("z", lambda tb: [1, 2, 3])
    assert daily.with_column("z", lambda tb: pc.multiply(tb["y"], 2)).to_arrow().column("z").to_pylist()[-1] == 18
    with pytest.raises(DeepRCError, match="concat"):
        DTable.concat([daily, DTable.from_arrow(pa.table({"x": ["text"]}), comm)])
    with pytest.raises(DeepRCError, match="how='cross'"):
        daily.join(daily, on="sid", how="cross")
    with pytest.raises(DeepRCError, match="join key 'x' is double.*string"):
        daily.join(DTable.from_arrow(pa.table({"x": ["a"]}), comm), on="x")

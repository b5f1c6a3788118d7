"""Metric formulas against hand-computed values."""

import numpy as np
import pytest

from deeprc.workloads import metrics as m


def test_forecast_metrics_by_hand():
    y = np.array([10.0, 20.0, 30.0])
    yhat = np.array([12.0, 18.0, 33.0])
    assert m.mae(y, yhat) == pytest.approx(7 / 3)
    assert m.rmse(y, yhat) == pytest.approx(np.sqrt((4 + 4 + 9) / 3))
    assert m.smape(y, yhat) == pytest.approx(200 / 3 * (2 / 22 + 2 / 38 + 3 / 63))
    train = np.array([1.0, 2.0, 4.0, 3.0, 5.0, 8.0])  # season 3: |3-1|, |5-2|, |8-4| -> mean 3
    assert m.naive_scale(train, 3) == pytest.approx(3.0)
    assert m.mase(y, yhat, train, 3) == pytest.approx((7 / 3) / 3)
    assert list(m.seasonal_naive(train, 5, 3)) == [3.0, 5.0, 8.0, 3.0, 5.0]


def test_hydro_metrics_by_hand():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert m.nse(y, y) == pytest.approx(1.0)
    assert m.nse(y, np.full(4, y.mean())) == pytest.approx(0.0)
    assert m.kge(y, y) == pytest.approx(1.0)
    # doubled simulation: r = 1, alpha = 2, beta = 2 -> 1 - sqrt(2)
    assert m.kge(y, 2 * y) == pytest.approx(1 - np.sqrt(2))
    # NaN observations are ignored
    assert m.nse(np.array([1.0, np.nan, 3.0]), np.array([1.0, 5.0, 3.0])) == pytest.approx(1.0)


def test_oudin_pet_is_seasonal_and_zero_when_cold():
    from deeprc.workloads.evaporation import oudin_pet

    days = np.array([15, 196])  # mid January, mid July
    pet = oudin_pet(np.array([20.0, 20.0]), days, 45.0)
    assert pet[1] > 2 * pet[0] > 0  # northern summer radiation is much larger
    assert oudin_pet(np.array([-10.0]), np.array([196]), 45.0)[0] == 0.0
    # FAO-56 example 8: 3 September (day 246) at 20 S, Ra = 32.2 MJ m-2 d-1
    from deeprc.workloads.evaporation import extraterrestrial_radiation

    assert extraterrestrial_radiation(np.array([246]), -20.0)[0] == pytest.approx(32.2, abs=0.1)

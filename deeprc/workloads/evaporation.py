"""Potential evaporation from temperature and latitude (Oudin et al. 2005, FAO-56 radiation)."""

from __future__ import annotations

import numpy as np


def extraterrestrial_radiation(day_of_year: np.ndarray, lat_deg: float) -> np.ndarray:
    """Daily extraterrestrial radiation Ra in MJ m-2 d-1 (FAO-56 eq. 21)."""
    j = np.asarray(day_of_year, dtype=float)
    phi = np.deg2rad(lat_deg)
    dr = 1 + 0.033 * np.cos(2 * np.pi * j / 365)
    delta = 0.409 * np.sin(2 * np.pi * j / 365 - 1.39)
    ws = np.arccos(np.clip(-np.tan(phi) * np.tan(delta), -1.0, 1.0))
    return 24 * 60 / np.pi * 0.0820 * dr * (ws * np.sin(phi) * np.sin(delta)
                                            + np.cos(phi) * np.cos(delta) * np.sin(ws))


def oudin_pet(tmean_c: np.ndarray, day_of_year: np.ndarray, lat_deg: float) -> np.ndarray:
    """Oudin PET in mm/d: Ra / (lambda * rho) * (T + 5) / 100 where T + 5 > 0, else 0."""
    ra = extraterrestrial_radiation(day_of_year, lat_deg)
    t = np.asarray(tmean_c, dtype=float)
    return np.where(t + 5 > 0, ra / 2.45 * (t + 5) / 100, 0.0)

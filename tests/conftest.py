"""Fixtures shared by the tests: the embedded tibia, its exact distance field, and a partial cloud of it."""
import numpy as np
import pytest
from neuralbonereg_nb.data import load_bone
from neuralbonereg_nb.fields import ExactDistanceField


@pytest.fixture(scope='session')
def tibia_field():
    "(mesh, ExactDistanceField with 20,000 surface samples) of the embedded real tibia, mm."
    mesh = load_bone('tibia')
    return mesh, ExactDistanceField(mesh, n_samples=20_000)


@pytest.fixture(scope='session')
def partial_cloud():
    "A function (field, half_height_mm) → every second surface sample within ±half_height_mm of the median height, mm."
    def make(field, half_height_mm:float):
        surf = field.surface_points_mm
        return surf[np.abs(surf[:, 2] - np.median(surf[:, 2])) < half_height_mm][::2]
    return make

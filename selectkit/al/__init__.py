"""Active learning: the reproducible simulation loop, its classifiers and learning curves."""

from selectkit.al.curves import aulc, per_repeat, summarise
from selectkit.al.models import MODELS
from selectkit.al.simulate import Simulation, simulate, simulate_file

__all__ = ["MODELS", "Simulation", "aulc", "per_repeat", "simulate", "simulate_file", "summarise"]

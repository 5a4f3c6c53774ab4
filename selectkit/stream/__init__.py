"""Stream selection: keep or skip each line as it arrives (``selectkit stream``)."""

from selectkit.stream.policies import STREAM_PARAMS, STREAM_STRATEGIES
from selectkit.stream.run import stream_select

__all__ = ["STREAM_PARAMS", "STREAM_STRATEGIES", "stream_select"]

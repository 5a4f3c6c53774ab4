"""The execution engines (selectkit.engine): local inline, local pool, Ray on two nodes."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def where(item: int, shared=None) -> tuple[int, str, int, str]:
    """Kernel: (item, Ray node id, pid, the selectkit package this worker imported)."""
    import ray

    import selectkit

    return item, ray.get_runtime_context().get_node_id(), os.getpid(), selectkit.__file__


@pytest.mark.ray
def test_the_test_cluster_has_two_nodes_and_its_workers_import_this_checkout(ray_cluster):
    import ray

    assert os.environ["RAY_ADDRESS"] == ray_cluster.address
    assert ray_cluster.nodes == 2
    ray.init(address="auto" if False else ray_cluster.address, ignore_reinit_error=True)
    alive = [n for n in ray.nodes() if n["Alive"]]
    assert sorted(n["NodeID"] for n in alive) == sorted(ray_cluster.node_ids)
    assert [n["Resources"]["CPU"] for n in alive] == [1.0, 1.0]
    task = ray.remote(num_cpus=1)(where)
    results = ray.get([task.options(scheduling_strategy="SPREAD").remote(i) for i in range(8)])
    assert {node for _, node, _, _ in results} == set(ray_cluster.node_ids)
    assert {Path(f).resolve() for *_, f in results} == {REPO / "selectkit" / "__init__.py"}
    print(socket.gethostname())

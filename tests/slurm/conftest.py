"""Fixtures for the SLURM tests: a private two-node cluster on loopback.

The cluster is started once per module from the installed slurm-wlm binaries (nothing
is installed here: see install_slurm.sh for that) and always torn down by PID in the
finalizer, whatever the tests did.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.slurm.cluster import LocalSlurmCluster, unavailable_reason


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[LocalSlurmCluster]:
    """A running cluster (nodes n1, n2, partition debug); SLURM_CONF is in ``.env``."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    cluster = LocalSlurmCluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker here too, so this directory runs without the project's ini."""
    config.addinivalue_line("markers", "slurm: needs the SLURM binaries (tests/slurm)")

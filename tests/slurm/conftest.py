"""Fixtures for the SLURM tests: a private two-node cluster on loopback.

The cluster is started once per module from the installed slurm-wlm binaries (nothing
is installed here: see install_slurm.sh for that) and always torn down by PID in the
finalizer, whatever the tests did.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.slurm.cluster import LocalSlurmCluster, missing_binaries


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[LocalSlurmCluster]:
    """A running cluster (nodes n1, n2, partition debug); SLURM_CONF is in ``.env``."""
    missing = missing_binaries()
    if missing:
        pytest.skip(f"SLURM binaries not installed ({', '.join(missing)}); "
                    "run tests/slurm/install_slurm.sh as root (apt: slurm-wlm munge)")
    if os.geteuid() != 0:
        pytest.skip("the private SLURM cluster runs slurmd as SlurmUser=root: needs root")
    cluster = LocalSlurmCluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker here too, so this directory runs without the project's ini."""
    config.addinivalue_line("markers", "slurm: needs the SLURM binaries (tests/slurm)")

"""The session fixture of the real nova cloud (tests/cloud/cloud.py), on the keystone fixture.

    def test_x(nova_cloud):
        nova_cloud.compute_url, nova_cloud.token(), nova_cloud.image_id, nova_cloud.amqp_url

Started once per test session, on first use; each service's start-up time is printed when it is
up and again in the session's summary.  A service that will not start fails every test that uses
the cloud, with that service's log in the error.

For working on these tests: ``python -m tests.cloud.cloud /tmp/cloud.json`` starts keystone and
the cloud and keeps them up (until TERM); ``FASTNOVA_CLOUD=/tmp/cloud.json pytest …`` then uses
that cloud instead of starting one (about three minutes saved per run).
"""
from __future__ import annotations

import os

import pytest

TIMINGS: list[str] = []


@pytest.fixture(scope="session")
def nova_cloud(tmp_path_factory, request):
    from tests.cloud.cloud import Cloud, start_cloud
    if os.environ.get("FASTNOVA_CLOUD"):
        yield Cloud.described(os.environ["FASTNOVA_CLOUD"])
        return
    keystone = request.getfixturevalue("keystone")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")

    def log(msg):
        if reporter is not None:
            reporter.write_line(msg)
        else:
            print(msg)
    cloud = start_cloud(keystone, tmp_path_factory.mktemp("nova-cloud"), log=log)
    TIMINGS.append(cloud.report())
    yield cloud
    cloud.stop()


def terminal_summary(terminalreporter):
    """conftest's pytest_terminal_summary: the cloud's start-up times, when it ran."""
    for line in TIMINGS:
        terminalreporter.write_sep("-", "nova cloud")
        terminalreporter.write_line(line)

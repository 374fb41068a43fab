"""The session fixture of the real nova cloud (tests/cloud/cloud.py), on the keystone fixture.

    def test_x(nova_cloud):
        nova_cloud.compute_url, nova_cloud.token(), nova_cloud.image_id, nova_cloud.amqp_url

Started once per test session, on first use; each service's start-up time is printed when it is
up and again in the session's summary.  A service that will not start fails every test that uses
the cloud, with that service's log in the error.
"""
from __future__ import annotations

import pytest

TIMINGS: list[str] = []


@pytest.fixture(scope="session")
def nova_cloud(keystone, tmp_path_factory, request):
    from tests.cloud.cloud import start_cloud
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

"""The suite's own machinery: pytest-xdist's groups are applied.

`make test` runs ``--dist loadgroup`` so that tests sharing a resource run in one worker, one after
another: ``chalice package`` into one ``.chalice/deployments`` folder (tests/test_deploy.py), and the
cpu-heavy group (Spark's JVM, the load test). pytest 9.2 changed how node ids are stored and
pytest-xdist 3.8 then silently stopped grouping (pytest-dev/pytest-xdist#1386): both workers packaged
at once and Spark ran beside the load test. xdist marks a grouped test by suffixing its node id with
``@<group>``; this test fails when that stops.
"""

from __future__ import annotations

import pytest

from tests.conftest import CPU_HEAVY_GROUP


@CPU_HEAVY_GROUP
def test_a_grouped_test_runs_in_its_group(request):
    # A worker's own options say --dist no; the command line it was started from says how tests were dealt.
    main_arguments = getattr(request.config, "workerinput", {}).get("mainargv", [])
    if not any("loadgroup" in argument for argument in main_arguments):
        pytest.skip("the suite is not run by pytest-xdist with --dist loadgroup here (make test is)")
    assert request.node.nodeid.endswith("@cpu-heavy"), (
        f"pytest-xdist did not group {request.node.nodeid!r}: check the pytest and pytest-xdist versions")

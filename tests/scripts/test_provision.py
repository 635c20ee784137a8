"""scripts/provision.py: creates the stage's bucket and table, and needs no emulator to do it."""

from __future__ import annotations

import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

from chalicelib.resources import Resources
from tests.support import load_script

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_provision_creates_what_the_stage_names(settings, monkeypatch, capsys):
    stage = replace(settings, model_bucket=f"prov-{uuid.uuid4().hex[:8]}", events_table=f"prov-{uuid.uuid4().hex[:8]}")
    cli = load_script("provision")
    monkeypatch.setattr(cli, "settings_for_stage", lambda name: stage)

    assert cli.main(["--stage", "dev"]) == 0

    assert f"bucket {stage.model_bucket} and table {stage.events_table} are ready" in capsys.readouterr().out
    resources = Resources(stage)
    assert resources.model_registry.live_version() is None  # the bucket exists (an absent one raises)
    assert resources.event_table.exists()


def test_provisioning_real_aws_does_not_load_the_local_emulators():
    script = (
        "import runpy, sys; sys.argv = ['provision.py', '--help']\n"
        "try:\n    runpy.run_path('scripts/provision.py', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('moto', 'local_aws'))\n"
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr

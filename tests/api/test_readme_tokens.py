"""README's examples of a website's backend making user tokens, in Python and JavaScript, against the API."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import PUBLISHABLE_KEY, SHOP_ORIGIN, SIGNING_SECRET

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example(language: str) -> str:
    """The ``language`` code block of README's "Making user tokens"."""
    text = README.read_text()
    section = text[text.index("#### Making user tokens"):]
    return re.search(rf"```{language}\n(.*?)```", section, re.DOTALL).group(1)


@pytest.fixture
def recommendations_for(api_client, model_registry, make_tiny_artifact):
    model_registry.publish(make_tiny_artifact())

    def call(user_id: str, token: str):
        return api_client.http.get(f"/users/{user_id}/recommendations", headers={
            "x-api-key": PUBLISHABLE_KEY, "origin": SHOP_ORIGIN, "x-user-token": token})

    return call


def test_the_python_example_makes_tokens_the_api_accepts(recommendations_for):
    namespace: dict = {}
    exec(readme_example("python"), namespace)  # noqa: S102 - README's own example, run as a user would

    token = namespace["user_token"]("u2", SIGNING_SECRET, "test-2026", ttl=600)

    assert recommendations_for("u2", token).status_code == 200
    assert recommendations_for("u0", token).status_code == 403


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_the_javascript_example_makes_tokens_the_api_accepts(recommendations_for):
    script = readme_example("js") + "\nprocess.stdout.write(userToken(...process.argv.slice(1, 4), 600));\n"
    token = subprocess.run(["node", "-e", script, "u2", SIGNING_SECRET, "test-2026"], capture_output=True,
                           text=True, timeout=30, check=True).stdout

    assert recommendations_for("u2", token).status_code == 200
    expired = subprocess.run(["node", "-e", readme_example("js") + "\nprocess.stdout.write(userToken("
                              "'u2', process.argv[1], 'test-2026', -10));\n", SIGNING_SECRET],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    assert recommendations_for("u2", expired).status_code == 403

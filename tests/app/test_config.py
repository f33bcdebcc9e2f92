"""Settings are validated together and frozen; a bad combination stops the CLI clearly."""

from __future__ import annotations

import os
import subprocess

import pytest
from pydantic import ValidationError

from app.config import PersistenceSettings, ScoringSettings, Settings
from app.tools import cli
from app.tools.service_process import RIVERGUARD


def test_review_threshold_above_decline_is_refused() -> None:
    with pytest.raises(ValidationError, match="must not exceed"):
        ScoringSettings(review_threshold=0.8, decline_threshold=0.7)
    assert ScoringSettings(review_threshold=0.7, decline_threshold=0.7).review_threshold == 0.7


def test_pool_bounds_in_order() -> None:
    with pytest.raises(ValidationError, match="pool_min"):
        PersistenceSettings(pool_min=5, pool_max=2)


def test_settings_are_frozen() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]
    with pytest.raises(ValidationError):
        settings.scoring.review_threshold = 0.1  # type: ignore[misc]


def test_cli_names_the_bad_settings_without_their_values() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIVERGUARD_")}
    env["RIVERGUARD_SCORING__REVIEW_THRESHOLD"] = "0.95"
    env["RIVERGUARD_PORT"] = "secret-looking-99999"
    done = subprocess.run(
        [str(RIVERGUARD), "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "RIVERGUARD_SCORING" in done.stdout + done.stderr
    assert "RIVERGUARD_PORT" in done.stdout + done.stderr
    assert "secret-looking-99999" not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_an_empty_console_secret_is_unset_and_a_short_one_is_refused() -> None:
    assert Settings(console={"secret": ""}).console.secret is None  # compose passes ""
    with pytest.raises(ValidationError) as caught:
        Settings(console={"secret": "guessable"})
    assert "guessable" not in cli.settings_problems(caught.value)
    assert Settings(console={"secret": "x" * 16}).console.secret is not None

"""API keys: from the config file or the environment, held as SecretStr, and removed from every text
a user or a log could see."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from app.config import ConfigError, credential_variable, exposed_secrets, load_settings
from app.logsafe import escape
from app.model import Venue
from app.secrets import Credentials, REDACTED, RedactingFilter, redact, register
from app.venues import build_adapter
from app.venues.base import Endpoint

KEY = "ps_test_Sup3rSecretKeyValue"


def test_key_from_the_environment_or_the_file_and_never_in_repr(tmp_path: Path):
    settings = load_settings(environ={credential_variable(Venue.PERPS_STUDIO): KEY})
    assert credential_variable(Venue.PERPS_STUDIO) == "PERPTERM_PERPS_STUDIO_API_KEY"
    key = settings.credentials()[Venue.PERPS_STUDIO].api_key
    assert key.get_secret_value() == KEY
    assert KEY not in repr(settings) and KEY not in str(settings.model_dump())
    path = tmp_path / "perpterm.toml"
    path.write_text(f'[venues.perps-studio]\napi_key = "{KEY}-file"\n')
    settings = load_settings(path, environ={credential_variable(Venue.PERPS_STUDIO): KEY})
    assert settings.credentials()[Venue.PERPS_STUDIO].api_key.get_secret_value() == KEY + "-file"  # the file wins


def test_every_credential_field_from_the_environment(tmp_path: Path):
    environ = {
        "PERPTERM_PERPEX_TOKEN": "eyJ.perpex.token",
        "PERPTERM_RAILS_API_KEY": KEY + "-rails",
        "PERPTERM_RAILS_API_SECRET": KEY + "-secret",
    }
    credentials = load_settings(environ=environ).credentials()
    assert credentials[Venue.PERPEX].token.get_secret_value() == "eyJ.perpex.token"
    rails = credentials[Venue.RAILS]
    assert (rails.api_key.get_secret_value(), rails.api_secret.get_secret_value()) == (KEY + "-rails", KEY + "-secret")
    assert rails.token is None and Venue.HYPERLIQUID not in credentials
    path = tmp_path / "perpterm.toml"
    path.write_text(f'[venues.rails]\napi_secret = "{KEY}-from-file"\n')
    os.chmod(path, 0o644)
    settings = load_settings(path, environ=environ)
    assert settings.credentials()[Venue.RAILS].api_secret.get_secret_value() == KEY + "-from-file"
    warning = exposed_secrets(path, settings)
    assert warning is not None and "chmod 600" in warning and KEY not in warning


def test_a_bad_value_next_to_a_key_is_reported_without_the_key(tmp_path: Path):
    path = tmp_path / "perpterm.toml"
    path.write_text(f'[venues.perps-studio]\napi_key = "{KEY}"\nnetwork = "{KEY}"\n')
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    assert "network" in str(error.value)
    # The misplaced key in a field that is not a secret is shown... unless it is a registered
    # secret: registration happens when an adapter is built, so a config error cannot know it.
    path.write_text(f'[venues.perps-studio]\napi_key = ["{KEY}"]\n')
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    assert KEY not in str(error.value) and "api_key" in str(error.value)


def test_a_readable_config_holding_a_key_is_warned_about(tmp_path: Path):
    path = tmp_path / "perpterm.toml"
    path.write_text(f'[venues.perps-studio]\napi_key = "{KEY}"\n')
    os.chmod(path, 0o644)
    warning = exposed_secrets(path, load_settings(path))
    assert warning is not None and "chmod 600" in warning and KEY not in warning
    os.chmod(path, 0o600)
    assert exposed_secrets(path, load_settings(path)) is None
    path.write_text('venue = "hyperliquid"\n')
    os.chmod(path, 0o644)
    assert exposed_secrets(path, load_settings(path)) is None  # nothing secret in it


def test_registered_keys_and_url_credentials_are_redacted_everywhere():
    adapter = build_adapter(
        Venue.HYPERLIQUID, Endpoint("ws://127.0.0.1:9/ws", "http://127.0.0.1:9"), credentials=Credentials(api_key=SecretStr(KEY))
    )
    assert adapter.credentials.api_key is not None
    text = f"connect to wss://x/ws/v1/perps?apiKey={KEY} failed; header {KEY}"
    assert KEY not in redact(text) and REDACTED in redact(text)
    assert KEY not in escape(text)  # every log and status line goes through escape
    assert redact("https://h/p?token=abc123&x=1") == f"https://h/p?token={REDACTED}&x=1"
    register("abc")  # too short to be a key: it would redact ordinary text
    assert redact("abc") == "abc"


def test_log_records_are_redacted_by_the_filter(caplog):
    register(KEY)
    logger = logging.getLogger("perpterm.test.secrets")
    caplog.handler.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO):
        logger.info("dialing %s", f"wss://h/ws?apiKey={KEY}")
    assert KEY not in caplog.text and REDACTED in caplog.text

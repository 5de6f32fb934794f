"""Configuration: defaults mean demo; errors name the key, the value and what is expected, and
never print a secret nor end in a traceback."""

import pytest

from app.cli import main
from app.config import ConfigError, load_settings, redact_url
from app.model import Venue
from app.venues.hyperliquid import NETWORKS

SECRETS = ("hunter2", "sk-live-123")


def load_error(tmp_path, content: str | bytes, endpoints=()) -> str:
    """The ConfigError text for a config file holding ``content``, checked to leak no secret."""
    path = tmp_path / "perpterm.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ConfigError) as error:
        load_settings(path, endpoints)
    message = str(error.value)
    assert not any(secret in message for secret in SECRETS), message
    return message


def test_no_configuration_is_the_demo():
    settings = load_settings()
    assert settings.demo_venues() == [Venue.HYPERLIQUID, Venue.ASTER, Venue.POLYMARKET, Venue.HYPERCALL, Venue.PERPS_STUDIO, Venue.PERPEX, Venue.RAILS]
    assert all(settings.endpoint(venue) is None for venue in settings.demo_venues())


@pytest.mark.parametrize("network", ["mainnet", "testnet"])
def test_named_networks(network):
    settings = load_settings(endpoints=[f"hyperliquid={network}"])
    assert settings.endpoint(Venue.HYPERLIQUID) == NETWORKS[network]
    assert Venue.HYPERLIQUID not in settings.demo_venues()  # the others stay on their emulators


def test_aster_mainnet_names_both_hosts():
    endpoint = load_settings(endpoints=["aster=mainnet"]).endpoint(Venue.ASTER)
    assert endpoint.ws_url == "wss://fstream.asterdex.com/stream"
    assert endpoint.url("spot_ws") == "wss://sstream.asterdex.com/stream"
    assert endpoint.url("spot_http") == "https://sapi.asterdex.com"


def test_custom_urls_from_file(tmp_path):
    path = tmp_path / "perpterm.toml"
    path.write_text(
        '[venues.hyperliquid]\nws_url = "wss://example.test/ws"\nhttp_url = "https://example.test"\n'
    )
    endpoint = load_settings(path).endpoint(Venue.HYPERLIQUID)
    assert endpoint.ws_url == "wss://example.test/ws" and endpoint.http_url == "https://example.test"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[venues.hyperliquid]\nnetwork = "mainet"\n', "'mainet' is not one of demo, mainnet, testnet"),
        (
            '[venues.hyperliquid]\nws_url = "http://x/ws"\nhttp_url = "https://x"\n',
            "venues.hyperliquid.ws_url: expected a ws or wss URL with a host (got 'http://x/ws')",
        ),
        ('interval = "7m"\n', "interval: expected one of"),
        ('[venues.hyperliquid]\ncolour = 1\n', "venues.hyperliquid.colour: Extra inputs are not permitted"),
        ("this is = = not toml", "is not valid TOML"),
    ],
)
def test_errors_are_clear(tmp_path, toml, expected):
    assert expected in load_error(tmp_path, toml)


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        # URL credentials and query keys are redacted, the rest of the URL is shown
        (
            '[venues.hyperliquid]\nws_url = "http://alice:hunter2@host/ws"\nhttp_url = "https://host"\n',
            "venues.hyperliquid.ws_url: expected a ws or wss URL with a host (got 'http://***@host/ws')",
        ),
        (
            '[venues.hyperliquid]\nws_url = "wss://host:99999/ws?apiKey=sk-live-123"\nhttp_url = "https://h"\n',
            "venues.hyperliquid.ws_url: expected a port number 0-65535 (got 'wss://host:99999/ws?***')",
        ),
        (
            '[venues.hyperliquid]\nws_url = "wss://alice:hunter2@host:abc/ws"\nhttp_url = "https://h"\n',
            "venues.hyperliquid.ws_url: expected a port number 0-65535 (got 'wss://***@host:abc/ws')",
        ),
        (
            '[venues.hyperliquid]\nhttp_url = "alice:hunter2@host/info"\nws_url = "wss://h/ws"\n',
            "venues.hyperliquid.http_url: expected a http or https URL with a host (got '***@host/info')",
        ),
        (
            '[venues.hyperliquid]\nnetwork = "wss://host/ws#sk-live-123"\n',
            "venues.hyperliquid.network: 'wss://host/ws?***' is not one of",
        ),
        # unknown keys, secret-looking or not, are named but their values never shown
        ('api_key = "sk-live-123"\n', "api_key: Extra inputs are not permitted"),
        ('[venues.hyperliquid]\nPassPhrase = "hunter2"\n', "venues.hyperliquid.PassPhrase: Extra inputs"),
        ('colour = "sk-live-123"\n', "colour: Extra inputs are not permitted"),
        ('[venues.binance]\napi_key = "sk-live-123"\n', "venues.binance: Input should be 'hyperliquid'"),
        # a wrong type where a table belongs
        ("venues = 5\n", "venues: expected a table (got 5)"),
        ('venues = [{ api_key = "sk-live-123" }]\n', "venues: expected a table"),
        ('[venues]\nhyperliquid = "x"\n', "venues.hyperliquid: expected a table (got 'x')"),
        ("venues.hyperliquid.markets = 3\n", "venues.hyperliquid.markets: Input should be a valid list (got 3)"),
        ('venue = "binance"\n', "venue: Input should be 'hyperliquid'"),
        ("api_key = sk-live-123\n", "is not valid TOML"),
    ],
)
def test_errors_name_the_key_and_hide_secrets(tmp_path, toml, expected):
    assert expected in load_error(tmp_path, toml)


def test_non_utf8_file(tmp_path):
    message = load_error(tmp_path, b'\xff\xfeapi_key = "sk-live-123"\n')
    assert "perpterm.toml is not UTF-8 text" in message


def test_directory_as_config(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_settings(tmp_path)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("binance=mainnet", "--endpoint: unknown venue 'binance' (expected one of hyperliquid, aster, polymarket, hypercall, perps-studio, perpex, rails)"),
        ("wss://alice:hunter2@host/ws?apiKey=sk-live-123", "--endpoint: unknown venue 'wss://***@host/ws?***'"),
        ("wss://alice:hunter2@host/ws", "--endpoint 'wss://***@host/ws': expected VENUE=NETWORK"),
        ("hyperliquid=", "--endpoint 'hyperliquid=': expected VENUE=NETWORK"),
        (
            "hyperliquid=wss://alice:hunter2@host:99999/ws?apiKey=sk-live-123,https://host",
            "venues.hyperliquid.ws_url: expected a port number 0-65535 (got 'wss://***@host:99999/ws?***')",
        ),
    ],
)
def test_endpoint_override_errors(override, expected):
    with pytest.raises(ConfigError) as error:
        load_settings(endpoints=[override])
    message = str(error.value)
    assert expected in message and not any(secret in message for secret in SECRETS)


@pytest.mark.parametrize("toml", ["venues = 5\n", '[venues]\nhyperliquid = "x"\n'])
def test_endpoint_override_onto_a_non_table(tmp_path, toml):
    assert "expected a table" in load_error(tmp_path, toml, endpoints=["hyperliquid=mainnet"])


@pytest.mark.parametrize("theme", ["perpterm-colorblind", "perpterm-dark", "textual-light", "dracula"])
def test_registered_themes_are_accepted(theme):
    assert load_settings(theme=theme).theme == theme


def test_unknown_theme_lists_valid_ones():
    with pytest.raises(ConfigError) as error:
        load_settings(theme="perpterm-neon")
    message = str(error.value)
    assert message.startswith("config error: theme: expected a theme such as perpterm-colorblind, perpterm-dark")
    assert "textual-dark" in message and "(got 'perpterm-neon')" in message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("wss://alice:hunter2@host:8443/ws?apiKey=sk-live-123#frag", "wss://***@host:8443/ws?***"),
        ("https://host/info#sk-live-123", "https://host/info?***"),
        ("https://alice:hunt@er2@host", "https://***@host"),
        ("alice:hunter2@host", "***@host"),
        ("https://host:443/info", "https://host:443/info"),
        ("mainnet", "mainnet"),
    ],
)
def test_redact_url(url, shown):
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "toml",
    [
        '[venues.hyperliquid]\nws_url = "wss://alice:hunter2@host:99999/ws?apiKey=sk-live-123"\n',
        b"\xff\xfe hunter2",
        "venues = 5\n",
        'token = "sk-live-123"\ntheme = "nope"\n',
    ],
)
def test_cli_prints_one_line_without_secret_or_traceback(tmp_path, capsys, toml):
    path = tmp_path / "perpterm.toml"
    path.write_bytes(toml if isinstance(toml, bytes) else toml.encode())
    assert main(["--config", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("perpterm: ") and captured.err.count("\n") == 1
    assert "Traceback" not in captured.err
    assert not any(secret in captured.err for secret in SECRETS)


def test_key_names_with_escape_codes_are_shown_escaped(tmp_path):
    path = tmp_path / "perpterm.toml"
    path.write_text('"bad\\u001b]0;pwned\\u0007" = 1\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert "\x1b" not in message and "\x07" not in message and "\\x1b]0;pwned" in message

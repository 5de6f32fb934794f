"""Configuration: defaults mean demo; errors name the key, the value and what is expected."""

import pytest

from app.config import ConfigError, load_settings
from app.model import Venue
from app.venues.hyperliquid import NETWORKS


def test_no_configuration_is_the_demo():
    settings = load_settings()
    assert settings.demo_venues() == [Venue.HYPERLIQUID]
    assert settings.endpoint(Venue.HYPERLIQUID) is None


@pytest.mark.parametrize("network", ["mainnet", "testnet"])
def test_named_networks(network):
    settings = load_settings(endpoints=[f"hyperliquid={network}"])
    assert settings.endpoint(Venue.HYPERLIQUID) == NETWORKS[network]
    assert settings.demo_venues() == []


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
        ('[venues.hyperliquid]\nws_url = "http://x/ws"\nhttp_url = "https://x"\n', "ws_url must be a ws or wss URL"),
        ('interval = "7m"\n', "interval: Value error, expected one of"),
        ('[venues.hyperliquid]\ncolour = 1\n', "venues.hyperliquid.colour: Extra inputs are not permitted"),
        ("this is = = not toml", "is not valid TOML"),
    ],
)
def test_errors_are_clear(tmp_path, toml, expected):
    path = tmp_path / "perpterm.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=None) as error:
        load_settings(path)
    assert expected in str(error.value)

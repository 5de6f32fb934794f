"""Venue adapters, one module per venue; this registry is the one place that lists them."""

from __future__ import annotations

from app.model import Venue
from app.rest import RestClient
from app.venues import hyperliquid
from app.venues.base import Endpoint, VenueAdapter

ADAPTERS: dict[Venue, type[VenueAdapter]] = {
    Venue.HYPERLIQUID: hyperliquid.HyperliquidAdapter,
}

# Named public endpoints per venue ("mainnet", "testnet", ...), for config and --endpoint.
NETWORKS: dict[Venue, dict[str, Endpoint]] = {
    Venue.HYPERLIQUID: hyperliquid.NETWORKS,
}


def build_adapter(venue: Venue, endpoint: Endpoint) -> VenueAdapter:
    return ADAPTERS[venue](endpoint, RestClient(endpoint.http_url))

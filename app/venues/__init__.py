"""Venue adapters, one module per venue; this registry is the one place that lists them."""

from __future__ import annotations

from urllib.parse import urlsplit

from app.model import Venue
from app.rest import RateLimiter, RestClient, shared_limiter
from app.secrets import Credentials
from app.venues import aster, hypercall, hyperliquid, perpex, perps_studio, polymarket, rails
from app.venues.base import Endpoint, VenueAdapter

ADAPTERS: dict[Venue, type[VenueAdapter]] = {
    Venue.HYPERLIQUID: hyperliquid.HyperliquidAdapter,
    Venue.ASTER: aster.AsterAdapter,
    Venue.POLYMARKET: polymarket.PolymarketAdapter,
    Venue.HYPERCALL: hypercall.HypercallAdapter,
    Venue.PERPS_STUDIO: perps_studio.PerpsStudioAdapter,
    Venue.PERPEX: perpex.PerpexAdapter,
    Venue.RAILS: rails.RailsAdapter,
}

# Named public endpoints per venue ("mainnet", "testnet", ...), for config and --endpoint.
NETWORKS: dict[Venue, dict[str, Endpoint]] = {
    Venue.HYPERLIQUID: hyperliquid.NETWORKS,
    Venue.ASTER: aster.NETWORKS,
    Venue.POLYMARKET: polymarket.NETWORKS,
    Venue.HYPERCALL: hypercall.NETWORKS,
    Venue.PERPS_STUDIO: perps_studio.NETWORKS,
    Venue.PERPEX: perpex.NETWORKS,
    Venue.RAILS: rails.NETWORKS,
}


def build_adapter(
    venue: Venue, endpoint: Endpoint, wallet: str | None = None, credentials: Credentials | None = None
) -> VenueAdapter:
    """The venue's adapter with a REST client limited to the venue's request weight, serving the
    account of ``wallet`` if given, using ``credentials`` where the venue wants them (registered
    for redaction from here on)."""
    cls = ADAPTERS[venue]
    credentials = credentials or Credentials()
    credentials.register()
    limit = cls.rest_weight_per_minute
    limiter = None if limit is None else RateLimiter(limit)
    if limit is not None and cls.rest_limit_per_key:
        secret = credentials.token or credentials.api_key
        scope = f"{venue}:{urlsplit(endpoint.http_url).netloc}"
        limiter = shared_limiter(scope, None if secret is None else secret.get_secret_value(), limit)
    rest = RestClient(endpoint.http_url, limiter=limiter)
    return cls(endpoint, rest, wallet, credentials)

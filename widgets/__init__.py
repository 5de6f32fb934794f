"""Textual widgets of the dashboard. They only read stream state; they never do I/O."""

# app.state before app.account: app.state imports app.account at its end, and app.account needs
# app.state's StreamData, so a first import of app.account (as the account widgets do) would fail.
import app.state as _state_first  # isort: skip
from widgets._text import inert
from widgets.account import FillsOrdersView
from widgets.candles import CandleChart
from widgets.chain import OptionsChainView
from widgets.greeks import PortfolioGreeksView
from widgets.liquidation import LiquidationStateView
from widgets.orderbook import OrderBookView
from widgets.status import StatusBar
from widgets.trades import TradeTapeView

del _state_first

__all__ = [
    "CandleChart",
    "FillsOrdersView",
    "LiquidationStateView",
    "OptionsChainView",
    "OrderBookView",
    "PortfolioGreeksView",
    "StatusBar",
    "TradeTapeView",
    "inert",
]

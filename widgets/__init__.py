"""Textual widgets of the dashboard. They only read stream state; they never do I/O."""

from widgets._text import inert
from widgets.account import FillsOrdersView
from widgets.candles import CandleChart
from widgets.chain import OptionsChainView
from widgets.greeks import PortfolioGreeksView
from widgets.liquidation import LiquidationStateView
from widgets.orderbook import OrderBookView
from widgets.status import StatusBar
from widgets.trades import TradeTapeView

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

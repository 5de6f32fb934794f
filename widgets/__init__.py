"""Textual widgets of the dashboard. They only read stream state; they never do I/O."""

from widgets._text import inert
from widgets.candles import CandleChart
from widgets.orderbook import OrderBookView
from widgets.status import StatusBar
from widgets.trades import TradeTapeView

__all__ = ["CandleChart", "OrderBookView", "StatusBar", "TradeTapeView", "inert"]

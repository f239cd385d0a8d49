"""Checkout: turns a cart line into an amount to pay."""

from shop.pricing import PriceCalculator


def line_total(net: float, qty: int) -> float:
    calc = PriceCalculator(0.2)
    return calc.

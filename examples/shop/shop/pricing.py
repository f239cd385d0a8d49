"""Prices with tax and quantity discounts."""


class PriceCalculator:
    """Computes gross prices from net prices with a fixed tax rate."""

    def __init__(self, tax_rate: float) -> None:
        self.tax_rate = tax_rate

    def total_with_tax(self, net: float, qty: int = 1) -> float:
        """Gross total for `qty` items of net price `net`."""
        return round(net * qty * (1 + self.tax_rate), 2)

    def discount(self, total: float, percent: float) -> float:
        """`total` reduced by `percent` per cent."""
        return round(total * (1 - percent / 100), 2)

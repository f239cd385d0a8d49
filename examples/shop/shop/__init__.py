"""A small shop: prices live in shop.pricing, orders in shop.checkout."""

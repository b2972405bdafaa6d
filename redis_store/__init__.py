"""redis-store: meerkat RuntimeStore backed by Redis."""

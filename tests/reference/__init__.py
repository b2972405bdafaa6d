"""redis-store 0.1.0's strict readers, kept as the reference for differential tests."""

"""Real OpenStack services (keystone, nova, placement, glance) for the tests, from PyPI."""

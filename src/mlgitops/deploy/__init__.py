"""Shipping a reviewed model: verify, build, release to a target, smoke-test, restore on failure."""

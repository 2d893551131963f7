"""Monitoring: the prediction log, drift and decay, retention and erasure, the retraining PR."""

"""Delivery of notifications outside the app: the push gateway webhook."""

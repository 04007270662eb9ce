"""TFDS builder package `yelp_5class` (see README.md)."""

"""TFDS builder package `amazon_5class` (see README.md)."""

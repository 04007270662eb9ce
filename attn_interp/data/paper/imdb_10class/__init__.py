"""TFDS builder package `imdb_10class` (see README.md)."""

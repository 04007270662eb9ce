"""TFDS builder package `yahoo_answers` (see README.md)."""

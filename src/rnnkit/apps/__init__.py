"""Applications: end-to-end models for each kind of sequential data."""

"""Data: loaders for the real data sets that ship inside packages, and the user's files."""

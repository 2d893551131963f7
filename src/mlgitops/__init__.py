"""mlgitops: pull requests propose models, merges ship them, reverts roll them back."""

__version__ = "0.1.0"

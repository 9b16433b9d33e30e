"""DFPIR."""

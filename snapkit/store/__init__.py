"""Hashing, chunking, blob frames, the archive format and the repository interface."""

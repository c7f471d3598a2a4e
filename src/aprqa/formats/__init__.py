"""Readers and writers of the model formats aprqa understands."""

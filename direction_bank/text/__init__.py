"""Sentences to embeddings: the sentence writers, cleaning, the user's text files and the SD text encoder."""

"""Embedders (text -> vectors) and the streaming ``embed`` pipeline."""

from selectkit.embed.hashing import HashingEmbedder
from selectkit.embed.pipeline import EMBEDDERS, embed_file, embed_texts, make_embedder

__all__ = ["EMBEDDERS", "HashingEmbedder", "embed_file", "embed_texts", "make_embedder"]

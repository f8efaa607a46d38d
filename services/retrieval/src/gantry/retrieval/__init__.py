"""Gantry retrieval: embeddings, dense/sparse/hybrid search on Qdrant, encoder evaluation."""

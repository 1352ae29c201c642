"""Answering a question from the recordings, one module per step.

questions (who/when/follow-up) → retrieval (bm25 + vectors over embeddings, fused into passages)
→ reader (extractive span) or the best sentence → answer (with citations, or "not found").
"""

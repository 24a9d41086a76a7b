"""Layer 2, queries: the SQL library over a store, the table of measures, the comparisons."""

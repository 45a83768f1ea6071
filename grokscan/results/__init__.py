"""Results: what finished runs leave behind, and what is computed from it.

Owns the Parquet schemas of the runs and curves tables (`schema`), the append-only store of their fragments,
local or on an object store (`store`), the phases named at analysis time (`phases`) and the statistics over
grid cells and censored scaling fits (`analysis`). Nothing here may import torch or ray: results are read
and analysed wherever pandas runs.
"""

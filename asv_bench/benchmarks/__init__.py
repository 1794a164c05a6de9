"""asv benchmarks for skmoe; see ``asv_bench/README.md``."""

"""The benchmarks behind `mes bench ...`: tooling that drives the product, never imported by it."""

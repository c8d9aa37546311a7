"""Benchmarks (`make bench`): each compares emotune with a baseline side by side in one run."""

"""Benchmarks: sggw side by side with OVS NORMAL, a reactive controller and OVS mirrors."""

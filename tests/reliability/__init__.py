"""Reliability: no lost call, exactly once in effect, per-instance order, under faults and kills."""

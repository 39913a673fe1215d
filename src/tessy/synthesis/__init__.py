"""Cooperative synthesis: one trajectory (cooperate), many (scheduler), and the baselines."""

"""Cooperative synthesis: one run (run), its loop over problems (run_loop), one trajectory (cooperate)."""

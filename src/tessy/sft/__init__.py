"""`tessy sft`: fine-tune the student on the data (TRL), checked token by token (docs/DESIGN.md)."""

"""Reading problems and writing records."""

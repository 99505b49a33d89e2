"""mre.cli."""

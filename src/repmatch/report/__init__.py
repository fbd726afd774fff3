"""Self-contained HTML run reports and image grids."""

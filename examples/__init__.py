"""Example algorithms (a developer's container, its Dockerfile and its algorithm JSON each)."""

"""The deploy engine."""

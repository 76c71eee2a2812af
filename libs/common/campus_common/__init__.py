"""Shared building blocks for the CampusConnect services."""

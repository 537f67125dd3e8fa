"""Importers for networks trained with other tools; none of them executes code from the file."""

"""The workflow templates."""

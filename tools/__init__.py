"""Scripts for the maintainers of the shipped model (what each is for: tools/README.md)."""

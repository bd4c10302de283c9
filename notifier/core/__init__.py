"""The pure core: plain functions and value types, no I/O."""

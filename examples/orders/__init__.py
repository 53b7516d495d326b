"""An order service on leveret.events: see README.md in this folder."""

"""leveret's version, in a module of its own so that any layer can name it without
importing the package root (whose ``leveret.Broker`` imports the runtime)."""

__version__ = "0.1.0"

"""yunpipe: turn an algorithm container into an event-driven pipeline on AWS."""

__version__ = "0.2.0"

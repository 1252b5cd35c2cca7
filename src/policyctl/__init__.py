"""policyctl: declarative risk policies for crypto trading bots."""

__version__ = "0.1.0"

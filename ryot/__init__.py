"""Ryot: judge whether an optimized training arm is really faster than the baseline."""

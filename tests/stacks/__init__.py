"""Stacks an honest author could write that once ran part of their work off the clock.

Each is used by tests/test_clock.py, in process or by name in a worker (`--stack
tests.stacks.MODULE:FUNCTION`), to show that the work is now charged to the stack.
"""

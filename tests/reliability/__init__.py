"""Reliability tests: crashes, concurrent writers, damage, tampering and bad input.

They try hard to break the archive (issue 8). Worker functions that run in
other processes live in :mod:`reliability.workers`.
"""

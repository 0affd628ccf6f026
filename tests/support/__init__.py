"""Test support: real servers started on loopback for the tests."""

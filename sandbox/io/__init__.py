"""Sandbox twin of App IO."""

"""Tools that go with the definitions but are not part of any (so editing them never changes a
definition's code fingerprint)."""

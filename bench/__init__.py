"""`make bench`: Courtyard against a hand-written reference app and a floor app (not a test)."""

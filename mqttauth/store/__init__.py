"""Session and retained-message storage behind one interface."""

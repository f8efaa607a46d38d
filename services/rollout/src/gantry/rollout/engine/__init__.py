"""Generation backends behind one interface."""

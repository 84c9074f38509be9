"""Network definitions and weight-init schemes: plain modules, no training logic."""
